/**
 * Applying and issuing revocation updates (I7). docs/PROTOCOL.md §2.6 and §6.3.
 * Receivers keep the highest applied sequence number and the set of revoked keys; an update
 * must be signed by the pinned CA, bound to the configured revocation topic, strictly newer, and
 * a superset of what was applied (revocation is monotonic and additive: no unrevoke).
 */
import { cryptoBackend } from '../crypto/backend';
import { bytesEqual } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import type { CaPublicKey } from '../wire/ca-key';
import { toHex } from '../wire/common';
import { isValidDeviceId } from '../wire/fields';
import {
  ALL_KEYS, decodeRevocation, encodeRevocation, encodeRevocationBody, entryKey, revocationDigest, type RevocationEntry,
} from '../wire/revocation';
import type { CaSigner } from './certificates';

export interface RevocationState {
  /** Highest applied update; -1n before the first. */
  readonly seq: bigint;
  /** Keys of revoked entries ("device/keyhex"; all-zero key hex = every key of the device). */
  readonly revoked: ReadonlySet<string>;
  /** The applied entries, in canonical order (the next update is built on them). */
  readonly entries: readonly RevocationEntry[];
}

export const EMPTY_REVOCATIONS: RevocationState = Object.freeze({ seq: -1n, revoked: new Set<string>(), entries: [] });

const ALL_KEYS_HEX = toHex(ALL_KEYS);

export function isRevoked(state: RevocationState, deviceId: string, keyId: Uint8Array): boolean {
  return state.revoked.has(`${deviceId}/${ALL_KEYS_HEX}`) || state.revoked.has(`${deviceId}/${toHex(keyId)}`);
}

export interface AppliedRevocation {
  state: RevocationState;
  /** Entries this update added. */
  added: RevocationEntry[];
}

/**
 * Checks one update received on `topic`. The update names the topic it was issued for, and that
 * must be both the topic it arrived on and the configured one (a copy re-published elsewhere, or
 * an update for another plant's topic, is refused).
 */
export function applyRevocation(
  state: RevocationState,
  bytes: Uint8Array,
  topic: string,
  configuredTopic: string,
  ca: CaPublicKey,
  limits: Limits = DEFAULT_LIMITS,
): Result<AppliedRevocation> {
  if (!(bytes instanceof Uint8Array)) return fail('bad-field', 'payload is not bytes');
  if (bytes.length > limits.maxRevocationBytes) return fail('too-large');
  if (topic !== configuredTopic) return fail('topic-mismatch', 'not the configured revocation topic');
  const d = decodeRevocation(bytes, limits);
  if (!d.ok) return d;
  const u = d.value;
  if (u.topic !== topic) return fail('topic-mismatch', 'update was issued for another topic');
  if (!bytesEqual(u.caKeyId, ca.keyId) || u.caSigAlgorithm !== ca.sigAlgorithm) return fail('bad-signature', 'issued by another CA');
  if (u.seq < state.seq) return fail('rollback', `sequence ${u.seq} < applied ${state.seq}`);
  if (u.seq === state.seq) {
    const same = u.entries.length === state.entries.length && u.entries.every((e) => state.revoked.has(entryKey(e)));
    return same ? fail('duplicate') : fail('rollback', 'same sequence, different entries');
  }
  const incoming = new Set(u.entries.map(entryKey));
  for (const k of state.revoked) if (!incoming.has(k)) return fail('rollback', 'update drops revoked entries');
  if (!cryptoBackend().verify(ca.sigAlgorithm, u.signature, revocationDigest(u.topic, u.signedBytes), ca.publicKey)) {
    return fail('bad-signature');
  }
  const added = u.entries.filter((e) => !state.revoked.has(entryKey(e)));
  return ok({ state: Object.freeze({ seq: u.seq, revoked: incoming, entries: Object.freeze([...u.entries]) }), added });
}

/**
 * CA side: the next update after `state`, adding `add` (duplicates ignored). Returns the bytes
 * to publish (retained) and the state they represent.
 */
export function issueRevocation(
  ca: CaSigner,
  state: RevocationState,
  add: readonly RevocationEntry[],
  topic: string,
  issuedAt: number,
  random?: Uint8Array,
): { bytes: Uint8Array; state: RevocationState } {
  for (const e of add) {
    if (!isValidDeviceId(e.deviceId)) throw new Error('device id must be 1 to 128 characters of A-Z a-z 0-9 _ . -');
    if (!(e.keyId instanceof Uint8Array) || e.keyId.length !== ALL_KEYS.length) throw new Error('key id must be 16 bytes (32 hex digits)');
  }
  const merged = new Map<string, RevocationEntry>();
  for (const e of [...state.entries, ...add]) merged.set(entryKey(e), { deviceId: e.deviceId, keyId: Uint8Array.from(e.keyId) });
  const entries = [...merged.values()];
  const seq = state.seq + 1n;
  const body = encodeRevocationBody({
    topic, seq, issuedAt: BigInt(Math.floor(issuedAt)), entries, caKeyId: ca.publicKey.keyId, caSigAlgorithm: ca.publicKey.sigAlgorithm,
  });
  const sig = cryptoBackend().sign(ca.publicKey.sigAlgorithm, revocationDigest(topic, body), ca.secretKey, random);
  const bytes = encodeRevocation(body, sig);
  return { bytes, state: Object.freeze({ seq, revoked: new Set(merged.keys()), entries: Object.freeze(entries) }) };
}
