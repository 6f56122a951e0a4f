/**
 * Key announcement, published retained on `pqc/keys/{device_id}`. docs/PROTOCOL.md §2.3.
 * Seed 000's key advertisement (magic, version, ML-KEM pk, Falcon pk, signature) extended as
 * seed 004 I1/I2 require: device id, key epoch and key id, algorithm bytes, issue time and the
 * CA certificate; the detached signature covers a domain-separated digest bound to the id.
 */
import { MAX_SIGNATURE_BYTES } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { appendSignature, deviceKeyFields, kemKeyFits, sigKeyFits, signature, signatureFits, signedPart } from './common';
import { decodeAll, encode, sized, struct, u64, type StructValue } from './fields';
import { header } from './header';

const bodyLayout = struct({
  header: header('announcement'),
  ...deviceKeyFields,
  issuedAt: u64,
  /** Empty when the device has no certificate (accepted only outside strict mode). */
  certificate: sized(2, 65535, 0),
});

const announcementLayout = struct({ ...bodyLayout.fields, signature });

export type AnnouncementFields = Omit<StructValue<typeof bodyLayout.fields>, 'header'>;

export interface DecodedAnnouncement extends AnnouncementFields {
  readonly signature: Uint8Array;
  readonly signedBytes: Uint8Array;
}

export function encodeAnnouncementBody(fields: AnnouncementFields): Uint8Array {
  return encode(bodyLayout, { ...fields, header: 'announcement' });
}

/** What the device signs: SHA-256 framed("pqc-iiot:announce:v1", device id, body). */
export function announcementDigest(id: string, body: Uint8Array): Uint8Array {
  return domainDigest(LABELS.announcement, [id, body]);
}

export function encodeAnnouncement(body: Uint8Array, sig: Uint8Array): Uint8Array {
  if (sig.length < 1 || sig.length > MAX_SIGNATURE_BYTES) throw new RangeError('signature length');
  return appendSignature(body, sig);
}

export function decodeAnnouncement(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedAnnouncement> {
  const r = decodeAll(announcementLayout, bytes, limits.maxAnnouncementBytes);
  if (!r.ok) return r;
  const { header: _h, ...v } = r.value;
  if (!kemKeyFits(v.kemAlgorithm, v.kemPublicKey) || !sigKeyFits(v.sigAlgorithm, v.sigPublicKey)) {
    return fail('bad-length', 'public key length does not match its algorithm');
  }
  if (!signatureFits(v.sigAlgorithm, v.signature)) return fail('bad-length', 'signature length');
  if (v.certificate.length > limits.maxCertificateBytes) return fail('too-large', 'certificate');
  return ok({ ...v, signedBytes: signedPart(bytes, v.signature) });
}
