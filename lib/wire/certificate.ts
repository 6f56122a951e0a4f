/**
 * Operational certificate: a CA signature binding a device id to its key epoch, key id, both
 * public keys, a validity window, roles and allowed topic filters. docs/PROTOCOL.md §2.2.
 * This module only encodes and decodes; trust/certificates.ts issues and verifies.
 */
import { DEFAULT_LIMITS, type Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { isValidTopicFilter } from '../trust/topics';
import { deviceKeyFields, keyId, kemKeyFits, sigAlgorithm, sigKeyFits, signature, signatureFits, signedPart } from './common';
import { decodeAll, encode, list, struct, text16, u64, u8, type StructValue } from './fields';
import { header } from './header';

export const ROLES = Object.freeze({ pub: 1, sub: 2, both: 3 } as const);
export type Role = keyof typeof ROLES;

export function roleFromCode(code: number): Role | undefined {
  return (Object.keys(ROLES) as Role[]).find((r) => ROLES[r] === code);
}

export function roleAllowsPublish(role: Role): boolean {
  return role === 'pub' || role === 'both';
}

export function roleAllowsSubscribe(role: Role): boolean {
  return role === 'sub' || role === 'both';
}

const tbsLayout = struct({
  header: header('certificate'),
  ...deviceKeyFields,
  notBefore: u64,
  notAfter: u64,
  roles: u8,
  topics: list(text16(65535), 255),
  caKeyId: keyId,
  caSigAlgorithm: sigAlgorithm,
});

const certificateLayout = struct({ ...tbsLayout.fields, signature });

export type CertificateFields = Omit<StructValue<typeof tbsLayout.fields>, 'header' | 'roles'> & { roles: Role };

export interface DecodedCertificate extends CertificateFields {
  readonly signature: Uint8Array;
  /** The bytes the CA signature covers. */
  readonly signedBytes: Uint8Array;
  /** The whole encoding, as received. */
  readonly bytes: Uint8Array;
}

export function encodeCertificateBody(fields: CertificateFields): Uint8Array {
  return encode(tbsLayout, { ...fields, header: 'certificate', roles: ROLES[fields.roles] });
}

/** Size, framing and field checks only; the CA signature is checked by verifyCertificate. */
export function decodeCertificate(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Result<DecodedCertificate> {
  const r = decodeAll(certificateLayout, bytes, limits.maxCertificateBytes);
  if (!r.ok) return r;
  const v = r.value;
  const roles = roleFromCode(v.roles);
  if (roles === undefined) return fail('bad-field', 'roles');
  if (!kemKeyFits(v.kemAlgorithm, v.kemPublicKey) || !sigKeyFits(v.sigAlgorithm, v.sigPublicKey)) {
    return fail('bad-length', 'public key length does not match its algorithm');
  }
  if (!signatureFits(v.caSigAlgorithm, v.signature)) return fail('bad-length', 'CA signature length');
  if (v.notAfter < v.notBefore) return fail('bad-field', 'validity window');
  if (v.topics.length > limits.maxTopicFilters) return fail('bad-length', 'too many topic filters');
  for (const t of v.topics) {
    if (!isValidTopicFilter(t, limits.maxTopicBytes)) return fail('bad-field', 'topic filter');
  }
  const { header: _h, roles: _r, ...rest } = v;
  return ok({
    ...rest,
    roles,
    signedBytes: signedPart(bytes, v.signature),
    bytes,
  });
}
