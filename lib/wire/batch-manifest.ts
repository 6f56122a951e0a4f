/**
 * Batch manifest of compact mode (docs/PROTOCOL.md §2.11, §4.8): one signed list of the I3
 * message digests of a batch of a sender's compact envelopes (§2.10), published (not retained)
 * on `{batch_prefix}{sender_id}`. The signature covers
 *   manifest-digest = framed("pqc-iiot:batch-manifest:v1", every byte before the signature field)
 * so the sender id, its key, the timestamp, the count and every digest are signed; each digest
 * binds its envelope's sender id, MQTT topic and every byte of the envelope.
 */
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { appendSignature, keyId, sigAlgorithm, signature, signatureFits, signedPart } from './common';
import { decodeAll, deviceId, encode, struct, u32, u64, u8, type Field, type StructValue } from './fields';
import { header } from './header';

/** Bytes of one listed message digest (SHA-256). */
export const MANIFEST_DIGEST_BYTES = 32;
/** Most digests one manifest lists (u8 count). */
export const MAX_MANIFEST_DIGESTS = 255;

/** u8 count 1..255 (0 is `bad-field`), then count × 32-byte digests. */
const digestList: Field<Uint8Array[]> = {
  name: 'digests',
  encode(w, values) {
    if (values.length < 1 || values.length > MAX_MANIFEST_DIGESTS) throw new RangeError(`manifest of ${values.length} digests`);
    u8.encode(w, values.length);
    for (const d of values) {
      if (!(d instanceof Uint8Array) || d.length !== MANIFEST_DIGEST_BYTES) throw new RangeError('manifest digest must be 32 bytes');
      w.push(d);
    }
  },
  decode(r) {
    const n = u8.decode(r);
    if (n === undefined) return undefined;
    if (n === 0) return r.fail('bad-field');
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const d = r.take(MANIFEST_DIGEST_BYTES);
      if (d === undefined) return undefined;
      out.push(d);
    }
    return out;
  },
};

const bodyLayout = struct({
  header: header('batchManifest'),
  senderId: deviceId,
  senderKeyEpoch: u32,
  senderKeyId: keyId,
  sigAlgorithm,
  timestamp: u64,
  digests: digestList,
});

const manifestLayout = struct({ ...bodyLayout.fields, signature });

export type BatchManifestBody = Omit<StructValue<typeof bodyLayout.fields>, 'header'>;

export interface DecodedBatchManifest extends BatchManifestBody {
  readonly signature: Uint8Array;
  /** Every byte before the signature field: what manifest-digest covers. */
  readonly signedBytes: Uint8Array;
}

export function encodeBatchManifestBody(fields: BatchManifestBody): Uint8Array {
  return encode(bodyLayout, { ...fields, header: 'batchManifest' });
}

export function encodeBatchManifest(body: Uint8Array, sig: Uint8Array): Uint8Array {
  return appendSignature(body, sig);
}

/** What the sender signs for a manifest (§4.8). */
export function manifestDigest(signedBytes: Uint8Array): Uint8Array {
  return domainDigest(LABELS.batchManifest, [signedBytes]);
}

export function decodeBatchManifest(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedBatchManifest> {
  const r = decodeAll(manifestLayout, bytes, limits.maxManifestBytes);
  if (!r.ok) return r;
  const { header: _h, ...v } = r.value;
  if (!signatureFits(v.sigAlgorithm, v.signature)) return fail('bad-length', 'signature length');
  return ok({ ...v, signedBytes: signedPart(bytes, v.signature) });
}
