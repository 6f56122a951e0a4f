/**
 * Compact mode, receiver side (docs/PROTOCOL.md §2.10–2.11, §4.8): checks and decrypts compact
 * envelopes, holds them until a verified batch manifest of their sender's current key lists
 * their digest (and their key message arrived), checks manifests, and releases or fails what it
 * holds. The session owns one and hands it only what it needs (CompactReceiverSession): its
 * identity and limits, read-only views of its trust, replay and topic key state, and its shared
 * steps (signature check within the budget, ordering per sender, replay commit).
 */
import type { KeyObject } from 'node:crypto';
import { aesGcmOpen, bytesEqual } from '../crypto/symmetric';
import type { Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { checkValidity } from '../trust/certificates';
import { mayPublish, type TrustedPeer } from '../trust/peers';
import type { ReplayVerdict } from '../trust/replay';
import { decodeBatchManifest, manifestDigest } from '../wire/batch-manifest';
import { decodeCompactEnvelope, type DecodedCompactEnvelope } from '../wire/compact-envelope';
import { messageDigest } from '../wire/envelope';
import { isValidDeviceId } from '../wire/fields';
import { topicEnvelopeAad } from '../wire/topic-envelope';
import { VerifiedRoots } from './batch';
import { VerifiedDigests } from './compact';
import type { ManifestVerdict, OpenedMessage } from './session';
import { compactNonce, type SubscriberTopicKey, type TopicKeyCache } from './topic-keys';

/** What a compact receiver uses of its session; nothing else of the session is reachable. */
export interface CompactReceiverSession {
  /** This device: its own envelopes and manifests are refused (`own-message`). */
  readonly deviceId: string;
  readonly limits: Limits;
  /** The sender id a batch manifest topic `{batch_prefix}{id}` names (not validated yet); undefined for any other topic. */
  batchManifestSender(topic: string): string | undefined;
  /** The trusted peer of a device id, undefined when none (never trusted, revoked or replaced). */
  trustedPeer(deviceId: string): TrustedPeer | undefined;
  isRevoked(deviceId: string, keyId: Uint8Array): boolean;
  /** Whether an applied revocation update names any key of this device. */
  hasRevocationFor(deviceId: string): boolean;
  /** The sender's replay window, read-only (§5): the commit checks again. */
  replayStatus(deviceId: string, seq: bigint): ReplayVerdict;
  /** The subscriber key of (publisher, topic, serial), or why there is none (§6.4, grace included). */
  findTopicKey(publisherId: string, topic: string, serial: bigint, now: number): ReturnType<TopicKeyCache['find']>;
  /** One post-quantum signature check under the peer's key, within its verification budget (§6.7). */
  checkSignature(peer: TrustedPeer, signature: Uint8Array, digest: Uint8Array, now: number): Promise<Result<true>>;
  /** `work` already runs; its result is handed over only after earlier work queued under `queue`. */
  inSenderOrder<T>(queue: string, work: Promise<T>): Promise<T>;
  /** Replay re-check and commit (§5): the released message, or `duplicate`/`replay`. */
  commit(peer: TrustedPeer, message: { seq: bigint; timestamp: bigint }, data: Uint8Array, suite: string): Result<OpenedMessage>;
}

/** Sizes of the receiver's caches (SessionOptions `verifiedRoots` and `verifiedDigests`). */
export interface CompactReceiverCapacities {
  /** Byte-identical manifests already verified, remembered per key (0 checks every manifest). */
  verifiedManifests: number;
  /** Message digests of verified manifests, over all senders. */
  verifiedDigests: number;
}

/** A compact envelope waiting for its key message, its batch manifest, or both (§4.8). */
interface CompactHeld {
  topic: string;
  env: DecodedCompactEnvelope;
  senderId: string;
  /** I3 message digest of the whole envelope on this topic. */
  digest: Uint8Array;
  heldAt: number;
  /** The plaintext once AES-GCM authenticated it; undefined while the key message has not arrived. */
  data: Uint8Array | undefined;
  resolve: (r: Result<OpenedMessage>) => void;
}

export class CompactReceiver {
  private readonly verifiedManifests: VerifiedRoots;
  private readonly verifiedDigests: VerifiedDigests;
  private held: CompactHeld[] = [];

  constructor(private readonly session: CompactReceiverSession, capacities: CompactReceiverCapacities) {
    this.verifiedManifests = new VerifiedRoots(capacities.verifiedManifests);
    this.verifiedDigests = new VerifiedDigests(capacities.verifiedDigests);
  }

  /**
   * A compact envelope: sender checks and the replay window (read-only) first, then AES-GCM
   * under the topic key (cheap, members only); it is released only once a verified manifest of
   * its sender's current key lists its digest. Until then it is held, at most
   * `maxCompactPending` in all and `compactWaitMs` each (then `unsigned`, see `expire`).
   * `now` is the session's time floor.
   */
  open(topic: string, payload: Uint8Array, now: number): Result<OpenedMessage> | Promise<Result<OpenedMessage>> {
    const { limits } = this.session;
    const d = decodeCompactEnvelope(payload, limits);
    if (!d.ok) return d;
    const env = d.value;
    if (env.senderId === this.session.deviceId) return fail('own-message');
    // No key id on the wire: the envelope names its sender only, whose trusted key must sign it.
    const peer = this.session.trustedPeer(env.senderId);
    if (!peer || this.session.isRevoked(peer.deviceId, peer.keyId)) {
      return fail(this.session.hasRevocationFor(env.senderId) ? 'revoked' : 'unknown-sender');
    }
    if (!mayPublish(peer, topic)) return fail('not-authorized');
    const validity = checkValidity(peer, now);
    if (!validity.ok) return validity;
    const seen = this.session.replayStatus(peer.deviceId, env.seq);
    if (seen !== 'fresh') return fail(seen);
    const key = this.session.findTopicKey(env.senderId, topic, env.keySerial, now);
    if (key === 'superseded') return fail('no-key', 'the key of this message was replaced');
    if (key === 'excluded') return fail('not-for-me');
    let data: Uint8Array | undefined;
    if (key !== 'unknown') {
      const opened = this.decrypt(env, topic, key, now);
      if (!opened.ok) return opened;
      data = opened.value;
    }
    const digest = messageDigest(env.senderId, topic, payload);
    const signedAt = this.verifiedDigests.find(peer.keyId, digest);
    if (data !== undefined && signedAt !== undefined) return this.session.commit(peer, { seq: env.seq, timestamp: BigInt(signedAt) }, data, compactSuite(peer));
    if (this.held.length >= limits.maxCompactPending) {
      return fail(data === undefined ? 'no-key' : 'unsigned', 'too many compact envelopes waiting');
    }
    return new Promise((resolve) => {
      this.held.push({ topic, env, senderId: env.senderId, digest, heldAt: now, data, resolve });
    });
  }

  /**
   * Feeds one message from the batch manifest topics (§4.8). Order: size, topic and sender id,
   * own, decoding, topic id = sender id, revoked, trusted sender with this key, certificate
   * validity, clock skew, then the signature within the verification budget (a byte-identical
   * copy of a verified manifest costs no check). Only then do its digests count as signed, and
   * held compact envelopes listed by it are released. `now` is the session's time floor.
   */
  async handleManifest(topic: string, payload: Uint8Array, now: number): Promise<Result<ManifestVerdict>> {
    const { limits } = this.session;
    if (!(payload instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
    if (payload.length > limits.maxManifestBytes) return fail('too-large');
    const topicId = this.session.batchManifestSender(topic);
    if (topicId === undefined) return fail('topic-mismatch');
    if (!isValidDeviceId(topicId)) return fail('bad-id');
    if (topicId === this.session.deviceId) return fail('own-message');
    const d = decodeBatchManifest(payload, limits);
    if (!d.ok) return d;
    const m = d.value;
    if (m.senderId !== topicId) return fail('topic-mismatch');
    if (this.session.isRevoked(m.senderId, m.senderKeyId)) return fail('revoked');
    const peer = this.session.trustedPeer(m.senderId);
    if (!peer) return fail('unknown-sender');
    if (m.senderKeyEpoch !== peer.keyEpoch || !bytesEqual(m.senderKeyId, peer.keyId) || m.sigAlgorithm !== peer.sigAlgorithm) {
      return fail('stale-key');
    }
    const validity = checkValidity(peer, now);
    if (!validity.ok) return validity;
    if (limits.maxClockSkewMs > 0 && Math.abs(Number(m.timestamp) - now) > limits.maxClockSkewMs) return fail('stale');
    const digest = manifestDigest(m.signedBytes);
    // Checked at once (possibly off the main thread), applied in arrival order per sender: a later
    // manifest verified first would release newer envelopes ahead of older held ones, and push
    // those out of the replay window (§5).
    const signed = await this.session.inSenderOrder(
      `manifest:${m.senderId}`,
      this.verifiedManifests.check(peer.keyId, digest, m.signature, () => this.session.checkSignature(peer, m.signature, digest, now)),
    );
    if (!signed.ok) return signed;
    // Revoked or rotated while the signature was checked: its digests count for nothing now.
    if (this.session.trustedPeer(m.senderId) !== peer) return fail(this.session.isRevoked(m.senderId, peer.keyId) ? 'revoked' : 'stale-key');
    for (const listed of m.digests) this.verifiedDigests.add(peer.keyId, listed, Number(m.timestamp));
    return ok({ sender: m.senderId, digests: m.digests.length, released: this.release(peer) });
  }

  /** A key for (publisher, topic) was installed: decrypt the compact envelopes held for it; returns how many were released. */
  keyArrived(publisherId: string, topic: string, now: number): number {
    let touched = false;
    this.held = this.held.filter((h) => {
      if (h.senderId !== publisherId || h.topic !== topic || h.data !== undefined) return true;
      const key = this.session.findTopicKey(publisherId, topic, h.env.keySerial, now);
      if (key === 'unknown') return true;
      const opened = key === 'superseded' ? fail<Uint8Array>('no-key') : key === 'excluded' ? fail<Uint8Array>('not-for-me') : this.decrypt(h.env, topic, key, now);
      if (!opened.ok) {
        h.resolve(opened);
        return false;
      }
      h.data = opened.value;
      touched = true;
      return true;
    });
    const peer = this.session.trustedPeer(publisherId);
    return touched && peer ? this.release(peer) : 0;
  }

  /** Compact envelopes held for a sender that lost its trust (revocation) are never released (§4.8): `revoked`. */
  failUntrustedSenders(): void {
    this.held = this.held.filter((h) => {
      if (this.session.trustedPeer(h.senderId)) return true;
      h.resolve(fail('revoked'));
      return false;
    });
  }

  /** Fails envelopes held for `compactWaitMs` or longer; returns how many. */
  expire(now: number): number {
    let expired = 0;
    this.held = this.held.filter((h) => {
      if (now - h.heldAt < this.session.limits.compactWaitMs) return true;
      // Signed but its key never came: no-key; otherwise its manifest never verified: unsigned.
      const peer = this.session.trustedPeer(h.senderId);
      const signed = peer !== undefined && this.verifiedDigests.find(peer.keyId, h.digest) !== undefined;
      h.resolve(fail(signed && h.data === undefined ? 'no-key' : 'unsigned'));
      expired++;
      return false;
    });
    return expired;
  }

  /** Commits the held compact envelopes of `peer` that are decrypted and listed by a verified manifest. */
  private release(peer: TrustedPeer): number {
    let released = 0;
    this.held = this.held.filter((h) => {
      if (h.senderId !== peer.deviceId || h.data === undefined) return true;
      const signedAt = this.verifiedDigests.find(peer.keyId, h.digest);
      if (signedAt === undefined) return true;
      h.resolve(this.session.commit(peer, { seq: h.env.seq, timestamp: BigInt(signedAt) }, h.data, compactSuite(peer)));
      released++;
      return false;
    });
    return released;
  }

  /** AES-GCM of a compact envelope: the nonce comes from its sequence number (§4.8). */
  private decrypt(env: DecodedCompactEnvelope, topic: string, key: SubscriberTopicKey & { dataKey: KeyObject }, now: number): Result<Uint8Array> {
    if (key.notAfter > 0 && now > key.notAfter + this.session.limits.topicKeyGraceMs) return fail('expired', 'topic key past its schedule');
    const data = aesGcmOpen(key.dataKey, compactNonce(env.seq), env.ciphertext, topicEnvelopeAad(topic, env.headerBytes));
    return data === undefined ? fail('decrypt-failed') : ok(data);
  }
}

function compactSuite(peer: Pick<TrustedPeer, 'sigAlgorithm'>): string {
  return `topic-key/${peer.sigAlgorithm}/AES-256-GCM/compact`;
}
