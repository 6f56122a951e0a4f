/**
 * The sans-I/O secure session of one device (one per config node): it is fed topics, payload
 * bytes and the current time, and returns verdicts and bytes to publish. It never reads a
 * clock, a file or the network. docs/PROTOCOL.md §4–6.
 */
import type { KeyObject } from 'node:crypto';
import { offloadVerify } from '../crypto/worker-pool';
import { aesGcmOpen, aesGcmSeal, bytesEqual, randomKey, randomNonce } from '../crypto/symmetric';
import { resolveLimits, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { checkValidity } from '../trust/certificates';
import { mayPublish, maySubscribe, summarize, type PeerSummary, type TrustedPeer } from '../trust/peers';
import { EMPTY_WINDOW, replayCheck, replayCommit, type ReplayWindow } from '../trust/replay';
import { EMPTY_REVOCATIONS, applyRevocation, isRevoked, type RevocationState } from '../trust/revocation';
import { VerificationBudget, type BudgetKind, type BudgetOverrides, type BudgetStats } from '../trust/budget';
import { isValidTopicName, matchesAny } from '../trust/topics';
import type { CaPublicKey } from '../wire/ca-key';
import { decodeCertificate, roleAllowsPublish } from '../wire/certificate';
import { toHex } from '../wire/common';
import { decodeAnnouncement } from '../wire/announcement';
import { decodeDirectEnvelope, encodeEnvelope, encodeEnvelopeBlob, messageDigest, type DecodedEnvelope } from '../wire/envelope';
import { BatchSigner, DEFAULT_VERIFIED_ROOTS, VerifiedRoots, resolveBatchOptions, type BatchOptions, type BatchReservation, type BatchSignerStats } from './batch';
import { batchRootDigest, climbBatchPath } from './batch-tree';
import type { EnvelopeAuth } from '../wire/auth';
import { peekType } from '../wire/header';
import { decodeTopicEnvelope, encodeTopicEnvelopeHeader, topicEnvelopeAad, type DecodedTopicEnvelope } from '../wire/topic-envelope';
import { decodeTopicKey, encodeTopicKey, encodeTopicKeyBody, topicKeyDigest } from '../wire/topic-key';
import {
  DEFAULT_KEY_STRATEGY, TopicKeyCache, checkStrategy, compactNonce, needsRotation, scheduleEnd, topicDataKey, unwrapTopicKey, wrapTopicKey,
  type KeyStrategy, type PublisherTopicKey, type SubscriberTopicKey,
} from './topic-keys';
import { isValidDeviceId } from '../wire/fields';
import { encodeCompactEnvelope, encodeCompactEnvelopeHeader, MAX_COMPACT_CIPHERTEXT_BYTES } from '../wire/compact-envelope';
import { GCM_TAG_BYTES } from '../crypto/algorithms';
import {
  DEFAULT_VERIFIED_DIGESTS, ManifestBatcher, resolveCompactBatchOptions, type ManifestSink, type ManifestStats,
} from './compact';
import { CompactReceiver, type CompactReceiverSession } from './compact-receiver';
import { buildAnnouncement, evaluateAnnouncement } from './announce';
import { openDirectCiphertext, sealDirectEnvelope } from './direct';
import type { SecurityProvider } from './provider';

export const DEFAULT_KEYS_TOPIC_PREFIX = 'pqc/keys/';
export const DEFAULT_REVOCATION_TOPIC = 'pqc/revocations';
export const DEFAULT_TOPIC_KEYS_PREFIX = 'pqc/topic-keys/';
export const DEFAULT_BATCH_MANIFEST_PREFIX = 'pqc/batches/';

/** Per-call choices of `sealTopic`. */
export interface TopicSealOptions {
  /**
   * Compact mode (docs/PROTOCOL.md §4.8): a compact envelope (§2.10) returned at once, whose
   * digest goes into the next batch manifest (§2.11), handed to the manifest sink once signed.
   */
  compact?: boolean;
}

export interface ManifestVerdict {
  sender: string;
  /** Digests the manifest listed. */
  digests: number;
  /** Held compact envelopes released by it. */
  released: number;
}

export interface SealedTopicMessage {
  envelope: Uint8Array;
  /** True for a compact envelope (§2.10): it is authenticated by a later batch manifest. */
  compact?: boolean;
  keySerial: bigint;
  /** Present when the key was (re)created: publish retained on `topic` before the envelope. */
  keyMessage?: { topic: string; payload: Uint8Array; serial: bigint; recipients: string[] };
}

export interface KeyMessageVerdict {
  publisher: string;
  topic: string;
  serial: bigint;
  /** Held messages of this publisher and topic that were resolved by this key. */
  released: number;
}

type SenderFields = Pick<DecodedEnvelope, 'senderId' | 'senderKeyEpoch' | 'senderKeyId' | 'sigAlgorithm' | 'seq' | 'timestamp'>;

interface PendingMessage {
  topic: string;
  env: DecodedTopicEnvelope;
  peer: TrustedPeer;
  heldAt: number;
  /** The signature check, started when the message was held. */
  verified: Promise<Result<true>>;
  resolve: (r: Result<OpenedMessage> | Promise<Result<OpenedMessage>>) => void;
}

/** The authorized subscribers of one data topic at one time (see SecureSession.subscribersOf). */
interface TopicMembers {
  readonly members: ReadonlyMap<string, TrustedPeer>;
  readonly keys: ReadonlySet<string>;
  readonly version: number;
  /** The membership may change at this time (a certificate starts or ends). */
  readonly validUntil: number;
}

/** Data topics whose membership a publisher keeps (all are dropped when more appear). */
const MAX_CACHED_MEMBERSHIPS = 1024;

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
  /** Prefix of topic key messages: `{prefix}{publisher_id}/{data topic}`, retained. */
  topicKeysPrefix?: string;
  /** First sequence number to send; by default derived from the time of the first send. */
  initialSequence?: bigint;
  /**
   * Amortized signing (docs/PROTOCOL.md §4.7): envelopes sealed close together share one
   * signature over a Merkle root (auth kind 0x02). Default on, 16 envelopes, 2 ms at most;
   * `false` signs every envelope on its own (auth kind 0x01).
   */
  batch?: Partial<BatchOptions> | false;
  /** Verified batch roots remembered (receiver side), default 1024; 0 checks every envelope's root signature. */
  verifiedRoots?: number;
  /** Prefix of compact-mode batch manifests: `{prefix}{sender_id}`, not retained (§4.8). */
  batchManifestPrefix?: string;
  /**
   * When a compact-mode manifest closes (§4.8): at `maxLeaves` envelopes or `maxDelayMs` after
   * its first one (default 255 / 1000 ms; no quiet-turn rule). A manifest may list one envelope.
   */
  compactBatch?: Partial<BatchOptions>;
  /** Message digests of verified manifests remembered (receiver side, all senders), default 8192. */
  verifiedDigests?: number;
  /**
   * Verification budgets (docs/PROTOCOL.md §6.7): per-peer and global token buckets for failed
   * signature checks and decapsulations; default on; `false` turns them off.
   */
  budget?: BudgetOverrides | false;
}

/** Counters of the throughput machinery, for status, logs and the benchmark. */
export interface ThroughputStats {
  /** Sender: signatures made by the batch signer and envelopes they covered. */
  batching: BatchSignerStats | undefined;
  /** Receiver: post-quantum signature checks run on envelopes and key messages. */
  verifications: number;
  /** Receiver: batch envelopes accepted on a cached (already verified) root. */
  rootHits: number;
  /** Receiver: verification budgets (undefined when off). */
  budget: BudgetStats | undefined;
  /** Sender: compact-mode manifests signed and the envelopes they listed. */
  manifests: ManifestStats;
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
  readonly topicKeysPrefix: string;
  readonly batchManifestPrefix: string;
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
  private readonly publisherKeys = new Map<string, PublisherTopicKey>();
  /** Authorized subscribers per data topic (see subscribersOf); `membershipVersion` moves when peers or revocations change. */
  private readonly membersByTopic = new Map<string, TopicMembers>();
  private membershipVersion = 0;
  private readonly topicKeys: TopicKeyCache;
  private pending: PendingMessage[] = [];
  private readonly sealing = new Map<string, Promise<void>>();
  private batcher: BatchSigner | undefined;
  private readonly verifiedRoots: VerifiedRoots;
  private readonly budget: VerificationBudget | undefined;
  private readonly senderTurns = new Map<string, Promise<void>>();
  private verifications = 0;
  private readonly manifests: ManifestBatcher;
  private manifestSink: ManifestSink | undefined;
  private readonly compactReceiver: CompactReceiver;
  private ownCertificate: ReturnType<typeof decodeCertificate> | undefined;
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
    this.topicKeysPrefix = opts.topicKeysPrefix ?? DEFAULT_TOPIC_KEYS_PREFIX;
    if (!isValidTopicName(this.topicKeysPrefix + 'x') || !this.topicKeysPrefix.endsWith('/') || this.topicKeysPrefix === this.keysTopicPrefix) {
      throw new Error('topic keys prefix must be a topic ending in "/" without wildcards, other than the keys prefix');
    }
    this.topicKeys = new TopicKeyCache(this.limits.maxTopicKeys);
    this.revocationTopic = opts.revocationTopic ?? DEFAULT_REVOCATION_TOPIC;
    if (!isValidTopicName(this.revocationTopic) || this.isAnnouncementTopic(this.revocationTopic)) {
      throw new Error('revocation topic must be a topic without wildcards, outside the keys topics');
    }
    if (this.strict && !this.ca) throw new Error('strict mode needs the CA public key (trust anchor)');
    if (this.strict && !this.provider.certificate) throw new Error('strict mode needs a certificate in this device identity');
    this.nextSeq = opts.initialSequence;
    this.setBatching(opts.batch);
    this.verifiedRoots = new VerifiedRoots(opts.verifiedRoots ?? DEFAULT_VERIFIED_ROOTS);
    this.budget = opts.budget === false ? undefined : new VerificationBudget(opts.budget ?? {});
    this.batchManifestPrefix = opts.batchManifestPrefix ?? DEFAULT_BATCH_MANIFEST_PREFIX;
    if (
      !isValidTopicName(this.batchManifestPrefix + 'x') || !this.batchManifestPrefix.endsWith('/') ||
      this.batchManifestPrefix.startsWith(this.keysTopicPrefix) || this.batchManifestPrefix.startsWith(this.topicKeysPrefix) ||
      this.keysTopicPrefix.startsWith(this.batchManifestPrefix) || this.topicKeysPrefix.startsWith(this.batchManifestPrefix)
    ) {
      throw new Error('batch manifest prefix must be a topic ending in "/" without wildcards, apart from the keys and topic keys prefixes');
    }
    const compactBatch = resolveCompactBatchOptions(opts.compactBatch);
    this.manifests = new ManifestBatcher(
      {
        senderId: this.deviceId,
        keyEpoch: this.provider.keyEpoch,
        keyId: this.provider.keyId,
        sigAlgorithm: this.provider.sigAlgorithm,
        sign: (d) => this.provider.sign(d),
      },
      this.batchManifestTopic(),
      () => this.manifestSink,
      // The manifest's timestamp is the session's time floor: the core never reads a clock.
      () => this.timeFloor,
      compactBatch,
    );
    this.compactReceiver = new CompactReceiver(this.compactReceiverSession(), {
      verifiedManifests: opts.verifiedRoots ?? DEFAULT_VERIFIED_ROOTS,
      verifiedDigests: opts.verifiedDigests ?? DEFAULT_VERIFIED_DIGESTS,
    });
  }

  /** Where the I/O layer receives this sender's signed batch manifests (compact mode, §4.8). */
  setManifestSink(sink: ManifestSink | undefined): void {
    this.manifestSink = sink;
  }

  /** Signs the manifest of the compact envelopes sealed so far now (for example before shutdown). */
  flushManifests(): void {
    this.manifests.flush();
  }

  /** Where this device publishes its batch manifests. */
  batchManifestTopic(): string {
    return this.batchManifestPrefix + this.deviceId;
  }

  /** What receivers subscribe to for every sender's manifests. */
  batchManifestFilter(): string {
    return this.batchManifestPrefix + '+';
  }

  isBatchManifestTopic(topic: string): boolean {
    return topic.startsWith(this.batchManifestPrefix) && !topic.slice(this.batchManifestPrefix.length).includes('/');
  }

  /**
   * Turns amortized signing on (with these options) or off (`false`); envelopes already waiting
   * for a batch are signed first. docs/PROTOCOL.md §4.7.
   */
  setBatching(options: Partial<BatchOptions> | false | undefined): void {
    const resolved = resolveBatchOptions(options);
    this.batcher?.flush();
    this.batcher = resolved ? new BatchSigner(this.deviceId, (d) => this.provider.sign(d), resolved) : undefined;
  }

  /** The batching in effect (undefined: every envelope signed on its own). */
  get batching(): BatchOptions | undefined {
    return this.batcher?.options;
  }

  get throughputStats(): ThroughputStats {
    return {
      batching: this.batcher?.stats,
      verifications: this.verifications,
      rootHits: this.verifiedRoots.stats.hits,
      budget: this.budget?.stats,
      manifests: this.manifests.stats,
    };
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
    // The certificate and announcement signatures are checked under the claimed id's budget
    // (and the global one): a flood of forged announcements cannot take the main thread (§6.7).
    let ticket: ReturnType<VerificationBudget['admit']>;
    const policy = {
      strict: this.strict, ca: this.ca, limits: this.limits, isRevoked: (id: string, key: Uint8Array) => this.isRevoked(id, key),
      admitSignatureChecks: (): boolean => {
        const t = this.admit('verify', topicId, now);
        if (t === false) return false;
        ticket = t;
        return true;
      },
    };
    const r = evaluateAnnouncement(payload, topicId, current, policy, now);
    if (ticket) this.budget?.settle(ticket, r.ok);
    if (!r.ok) return r;
    const peer = r.value.peer;
    if (r.value.kind === 'trusted') {
      this.peers.set(peer.deviceId, peer);
      this.membershipVersion++;
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
    // Announced before the encapsulation (on a worker with the JavaScript backend): envelopes sent
    // together still share one batch signature however their encapsulations finish (§4.7).
    const reservation = this.batcher?.reserve();
    const envelope = await sealDirectEnvelope({
      topic,
      data,
      sender: this.provider,
      recipient,
      seq,
      timestamp: now,
      sign: (d) => this.provider.sign(d),
      authenticate: (d) => this.authenticate(d, reservation),
    }).finally(() => reservation?.release());
    if (envelope.length > this.limits.maxEnvelopeBytes) {
      throw new Error(`envelope of ${envelope.length} bytes exceeds the limit of ${this.limits.maxEnvelopeBytes}`);
    }
    return envelope;
  }

  /**
   * Checks, verifies and decrypts one envelope (direct or topic mode). Order: size, framing,
   * sender, key, rights, validity, replay (read-only), signature, decryption, then replay commit
   * (I3, I4, I5). A topic-mode message whose key has not arrived yet is verified and held:
   * `open` then fails with `no-key` only if `maxPendingMessages` is 0 or full; otherwise it
   * resolves once the key message is handled or the wait expires (see `expirePending`).
   */
  async open(topic: string, payload: Uint8Array, clockNow: number): Promise<Result<OpenedMessage>> {
    const now = this.observeTime(clockNow);
    if (!(payload instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
    if (payload.length > this.limits.maxEnvelopeBytes) return fail('too-large');
    if (!isValidTopicName(topic, this.limits.maxTopicBytes)) return fail('bad-field', 'topic');
    const type = peekType(payload);
    if (type === 'topicEnvelope') return this.openTopic(topic, payload, now);
    if (type === 'compactEnvelope') return this.compactReceiver.open(topic, payload, now);
    const d = decodeDirectEnvelope(payload, this.limits);
    if (!d.ok) return d;
    const env = d.value;
    const sender = this.checkSender(env, topic, now);
    if (!sender.ok) return sender;
    if (
      env.recipientId !== this.deviceId || !bytesEqual(env.recipientKeyId, this.provider.keyId) ||
      env.kemAlgorithm !== this.provider.kemAlgorithm
    ) {
      return fail('not-for-me');
    }
    const peer = sender.value;
    // Signature, then decapsulation: run now, possibly off the main thread, but finished in
    // arrival order per sender, so accepted messages keep their order.
    const opened = await this.inSenderOrder(peer.deviceId, (async (): Promise<Result<Uint8Array>> => {
      const verified = await this.verifySender(peer, env, topic, now);
      if (!verified.ok) return verified;
      const ticket = this.admit('decapsulate', peer.deviceId, now);
      if (ticket === false) return fail('budget', 'decapsulations');
      const data = await openDirectCiphertext(env, topic, (c) => this.provider.decapsulate(c));
      if (ticket) this.budget?.settle(ticket, data !== undefined);
      return data === undefined ? fail('decrypt-failed') : ok(data);
    })());
    if (!opened.ok) return opened;
    return this.commit(peer, env, opened.value, suiteName(peer, env.kemAlgorithm));
  }

  /** Steps 3–10 of §6.2, shared by both modes: no cryptography yet. */
  private checkSender(env: SenderFields, topic: string, now: number): Result<TrustedPeer> {
    if (env.senderId === this.deviceId) return fail('own-message');
    if (this.isRevoked(env.senderId, env.senderKeyId)) return fail('revoked');
    const peer = this.peers.get(env.senderId);
    if (!peer) return fail('unknown-sender');
    if (env.senderKeyEpoch !== peer.keyEpoch || !bytesEqual(env.senderKeyId, peer.keyId) || env.sigAlgorithm !== peer.sigAlgorithm) {
      return fail('stale-key');
    }
    if (!mayPublish(peer, topic)) return fail('not-authorized');
    const validity = checkValidity(peer, now);
    if (!validity.ok) return validity;
    if (this.limits.maxClockSkewMs > 0 && Math.abs(Number(env.timestamp) - now) > this.limits.maxClockSkewMs) return fail('stale');
    const seen = replayCheck(this.windowOf(peer.deviceId), env.seq, this.limits.replayWindow);
    return seen === 'fresh' ? ok(peer) : fail(seen);
  }

  /**
   * Step 11 of §6.2: the auth trailer (§2.7) over the message digest. Kind 0x01: one signature
   * check. Kind 0x02: the path from this envelope's own leaf to the batch root, then the root
   * signature — checked once per (key, root, signature) and remembered (§4.7).
   */
  private async verifySender(peer: TrustedPeer, env: SenderFields & { auth: EnvelopeAuth; blob: Uint8Array }, topic: string, now: number): Promise<Result<true>> {
    const digest = messageDigest(env.senderId, topic, env.blob);
    const auth = env.auth;
    if (auth.kind === 'signature') return this.checkSignature(peer, auth.signature, digest, now);
    // Envelopes of a batch share most of their paths: a climb that meets a node of this batch's
    // tree (already checked, or being checked) takes that tree's verdict after a hash or two.
    const tree = this.verifiedRoots.knownTree(peer.keyId, env.senderId, auth.signature, auth.leafCount);
    const climb = climbBatchPath(digest, auth.leafIndex, auth.leafCount, auth.path, tree?.nodes);
    if (!climb) return fail('bad-field', 'batch path');
    if (!climb.root && tree) {
      // The nodes met on the way lead to the tree's root too: later climbs can stop at them.
      this.verifiedRoots.extend(tree, climb.nodes);
      return tree.verdict;
    }
    if (!climb.root) return fail('bad-field', 'batch path');
    const rootDigest = batchRootDigest(env.senderId, climb.root, auth.leafCount);
    const verdict = this.verifiedRoots.check(peer.keyId, rootDigest, auth.signature, () => this.checkSignature(peer, auth.signature, rootDigest, now));
    this.verifiedRoots.track(peer.keyId, env.senderId, auth.signature, auth.leafCount, rootDigest, climb.nodes, verdict);
    return verdict;
  }

  /** One post-quantum signature check under the peer's key, within its verification budget. */
  private async checkSignature(peer: TrustedPeer, signature: Uint8Array, digest: Uint8Array, now: number): Promise<Result<true>> {
    const ticket = this.admit('verify', peer.deviceId, now);
    if (ticket === false) return fail('budget', 'signature checks');
    this.verifications++;
    // offloadVerify never throws on a peer's bytes; a local failure counts as "does not verify".
    const valid = await offloadVerify(peer.sigAlgorithm, signature, digest, peer.sigPublicKey).catch(() => false);
    if (ticket) this.budget?.settle(ticket, valid);
    return valid ? ok(true) : fail('bad-signature');
  }

  /** A budget ticket, undefined when budgets are off, false when the budget is spent (§6.7). */
  private admit(kind: BudgetKind, peer: string, now: number): ReturnType<VerificationBudget['admit']> | false {
    if (!this.budget) return undefined;
    return this.budget.admit(kind, peer, now) ?? false;
  }

  /** `work` already runs; its result is handed over only after earlier work of this sender (or of this publisher's key messages: "key:" + id). */
  private inSenderOrder<T>(sender: string, work: Promise<T>): Promise<T> {
    work.catch(() => undefined); // rejections reach the caller through `run`, not as unhandled
    const previous = this.senderTurns.get(sender) ?? Promise.resolve();
    const run = previous.then(() => work);
    const tail = run.then(() => undefined, () => undefined);
    this.senderTurns.set(sender, tail);
    void tail.then(() => {
      if (this.senderTurns.get(sender) === tail) this.senderTurns.delete(sender);
    });
    return run;
  }

  /** The auth trailer for an outgoing envelope: batched (§4.7) or one signature (§2.7). */
  private async authenticate(digest: Uint8Array, reservation?: BatchReservation): Promise<EnvelopeAuth> {
    if (this.batcher) return this.batcher.authenticate(digest, reservation);
    reservation?.release();
    return { kind: 'signature', signature: await this.provider.sign(digest) };
  }

  /** Replay re-check (another copy may have been accepted meanwhile) and commit. */
  private commit(peer: TrustedPeer, env: Pick<SenderFields, 'seq' | 'timestamp'>, data: Uint8Array, suite: string): Result<OpenedMessage> {
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
      timestamp: Number(env.timestamp),
      suite,
    });
  }

  // --- topic mode (docs/PROTOCOL.md §4.5–4.6, §6.4) -----------------------------------------------

  /** Where this device publishes its key message for `dataTopic`. */
  topicKeyTopic(dataTopic: string): string {
    return `${this.topicKeysPrefix}${this.deviceId}/${dataTopic}`;
  }

  /** What a subscriber of `dataFilter` subscribes to for the matching key messages. */
  topicKeyFilter(dataFilter: string): string {
    return `${this.topicKeysPrefix}+/${dataFilter}`;
  }

  isTopicKeyTopic(topic: string): boolean {
    return topic.startsWith(this.topicKeysPrefix);
  }

  /**
   * Encrypts `data` for every authorized subscriber of `topic` under the topic key, rotating
   * the key first when the strategy says so or the set of authorized subscribers changed.
   * Returns the key message to publish (retained) before the envelope, when there is a new key.
   */
  sealTopic(
    topic: string, data: Uint8Array, clockNow: number, strategy: KeyStrategy = DEFAULT_KEY_STRATEGY, options: TopicSealOptions = {},
  ): Promise<SealedTopicMessage> {
    const compact = options.compact === true;
    if (compact && !this.manifestSink) return Promise.reject(new Error('compact mode needs a manifest sink (setManifestSink) to publish batch manifests'));
    // One at a time per topic: two concurrent calls must not both decide to rotate.
    // The signature is outside that order: envelopes of one topic sealed close together can then
    // share one batch signature (§4.7); the returned promises still settle in call order.
    const previous = this.sealing.get(topic) ?? Promise.resolve();
    const prepared = previous.then(() => this.prepareTopic(topic, data, clockNow, strategy, compact));
    const tail = prepared.then(() => undefined, () => undefined);
    this.sealing.set(topic, tail);
    void tail.then(() => {
      if (this.sealing.get(topic) === tail) this.sealing.delete(topic);
    });
    return prepared.then(async (p) => {
      if (p.compact) {
        // Returned at once: the manifest listing its digest follows the batch (§4.8).
        this.manifests.add(messageDigest(this.deviceId, topic, p.blob));
        const sealed: SealedTopicMessage = { envelope: p.blob, keySerial: p.keySerial, compact: true };
        return p.keyMessage ? { ...sealed, keyMessage: p.keyMessage } : sealed;
      }
      const auth = await this.authenticate(messageDigest(this.deviceId, topic, p.blob));
      const envelope = encodeEnvelope(p.blob, auth);
      if (envelope.length > this.limits.maxEnvelopeBytes) {
        throw new Error(`envelope of ${envelope.length} bytes exceeds the limit of ${this.limits.maxEnvelopeBytes}`);
      }
      return p.keyMessage ? { envelope, keyMessage: p.keyMessage, keySerial: p.keySerial } : { envelope, keySerial: p.keySerial };
    });
  }

  /** Key decision, sequence number and encryption of one topic-mode message: everything but the signature. */
  private async prepareTopic(
    topic: string, data: Uint8Array, clockNow: number, strategy: KeyStrategy, compact: boolean,
  ): Promise<{ blob: Uint8Array; compact: boolean; keySerial: bigint; keyMessage?: SealedTopicMessage['keyMessage'] }> {
    const now = this.observeTime(clockNow);
    if (!isValidTopicName(topic, this.limits.maxTopicBytes)) throw new Error(`invalid topic ${JSON.stringify(topic)}`);
    if (compact && data.length + GCM_TAG_BYTES > MAX_COMPACT_CIPHERTEXT_BYTES) {
      throw new Error(`compact mode carries at most ${MAX_COMPACT_CIPHERTEXT_BYTES - GCM_TAG_BYTES} bytes per message, not ${data.length}`);
    }
    checkStrategy(strategy);
    this.assertMayPublish(topic, now);
    const { members, keys: memberKeys } = this.subscribersOf(topic, now);
    let key = this.publisherKeys.get(topic);
    let keyMessage: SealedTopicMessage['keyMessage'];
    if (!key || needsRotation(key, strategy, memberKeys, now, data.length)) {
      const serial = this.takeSequence(now);
      const mek = randomKey();
      const notAfter = strategy.kind === 'schedule' ? scheduleEnd(strategy, now) : 0;
      const wraps = await Promise.all([...members.values()].map((m) => wrapTopicKey(mek, m, this.deviceId, topic, serial)));
      const body = encodeTopicKeyBody({
        publisherId: this.deviceId,
        publisherKeyEpoch: this.provider.keyEpoch,
        publisherKeyId: this.provider.keyId,
        sigAlgorithm: this.provider.sigAlgorithm,
        topic,
        keySerial: serial,
        notAfter: BigInt(notAfter),
        issuedAt: BigInt(now),
        wraps,
      });
      const keyTopic = this.topicKeyTopic(topic);
      const payload = encodeTopicKey(body, await this.provider.sign(topicKeyDigest(this.deviceId, keyTopic, body)));
      if (payload.length > this.limits.maxKeyMessageBytes) {
        throw new Error(`key message of ${payload.length} bytes for ${members.size} subscribers exceeds the limit of ${this.limits.maxKeyMessageBytes}`);
      }
      key = { serial, dataKey: topicDataKey(mek), createdAt: now, notAfter, members: memberKeys, packets: 0, bytes: 0 };
      mek.fill(0);
      this.publisherKeys.set(topic, key);
      keyMessage = { topic: keyTopic, payload, serial, recipients: [...members.values()].map((m) => m.deviceId) };
    }
    const seq = this.takeSequence(now);
    let blob: Uint8Array;
    if (compact) {
      const compactHeader = encodeCompactEnvelopeHeader({ senderId: this.deviceId, keySerial: key.serial, seq });
      blob = encodeCompactEnvelope(compactHeader, aesGcmSeal(key.dataKey, compactNonce(seq), data, topicEnvelopeAad(topic, compactHeader)));
    } else {
      const headerBytes = encodeTopicEnvelopeHeader({
        senderId: this.deviceId,
        senderKeyEpoch: this.provider.keyEpoch,
        senderKeyId: this.provider.keyId,
        sigAlgorithm: this.provider.sigAlgorithm,
        keySerial: key.serial,
        seq,
        timestamp: BigInt(now),
      });
      const nonce = randomNonce();
      blob = encodeEnvelopeBlob(headerBytes, nonce, aesGcmSeal(key.dataKey, nonce, data, topicEnvelopeAad(topic, headerBytes)));
    }
    key.packets++;
    key.bytes += data.length;
    return keyMessage ? { blob, compact, keyMessage, keySerial: key.serial } : { blob, compact, keySerial: key.serial };
  }

  /**
   * Trusted, unrevoked, currently valid peers allowed to read `topic`, by "device/keyid", and
   * the set of their keys. Kept per topic until the peers or revocations change or a
   * certificate among them starts or ends (the next validity boundary), so a publisher does not
   * walk every peer for every message.
   */
  private subscribersOf(topic: string, now: number): TopicMembers {
    const cached = this.membersByTopic.get(topic);
    if (cached && cached.version === this.membershipVersion && now < cached.validUntil) return cached;
    const members = new Map<string, TrustedPeer>();
    let validUntil = Number.POSITIVE_INFINITY;
    const t = BigInt(Math.floor(now));
    for (const peer of this.peers.values()) {
      // The membership changes when a not-yet-valid certificate starts or a valid one ends.
      if (t < peer.notBefore) validUntil = Math.min(validUntil, Number(peer.notBefore));
      else if (t <= peer.notAfter) validUntil = Math.min(validUntil, Number(peer.notAfter) + 1);
      if (this.isRevoked(peer.deviceId, peer.keyId) || !checkValidity(peer, now).ok) continue;
      if (!maySubscribe(peer, topic)) continue;
      members.set(`${peer.deviceId}/${toHex(peer.keyId)}`, peer);
    }
    const entry: TopicMembers = { members, keys: new Set(members.keys()), version: this.membershipVersion, validUntil };
    if (this.membersByTopic.size >= MAX_CACHED_MEMBERSHIPS) this.membersByTopic.clear();
    this.membersByTopic.set(topic, entry);
    return entry;
  }

  /**
   * Feeds one message from the topic-key topics. Key messages are never flow output: a valid
   * one addressed to this device installs the key and releases messages held for it.
   */
  async handleKeyMessage(topic: string, payload: Uint8Array, clockNow: number): Promise<Result<KeyMessageVerdict>> {
    const now = this.observeTime(clockNow);
    if (!(payload instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
    if (payload.length > this.limits.maxKeyMessageBytes) return fail('too-large');
    if (!this.isTopicKeyTopic(topic)) return fail('topic-mismatch');
    const rest = topic.slice(this.topicKeysPrefix.length);
    const slash = rest.indexOf('/');
    const publisherId = slash < 0 ? rest : rest.slice(0, slash);
    if (!isValidDeviceId(publisherId)) return fail('bad-id');
    if (publisherId === this.deviceId) return fail('own-message');
    const d = decodeTopicKey(payload, this.limits);
    if (!d.ok) return d;
    const k = d.value;
    if (k.publisherId !== publisherId || rest.slice(slash + 1) !== k.topic || slash < 0) return fail('topic-mismatch');
    if (this.isRevoked(k.publisherId, k.publisherKeyId)) return fail('revoked');
    const peer = this.peers.get(k.publisherId);
    if (!peer) return fail('unknown-sender');
    if (k.publisherKeyEpoch !== peer.keyEpoch || !bytesEqual(k.publisherKeyId, peer.keyId) || k.sigAlgorithm !== peer.sigAlgorithm) {
      return fail('stale-key');
    }
    if (!mayPublish(peer, k.topic)) return fail('not-authorized');
    const validity = checkValidity(peer, now);
    if (!validity.ok) return validity;
    const latest = this.topicKeys.latestSerial(k.publisherId, k.topic);
    if (latest !== undefined && k.keySerial <= latest) return fail(k.keySerial === latest ? 'duplicate' : 'rollback');
    const wrap = k.wraps.find((w) => w.recipientId === this.deviceId && bytesEqual(w.recipientKeyId, this.provider.keyId));
    if (wrap && wrap.kemAlgorithm !== this.provider.kemAlgorithm) return fail('not-for-me');
    // Signature and unwrapping may run off the main thread; keys are installed in arrival order
    // per publisher all the same, so a later key never lands before an earlier one.
    const unwrapped = await this.inSenderOrder(`key:${k.publisherId}`, (async (): Promise<Result<Uint8Array | undefined>> => {
      const signed = await this.checkSignature(peer, k.signature, topicKeyDigest(k.publisherId, topic, k.signedBytes), now);
      if (!signed.ok) return signed;
      if (!wrap) return ok(undefined);
      const ticket = this.admit('decapsulate', peer.deviceId, now);
      if (ticket === false) return fail('budget', 'decapsulations');
      const mek = await unwrapTopicKey(wrap, k.publisherId, k.topic, k.keySerial, (c) => this.provider.decapsulate(c));
      if (ticket) this.budget?.settle(ticket, mek !== undefined);
      return mek ? ok(mek) : fail('decrypt-failed');
    })());
    if (!unwrapped.ok) return unwrapped;
    // Another copy of this key (retained and live) or a newer one may have been installed meanwhile.
    const installed = this.topicKeys.latestSerial(k.publisherId, k.topic);
    if (installed !== undefined && k.keySerial <= installed) {
      unwrapped.value?.fill(0);
      return fail(k.keySerial === installed ? 'duplicate' : 'rollback');
    }
    const mek = unwrapped.value;
    if (!mek) {
      // Authentic, and this device is not a member: messages held for this key can never open.
      this.topicKeys.put(k.publisherId, k.topic, { serial: k.keySerial, dataKey: undefined, notAfter: Number(k.notAfter) }, now);
      this.releasePending(k.publisherId, k.topic, now);
      this.compactReceiver.keyArrived(k.publisherId, k.topic, now);
      return fail('not-for-me');
    }
    const dataKey = topicDataKey(mek);
    mek.fill(0);
    this.topicKeys.put(k.publisherId, k.topic, { serial: k.keySerial, dataKey, notAfter: Number(k.notAfter) }, now);
    const released = this.releasePending(k.publisherId, k.topic, now) + this.compactReceiver.keyArrived(k.publisherId, k.topic, now);
    return ok({ publisher: k.publisherId, topic: k.topic, serial: k.keySerial, released });
  }

  private async openTopic(topic: string, payload: Uint8Array, now: number): Promise<Result<OpenedMessage>> {
    const d = decodeTopicEnvelope(payload, this.limits);
    if (!d.ok) return d;
    const env = d.value;
    const sender = this.checkSender(env, topic, now);
    if (!sender.ok) return sender;
    const peer = sender.value;
    const key = this.topicKeys.find(env.senderId, topic, env.keySerial, now, this.limits.topicKeyGraceMs);
    if (key === 'superseded') return fail('no-key', 'the key of this message was replaced');
    if (key === 'excluded') return fail('not-for-me');
    if (key !== 'unknown') {
      // With its key at hand, AES-GCM (microseconds) goes before the signature (milliseconds):
      // only members of the topic hold the key, so forgeries from anyone else cost no
      // post-quantum check and no verification budget (§6.4, §6.7).
      const opened = await this.inSenderOrder(peer.deviceId, (async (): Promise<Result<Uint8Array>> => {
        const data = this.decryptTopic(env, topic, key, now);
        if (!data.ok) return data;
        const verified = await this.verifySender(peer, env, topic, now);
        return verified.ok ? data : verified;
      })());
      return opened.ok ? this.commit(peer, env, opened.value, topicSuite(peer)) : opened;
    }
    // No key yet: held from now on, released only once its signature verified (§6.4).
    if (this.pending.length >= this.limits.maxPendingMessages) return fail('no-key', 'too many messages waiting for keys');
    const verified = this.inSenderOrder(peer.deviceId, this.verifySender(peer, env, topic, now));
    return new Promise((resolve) => {
      const held: PendingMessage = { topic, env, peer, heldAt: now, verified, resolve };
      this.pending.push(held);
      void verified.then((v) => {
        if (v.ok) return;
        // A forgery does not wait for a key: out of the queue at once.
        this.pending = this.pending.filter((p) => p !== held);
        resolve(v);
      });
    });
  }

  /** AES-GCM under the (sender, topic) key of this envelope's serial (§4.5). */
  private decryptTopic(env: DecodedTopicEnvelope, topic: string, key: SubscriberTopicKey & { dataKey: KeyObject }, now: number): Result<Uint8Array> {
    if (key.notAfter > 0 && now > key.notAfter + this.limits.topicKeyGraceMs) return fail('expired', 'topic key past its schedule');
    const data = aesGcmOpen(key.dataKey, env.nonce, env.ciphertext, topicEnvelopeAad(topic, env.headerBytes));
    return data === undefined ? fail('decrypt-failed') : ok(data);
  }

  /** A verified envelope (held or just checked) and a key lookup result: decrypt and commit. */
  private openVerifiedTopic(
    peer: TrustedPeer, env: DecodedTopicEnvelope, topic: string, key: ReturnType<TopicKeyCache['find']>, now: number,
  ): Result<OpenedMessage> {
    if (key === 'unknown' || key === 'superseded') return fail('no-key', 'the key of this message was replaced');
    if (key === 'excluded') return fail('not-for-me');
    const data = this.decryptTopic(env, topic, key, now);
    return data.ok ? this.commit(peer, env, data.value, topicSuite(peer)) : data;
  }

  /** Resolves held messages of (publisher, topic) now that a key arrived; older serials fail. */
  private releasePending(publisherId: string, topic: string, now: number): number {
    let released = 0;
    this.pending = this.pending.filter((p) => {
      if (p.env.senderId !== publisherId || p.topic !== topic) return true;
      const key = this.topicKeys.find(publisherId, topic, p.env.keySerial, now, this.limits.topicKeyGraceMs);
      if (key === 'unknown') return true;
      p.resolve(p.verified.then((v) => (v.ok ? this.openVerifiedTopic(p.peer, p.env, p.topic, key, now) : v)));
      released++;
      return false;
    });
    return released;
  }

  // --- compact mode (docs/PROTOCOL.md §2.10–2.11, §4.8): receiver side in CompactReceiver ---------

  /**
   * Feeds one message from the batch manifest topics (§4.8): once its checks and signature pass
   * (order in CompactReceiver.handleManifest), its digests count as signed and held compact
   * envelopes listed by it are released. Manifests never reach the flow.
   */
  handleManifest(topic: string, payload: Uint8Array, clockNow: number): Promise<Result<ManifestVerdict>> {
    return this.compactReceiver.handleManifest(topic, payload, this.observeTime(clockNow));
  }

  /** What the compact receiver may use of this session (nothing else of it is reachable from there). */
  private compactReceiverSession(): CompactReceiverSession {
    return {
      deviceId: this.deviceId,
      limits: this.limits,
      batchManifestSender: (topic) => (this.isBatchManifestTopic(topic) ? topic.slice(this.batchManifestPrefix.length) : undefined),
      trustedPeer: (deviceId) => this.peers.get(deviceId),
      isRevoked: (deviceId, keyId) => this.isRevoked(deviceId, keyId),
      hasRevocationFor: (deviceId) => this.revocations.entries.some((e) => e.deviceId === deviceId),
      replayStatus: (deviceId, seq) => replayCheck(this.windowOf(deviceId), seq, this.limits.replayWindow),
      findTopicKey: (publisherId, topic, serial, now) => this.topicKeys.find(publisherId, topic, serial, now, this.limits.topicKeyGraceMs),
      // The session's own steps, called at each use: one verification counter and budget, one
      // order per sender and one replay window per sender, whichever mode asks.
      checkSignature: (peer, signature, digest, now) => this.checkSignature(peer, signature, digest, now),
      inSenderOrder: (queue, work) => this.inSenderOrder(queue, work),
      commit: (peer, message, data, suite) => this.commit(peer, message, data, suite),
    };
  }

  /**
   * Fails held messages whose key did not arrive within `pendingKeyWaitMs`, and compact envelopes
   * held for `compactWaitMs` (§4.8); returns how many.
   */
  expirePending(clockNow: number): number {
    const now = this.observeTime(clockNow);
    let expired = 0;
    this.pending = this.pending.filter((p) => {
      if (now - p.heldAt < this.limits.pendingKeyWaitMs) return true;
      p.resolve(p.verified.then((v) => (v.ok ? fail<OpenedMessage>('no-key') : v)));
      expired++;
      return false;
    });
    return expired + this.compactReceiver.expire(now);
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
    this.membershipVersion++;
    this.revocationBytes = Uint8Array.from(payload);
    this.trustChanges++;
    const untrusted: string[] = [];
    for (const [id, peer] of this.peers) {
      if (this.isRevoked(id, peer.keyId)) {
        this.peers.delete(id);
        this.announcements.delete(id);
        this.topicKeys.dropPublisher(id);
        untrusted.push(id);
      }
    }
    // Compact envelopes held for a revoked sender are never released (§4.8).
    this.compactReceiver.failUntrustedSenders();
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

  /** The applied revocation state (operator side builds the next update on it). */
  revocationState(): RevocationState {
    return this.revocations;
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
    // Decoded once: the provider's certificate does not change (hot path of every seal).
    this.ownCertificate ??= this.provider.certificate ? decodeCertificate(this.provider.certificate, this.limits) : undefined;
    const cert = this.ownCertificate;
    if (!cert || !cert.ok) throw new Error('this device has no valid certificate');
    if (!roleAllowsPublish(cert.value.roles) || !matchesAny(cert.value.topics, topic)) {
      throw new Error(`this device's certificate does not allow publishing on "${topic}"`);
    }
    const validity = checkValidity(cert.value, now);
    if (!validity.ok) throw new Error(`this device's certificate is ${validity.reason === 'expired' ? 'expired' : 'not yet valid'}`);
  }
}

function topicSuite(peer: Pick<TrustedPeer, 'sigAlgorithm'>): string {
  return `topic-key/${peer.sigAlgorithm}/AES-256-GCM`;
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
