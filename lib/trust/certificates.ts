/**
 * Issuing and verifying operational certificates (I1). docs/PROTOCOL.md §2.2 and §6.
 * The CA signs SHA-256 framed("pqc-iiot:cert:v1", certificate body).
 */
import { cryptoBackend } from '../crypto/backend';
import { LABELS, bytesEqual, domainDigest } from '../crypto/symmetric';
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import type { CaPublicKey } from '../wire/ca-key';
import { decodeCertificate, encodeCertificateBody, type CertificateFields, type DecodedCertificate } from '../wire/certificate';
import { appendSignature, deriveKeyId } from '../wire/common';

export function certificateDigest(body: Uint8Array): Uint8Array {
  return domainDigest(LABELS.certificate, [body]);
}

export interface CaSigner {
  readonly publicKey: CaPublicKey;
  readonly secretKey: Uint8Array;
}

/** Signs a certificate; `random` only for deterministic test vectors. */
export function signCertificate(
  ca: CaSigner,
  fields: Omit<CertificateFields, 'caKeyId' | 'caSigAlgorithm' | 'keyId'>,
  random?: Uint8Array,
): Uint8Array {
  const full: CertificateFields = {
    ...fields,
    keyId: deriveKeyId(fields.kemAlgorithm, fields.kemPublicKey, fields.sigAlgorithm, fields.sigPublicKey),
    caKeyId: ca.publicKey.keyId,
    caSigAlgorithm: ca.publicKey.sigAlgorithm,
  };
  const body = encodeCertificateBody(full);
  const sig = cryptoBackend().sign(ca.publicKey.sigAlgorithm, certificateDigest(body), ca.secretKey, random);
  return appendSignature(body, sig);
}

/**
 * Decodes and checks a certificate against the pinned CA: issuer, CA signature, key id
 * derivation, then validity at `now` (ms). Cheap checks come before the signature.
 */
export function verifyCertificate(
  bytes: Uint8Array,
  ca: CaPublicKey,
  now: number,
  limits: Limits = DEFAULT_LIMITS,
): Result<DecodedCertificate> {
  const d = decodeCertificate(bytes, limits);
  if (!d.ok) return d;
  const cert = d.value;
  if (!bytesEqual(cert.caKeyId, ca.keyId) || cert.caSigAlgorithm !== ca.sigAlgorithm) {
    return fail('bad-certificate', 'issued by another CA');
  }
  const derived = deriveKeyId(cert.kemAlgorithm, cert.kemPublicKey, cert.sigAlgorithm, cert.sigPublicKey);
  if (!bytesEqual(derived, cert.keyId)) return fail('key-id-mismatch', 'certificate key id');
  if (!cryptoBackend().verify(ca.sigAlgorithm, cert.signature, certificateDigest(cert.signedBytes), ca.publicKey)) {
    return fail('bad-certificate', 'CA signature does not verify');
  }
  const validity = checkValidity(cert, now);
  return validity.ok ? ok(cert) : validity;
}

export function checkValidity(cert: { notBefore: bigint; notAfter: bigint }, now: number): Result<true> {
  const t = BigInt(Math.floor(now));
  if (t < cert.notBefore) return fail('not-yet-valid');
  if (t > cert.notAfter) return fail('expired');
  return ok(true);
}
