/**
 * Revocation update (I7): a CA-signed, cumulative list of revoked (device id, key id) pairs with
 * a monotonic sequence number, bound to the topic it is published on (retained, default
 * `pqc/revocations`). Cumulative because a retained topic keeps only the latest update, and a
 * late joiner must learn every revocation from it. docs/PROTOCOL.md §2.6.
 */
import { KEY_ID_BYTES, type SigAlgorithm } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { appendSignature, keyId, sigAlgorithm, signature, signatureFits, signedPart, toHex } from './common';
import { countedList, decodeAll, deviceId, encode, struct, text16, u64 } from './fields';
import { header } from './header';

/** A key id of sixteen zero bytes revokes every key of the device. */
export const ALL_KEYS = new Uint8Array(KEY_ID_BYTES);

export interface RevocationEntry {
  readonly deviceId: string;
  readonly keyId: Uint8Array;
}

const entryLayout = struct({ deviceId, keyId });

/** Canonical order: by device id, then key id; the encoding is unique for a set of entries. */
export function compareEntries(a: RevocationEntry, b: RevocationEntry): number {
  if (a.deviceId !== b.deviceId) return a.deviceId < b.deviceId ? -1 : 1;
  return Buffer.compare(Buffer.from(a.keyId), Buffer.from(b.keyId));
}

export function entryKey(e: RevocationEntry): string {
  return `${e.deviceId}/${toHex(e.keyId)}`;
}

/** u32 count, then entries in strictly ascending canonical order (else `bad-field`); smallest entry: id (2) + key id (16). */
const entryList = countedList(entryLayout, 4, 18, compareEntries);

const bodyLayout = struct({
  header: header('revocation'),
  topic: text16(65535),
  seq: u64,
  issuedAt: u64,
  entries: entryList,
  caKeyId: keyId,
  caSigAlgorithm: sigAlgorithm,
});

const revocationLayout = struct({ ...bodyLayout.fields, signature });

export interface RevocationFields {
  topic: string;
  seq: bigint;
  issuedAt: bigint;
  entries: RevocationEntry[];
  caKeyId: Uint8Array;
  caSigAlgorithm: SigAlgorithm;
}

export interface DecodedRevocation extends RevocationFields {
  readonly signature: Uint8Array;
  readonly signedBytes: Uint8Array;
}

export function encodeRevocationBody(fields: RevocationFields): Uint8Array {
  const entries = [...fields.entries].sort(compareEntries);
  return encode(bodyLayout, { ...fields, entries, header: 'revocation' });
}

export function encodeRevocation(body: Uint8Array, sig: Uint8Array): Uint8Array {
  return appendSignature(body, sig);
}

/** What the CA signs: SHA-256 framed("pqc-iiot:revocation:v1", topic, body). */
export function revocationDigest(topic: string, body: Uint8Array): Uint8Array {
  return domainDigest(LABELS.revocation, [topic, body]);
}

export function decodeRevocation(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedRevocation> {
  const r = decodeAll(revocationLayout, bytes, limits.maxRevocationBytes);
  if (!r.ok) return r;
  const { header: _h, ...v } = r.value;
  if (!signatureFits(v.caSigAlgorithm, v.signature)) return fail('bad-length', 'CA signature length');
  return ok({ ...v, signedBytes: signedPart(bytes, v.signature) });
}
