/**
 * The sans-I/O secure session of one device (one per config node): it is fed topics, payload
 * bytes and the current time, and returns verdicts and bytes to publish. It never reads a
 * clock, a file or the network. docs/PROTOCOL.md §4–6.
 */
import { cryptoBackend } from '../crypto/backend';
import { bytesEqual } from '../crypto/symmetric';
import { resolveLimits, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { checkValidity } from '../trust/certificates';
import { mayPublish, maySubscribe, summarize, type PeerSummary, type TrustedPeer } from '../trust/peers';
import { EMPTY_WINDOW, replayCheck, replayCommit, type ReplayWindow } from '../trust/replay';
import { EMPTY_REVOCATIONS, applyRevocation, isRevoked, type RevocationState } from '../trust/revocation';
import { isValidTopicName, matchesAny } from '../trust/topics';
import type { CaPublicKey } from '../wire/ca-key';
import { decodeCertificate, roleAllowsPublish } from '../wire/certificate';
import { toHex } from '../wire/common';
import { decodeAnnouncement } from '../wire/announcement';
import { decodeDirectEnvelope, messageDigest } from '../wire/envelope';
import { isValidDeviceId } from '../wire/fields';
import { buildAnnouncement, evaluateAnnouncement } from './announce';
import { openDirectCiphertext, sealDirectEnvelope } from './direct';
import type { SecurityProvider } from './provider';

export const DEFAULT_KEYS_TOPIC_PREFIX = 'pqc/keys/';
export const DEFAULT_REVOCATION_TOPIC = 'pqc/revocations';

export interface SessionOptions {
  provider: SecurityProvider;
  /** The pinned CA public key (trust anchor); required in strict mode. */
  caPublicKey?: CaPublicKey;
  /** Strict mode (default true): peers need a certificate that verifies under the CA (I1). */
  strict?: boolean;
  limits?: Partial<Limits>;
  keysTopicPrefix?: string;
  /** Topic of CA-signed revocation updates (I7), retained. */
  revocationTopic?: string;
  /** First sequence number to send; by default derived from the time of the first send. */
  initialSequence?: bigint;
}

export interface OpenedMessage {
  data: Uint8Array;
  sender: string;
  keyId: string;
  keyEpoch: number;
  seq: bigint;
  timestamp: number;
  suite: string;
}

export interface AnnouncementVerdict {
  deviceId: string;
  keyId: string;
  keyEpoch: number;
  /** False when the same announcement was already trusted (retained re-delivery). */
  changed: boolean;
}

export interface RevocationVerdict {
  seq: bigint;
  /** Keys this update revoked (key id "0…0" = every key of the device). */
  added: Array<{ deviceId: string; keyId: string }>;
  /** Peers whose trust was withdrawn by this update. */
  untrusted: string[];
  /** True when this device's own key is among the revoked: peers will refuse its messages. */
  selfRevoked: boolean;
}

/**
 * Sequence numbers start at (ms since epoch) << 20, so a restarted sender without stored state
 * still continues above everything it sent before, unless it sent over 2^20 messages per ms of
 * its uptime or its clock went back. Persisted reservations (trust lifecycle) refine this.
 */
export function initialSequenceFor(nowMs: number): bigint {
  return BigInt(Math.floor(nowMs)) << 20n;
}

/**
 * Sequence numbers reserved per durable write: a sender restarted after a crash continues
 * above its last reservation, so it never reuses a number, and it writes once per this many.
 */
export const SEQUENCE_RESERVATION = 4096n;

export const STATE_FORMAT = 'pqc-iiot-state/1';

/** Trust part of the stored state: changes rarely (announcements, revocations). */
export interface TrustSnapshot {
  format: typeof STATE_FORMAT;
  deviceId: string;
  /** Hex of each trusted peer's announcement; re-verified in full when restored. */
  peers: string[];
  /** Hex of the last applied revocation update, re-verified when restored. */
  revocation: string | null;
}

/** Counter part of the stored state: changes with every accepted message. */
export interface CounterSnapshot {
  format: typeof STATE_FORMAT;
  deviceId: string;
  /** Own key id (hex): counters of another key are not applied. */
  keyId: string;
  /** Highest time seen (ms): certificates stay expired even if the clock is set back. */
  timeFloor: number;
  /** Decimal: every sequence number below this may have been used. */
  sendReservedUpTo: string;
  /** Replay windows per sender: decimal `last`, hex bitmap `seen`. */
  windows: Record<string, { last: string; seen: string }>;
}

export interface RestoreReport {
  peers: number;
  dropped: Array<{ deviceId: string; reason: string }>;
  revocationSeq: string;
}

export function suiteName(peer: Pick<TrustedPeer, 'sigAlgorithm'>, kem: string): string {
  return `${kem}/${peer.sigAlgorithm}/AES-256-GCM`;
}

export class SecureSession {
  readonly deviceId: string;
  readonly strict: boolean;
  readonly limits: Limits;
  readonly keysTopicPrefix: string;
  readonly revocationTopic: string;
  private readonly provider: SecurityProvider;
  private readonly ca: CaPublicKey | undefined;
  private readonly peers = new Map<string, TrustedPeer>();
  private readonly windows = new Map<string, ReplayWindow>();
  private nextSeq: bigint | undefined;
  private sendReservedUpTo = 0n;
  private revocations: RevocationState = EMPTY_REVOCATIONS;
  private revocationBytes: Uint8Array | undefined;
  private readonly announcements = new Map<string, Uint8Array>();
  private timeFloor = 0;
  private trustChanges = 0;
  private counterChanges = 0;

  constructor(opts: SessionOptions) {
    this.provider = opts.provider;
    this.deviceId = opts.provider.deviceId;
    this.strict = opts.strict ?? true;
    this.ca = opts.caPublicKey;
    this.limits = resolveLimits(opts.limits ?? {});
    this.keysTopicPrefix = opts.keysTopicPrefix ?? DEFAULT_KEYS_TOPIC_PREFIX;
    if (!isValidTopicName(this.keysTopicPrefix + 'x') || !this.keysTopicPrefix.endsWith('/')) {
      throw new Error('keys topic prefix must be a topic ending in "/" without wildcards');
    }
    this.revocationTopic = opts.revocationTopic ?? DEFAULT_REVOCATION_TOPIC;
    if (!isValidTopicName(this.revocationTopic) || this.isAnnouncementTopic(this.revocationTopic)) {
      throw new Error('revocation topic must be a topic without wildcards, outside the keys topics');
    }
    if (this.strict && !this.ca) throw new Error('strict mode needs the CA public key (trust anchor)');
    if (this.strict && !this.provider.certificate) throw new Error('strict mode needs a certificate in this device identity');
    this.nextSeq = opts.initialSequence;
  }

  announcementTopic(): string {
    return this.keysTopicPrefix + this.deviceId;
  }

  announcementFilter(): string {
    return this.keysTopicPrefix + '+';
  }

  isAnnouncementTopic(topic: string): boolean {
    return topic.startsWith(this.keysTopicPrefix) && !topic.slice(this.keysTopicPrefix.length).includes('/');
  }

  /** issued_at uses the time floor: receivers refuse an older announcement of the same key. */
  buildAnnouncement(clockNow: number): Promise<Uint8Array> {
    return buildAnnouncement(this.provider, this.observeTime(clockNow), (d) => this.provider.sign(d));
  }

  /** Feeds one message from the keys topic; a trusted peer is installed only if every check passes. */
  async handleAnnouncement(topic: string, payload: Uint8Array, clockNow: number): Promise<Result<AnnouncementVerdict>> {
    const now = this.observeTime(clockNow);
    // I5: size before anything else; I0: the id from the topic before any state lookup or crypto.
    if (!(payload instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
    if (payload.length > this.limits.maxAnnouncementBytes) return fail('too-large');
    if (!this.isAnnouncementTopic(topic)) return fail('topic-mismatch');
    const topicId = topic.slice(this.keysTopicPrefix.length);
    if (!isValidDeviceId(topicId)) return fail('bad-id');
    if (topicId === this.deviceId) return fail('own-message');
    const current = this.peers.get(topicId);
    if (!current && this.peers.size >= this.limits.maxPeers) return fail('peer-limit');
    const policy = { strict: this.strict, ca: this.ca, limits: this.limits, isRevoked: (id: string, key: Uint8Array) => this.isRevoked(id, key) };
    const r = evaluateAnnouncement(payload, topicId, current, policy, now);
    if (!r.ok) return r;
    const peer = r.value.peer;
    if (r.value.kind === 'trusted') {
      this.peers.set(peer.deviceId, peer);
      this.announcements.set(peer.deviceId, Uint8Array.from(payload));
      this.trustChanges++;
    }
    return ok({ deviceId: peer.deviceId, keyId: toHex(peer.keyId), keyEpoch: peer.keyEpoch, changed: r.value.kind === 'trusted' });
  }

  /**
   * Encrypts `data` for one trusted recipient and signs it. Throws (local misuse, reported to
   * the flow) when the recipient is unknown or either certificate forbids the topic.
   */
  async sealDirect(topic: string, data: Uint8Array, recipientId: string, clockNow: number): Promise<Uint8Array> {
    const now = this.observeTime(clockNow);
    if (!isValidTopicName(topic, this.limits.maxTopicBytes)) throw new Error(`invalid topic ${JSON.stringify(topic)}`);
    const recipient = this.peers.get(recipientId);
    if (!recipient && this.revocations.entries.some((e) => e.deviceId === recipientId)) {
      throw new Error(`recipient "${recipientId}" has been revoked`);
    }
    if (!recipient) {
      throw new Error(`recipient "${recipientId}" has no trusted key yet (waiting for its announcement on ${this.keysTopicPrefix}${recipientId})`);
    }
    this.assertMayPublish(topic, now);
    if (this.strict && !maySubscribe(recipient, topic)) {
      throw new Error(`recipient "${recipientId}" is not authorized by its certificate to read "${topic}"`);
    }
    const recipientValidity = checkValidity(recipient, now);
    if (!recipientValidity.ok) throw new Error(`recipient "${recipientId}" has a certificate that is ${recipientValidity.reason === 'expired' ? 'expired' : 'not yet valid'}`);
    const seq = this.takeSequence(now);
    const envelope = await sealDirectEnvelope({
      topic,
      data,
      sender: this.provider,
      recipient,
      seq,
      timestamp: now,
      sign: (d) => this.provider.sign(d),
    });
    if (envelope.length > this.limits.maxEnvelopeBytes) {
      throw new Error(`envelope of ${envelope.length} bytes exceeds the limit of ${this.limits.maxEnvelopeBytes}`);
    }
    return envelope;
  }

  /**
   * Checks, verifies and decrypts one envelope. Order: size, framing, sender, key, rights,
   * validity, replay (read-only), signature, decryption, then replay commit (I3, I4, I5).
   */
  async open(topic: string, payload: Uint8Array, clockNow: number): Promise<Result<OpenedMessage>> {
    const now = this.observeTime(clockNow);
    if (!(payload instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
    if (payload.length > this.limits.maxEnvelopeBytes) return fail('too-large');
    if (!isValidTopicName(topic, this.limits.maxTopicBytes)) return fail('bad-field', 'topic');
    const d = decodeDirectEnvelope(payload, this.limits);
    if (!d.ok) return d;
    const env = d.value;
    if (env.senderId === this.deviceId) return fail('own-message');
    if (this.isRevoked(env.senderId, env.senderKeyId)) return fail('revoked');
    const peer = this.peers.get(env.senderId);
    if (!peer) return fail('unknown-sender');
    if (env.senderKeyEpoch !== peer.keyEpoch || !bytesEqual(env.senderKeyId, peer.keyId) || env.sigAlgorithm !== peer.sigAlgorithm) {
      return fail('stale-key');
    }
    if (
      env.recipientId !== this.deviceId || !bytesEqual(env.recipientKeyId, this.provider.keyId) ||
      env.kemAlgorithm !== this.provider.kemAlgorithm
    ) {
      return fail('not-for-me');
    }
    if (!mayPublish(peer, topic)) return fail('not-authorized');
    const validity = checkValidity(peer, now);
    if (!validity.ok) return validity;
    const timestamp = Number(env.timestamp);
    if (this.limits.maxClockSkewMs > 0 && Math.abs(timestamp - now) > this.limits.maxClockSkewMs) return fail('stale');
    const seen = replayCheck(this.windowOf(peer.deviceId), env.seq, this.limits.replayWindow);
    if (seen !== 'fresh') return fail(seen);
    if (!cryptoBackend().verify(peer.sigAlgorithm, env.auth.signature, messageDigest(env.senderId, topic, env.blob), peer.sigPublicKey)) {
      return fail('bad-signature');
    }
    const data = await openDirectCiphertext(env, topic, (c) => this.provider.decapsulate(c));
    if (data === undefined) return fail('decrypt-failed');
    // Another copy may have been accepted while this one awaited decapsulation: check again.
    const window = this.windowOf(peer.deviceId);
    const again = replayCheck(window, env.seq, this.limits.replayWindow);
    if (again !== 'fresh') return fail(again);
    this.windows.set(peer.deviceId, replayCommit(window, env.seq, this.limits.replayWindow));
    this.counterChanges++;
    return ok({
      data,
      sender: peer.deviceId,
      keyId: toHex(peer.keyId),
      keyEpoch: peer.keyEpoch,
      seq: env.seq,
      timestamp,
      suite: suiteName(peer, env.kemAlgorithm),
    });
  }

  /**
   * Feeds one message from the revocation topic (I7). A valid, newer update is applied at once:
   * revoked peers lose their trust record, and their announcements and envelopes are refused
   * with `revoked` from now on.
   */
  handleRevocation(topic: string, payload: Uint8Array): Result<RevocationVerdict> {
    if (!this.ca) return fail('bad-signature', 'no CA public key configured to check revocations');
    const r = applyRevocation(this.revocations, payload, topic, this.revocationTopic, this.ca, this.limits);
    if (!r.ok) return r;
    this.revocations = r.value.state;
    this.revocationBytes = Uint8Array.from(payload);
    this.trustChanges++;
    const untrusted: string[] = [];
    for (const [id, peer] of this.peers) {
      if (this.isRevoked(id, peer.keyId)) {
        this.peers.delete(id);
        this.announcements.delete(id);
        untrusted.push(id);
      }
    }
    return ok({
      seq: r.value.state.seq,
      added: r.value.added.map((e) => ({ deviceId: e.deviceId, keyId: toHex(e.keyId) })),
      untrusted,
      selfRevoked: this.isRevoked(this.deviceId, this.provider.keyId),
    });
  }

  isRevoked(deviceId: string, keyId: Uint8Array): boolean {
    return isRevoked(this.revocations, deviceId, keyId);
  }

  /** Sequence number of the last applied revocation update (-1 before any). */
  revocationSequence(): bigint {
    return this.revocations.seq;
  }

  /** Trusted peers, public data only. */
  listPeers(): PeerSummary[] {
    return [...this.peers.values()].map(summarize);
  }

  private windowOf(deviceId: string): ReplayWindow {
    return this.windows.get(deviceId) ?? EMPTY_WINDOW;
  }

  private takeSequence(now: number): bigint {
    let seq = this.nextSeq ?? initialSequenceFor(now);
    if (seq < this.sendReservedUpTo && this.nextSeq === undefined) seq = this.sendReservedUpTo;
    if (seq >= this.sendReservedUpTo) {
      this.sendReservedUpTo = seq + SEQUENCE_RESERVATION;
      this.counterChanges++;
    }
    this.nextSeq = seq + 1n;
    return seq;
  }

  /** Time never goes back for validity checks: the highest time seen is the floor. */
  private observeTime(now: number): number {
    if (now > this.timeFloor) this.timeFloor = now;
    return this.timeFloor;
  }

  /**
   * Increases whenever the state changes; an adapter saves when it moved since its last save.
   * Counter changes (replay windows, sequence reservations) must be durable before an accepted
   * message is released or a sealed envelope is published (docs/PROTOCOL.md §5.1).
   */
  get stateVersion(): { trust: number; counters: number } {
    return { trust: this.trustChanges, counters: this.counterChanges };
  }

  snapshotTrust(): TrustSnapshot {
    return {
      format: STATE_FORMAT,
      deviceId: this.deviceId,
      peers: [...this.announcements.values()].map(toHex),
      revocation: this.revocationBytes ? toHex(this.revocationBytes) : null,
    };
  }

  snapshotCounters(): CounterSnapshot {
    const windows: CounterSnapshot['windows'] = {};
    for (const [id, w] of this.windows) windows[id] = { last: w.last.toString(), seen: w.seen.toString(16) };
    return {
      format: STATE_FORMAT,
      deviceId: this.deviceId,
      keyId: toHex(this.provider.keyId),
      timeFloor: this.timeFloor,
      sendReservedUpTo: this.sendReservedUpTo.toString(),
      windows,
    };
  }

  /**
   * Restores stored state into a fresh session. Stored bytes are not trusted: announcements and
   * the revocation update are verified again exactly as if they arrived now, and malformed
   * parts are refused. Replay windows are kept even for peers that are not trusted any more,
   * so a later re-announcement cannot reopen old sequence numbers.
   */
  async restore(trust: TrustSnapshot | undefined, counters: CounterSnapshot | undefined, clockNow: number): Promise<Result<RestoreReport>> {
    if (trust && (trust.format !== STATE_FORMAT || trust.deviceId !== this.deviceId)) return fail('bad-field', 'trust state of another device or format');
    if (counters && (counters.format !== STATE_FORMAT || counters.deviceId !== this.deviceId)) {
      return fail('bad-field', 'counter state of another device or format');
    }
    const parsedCounters = counters ? parseCounters(counters) : undefined;
    if (counters && !parsedCounters) return fail('bad-field', 'counter state is malformed');
    if (parsedCounters) {
      this.timeFloor = Math.max(this.timeFloor, parsedCounters.timeFloor);
      // A state written for another key of this device (rotation) still bounds the sequence.
      if (parsedCounters.sendReservedUpTo > this.sendReservedUpTo) this.sendReservedUpTo = parsedCounters.sendReservedUpTo;
      for (const [id, w] of parsedCounters.windows) this.windows.set(id, w);
    }
    const now = this.observeTime(clockNow);
    const dropped: RestoreReport['dropped'] = [];
    if (trust?.revocation) {
      const r = this.handleRevocation(this.revocationTopic, hexBytes(trust.revocation));
      if (!r.ok) dropped.push({ deviceId: '(revocation update)', reason: r.reason });
    }
    for (const hex of trust?.peers ?? []) {
      const bytes = hexBytes(hex);
      const d = decodeAnnouncement(bytes, this.limits);
      const id = d.ok ? d.value.deviceId : '(unreadable)';
      const r = d.ok ? await this.handleAnnouncement(this.keysTopicPrefix + id, bytes, now) : d;
      if (!r.ok) dropped.push({ deviceId: id, reason: r.reason });
    }
    return ok({ peers: this.peers.size, dropped, revocationSeq: this.revocations.seq.toString() });
  }

  private assertMayPublish(topic: string, now: number): void {
    if (!this.strict) return;
    const cert = this.provider.certificate ? decodeCertificate(this.provider.certificate, this.limits) : undefined;
    if (!cert || !cert.ok) throw new Error('this device has no valid certificate');
    if (!roleAllowsPublish(cert.value.roles) || !matchesAny(cert.value.topics, topic)) {
      throw new Error(`this device's certificate does not allow publishing on "${topic}"`);
    }
    const validity = checkValidity(cert.value, now);
    if (!validity.ok) throw new Error(`this device's certificate is ${validity.reason === 'expired' ? 'expired' : 'not yet valid'}`);
  }
}

function hexBytes(hex: string): Uint8Array {
  return typeof hex === 'string' && /^([0-9a-f]{2})*$/.test(hex) ? new Uint8Array(Buffer.from(hex, 'hex')) : new Uint8Array(0);
}

const DECIMAL = /^[0-9]{1,20}$/;

function parseCounters(c: CounterSnapshot): { timeFloor: number; sendReservedUpTo: bigint; windows: Map<string, ReplayWindow> } | undefined {
  if (!Number.isSafeInteger(c.timeFloor) || c.timeFloor < 0) return undefined;
  if (typeof c.sendReservedUpTo !== 'string' || !DECIMAL.test(c.sendReservedUpTo)) return undefined;
  if (c.windows === null || typeof c.windows !== 'object') return undefined;
  const windows = new Map<string, ReplayWindow>();
  for (const [id, w] of Object.entries(c.windows)) {
    if (!isValidDeviceId(id) || !w || typeof w.last !== 'string' || typeof w.seen !== 'string') return undefined;
    if (!DECIMAL.test(w.last) || !/^[0-9a-f]{1,1024}$/.test(w.seen)) return undefined;
    windows.set(id, Object.freeze({ last: BigInt(w.last), seen: BigInt('0x' + w.seen) }));
  }
  return { timeFloor: c.timeFloor, sendReservedUpTo: BigInt(c.sendReservedUpTo), windows };
}
