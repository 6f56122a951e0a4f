/**
 * The identity file of a device whose keys live in a PKCS#11 token: the public half of an
 * identity bundle (docs/PROTOCOL.md §6) plus a reference to the token, and no secret field at all.
 * It can be pasted into the pqc-config node's identity credential or passed to `pqc-iiot ca issue`
 * like a software identity; without the token (and its PIN) it signs and decrypts nothing.
 *
 *   { "format": "pqc-iiot-identity-pkcs11/1", "deviceId", "keyEpoch", "keyId", "kemAlgorithm",
 *     "sigAlgorithm", "kemPublicKey", "sigPublicKey", "certificate": base64 | null,
 *     "pkcs11": { "module", "token", "keyLabel", "keyStorage": "wrapped-aes-256-gcm" } }
 */
import {
  parseCertificateFor, parseJsonObject, parsePublicIdentityFields, publicIdentityFields, type IdentityBundle, type PublicIdentity,
} from '../../session/identity';

export const PKCS11_IDENTITY_FORMAT = 'pqc-iiot-identity-pkcs11/1';

/**
 * How the post-quantum secret keys are held: encrypted by a non-extractable AES-256 key of the
 * token (AES-GCM in the token) and stored as a private token object. A token offering PKCS#11 3.2
 * ML-KEM/ML-DSA would allow keys generated and used in the token ("in-token"); not implemented,
 * because no token available here offers them to test against.
 */
export type KeyStorage = 'wrapped-aes-256-gcm';

export interface Pkcs11Reference {
  /** Path of the PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string;
  /** Token label (CKA_LABEL of the token, at most 32 characters). */
  readonly token: string;
  /** Label of the AES key in the token; the wrapped identity is stored as `identity/<keyLabel>`. */
  readonly keyLabel: string;
  readonly keyStorage: KeyStorage;
}

export type { PublicIdentity };

export interface Pkcs11Identity extends PublicIdentity {
  readonly pkcs11: Pkcs11Reference;
}

const TOKEN_LABEL = /^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/;
const KEY_LABEL = /^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$/;

/** Token labels are 32 printable ASCII characters at most (the CK_TOKEN_INFO field). */
export function isValidTokenLabel(label: unknown): label is string {
  return typeof label === 'string' && TOKEN_LABEL.test(label);
}

export function isValidKeyLabel(label: unknown): label is string {
  return typeof label === 'string' && KEY_LABEL.test(label);
}

export function defaultKeyLabel(deviceId: string): string {
  return `pqc-iiot/${deviceId}`;
}

export function pkcs11IdentityToJson(id: Pkcs11Identity): string {
  return JSON.stringify({
    format: PKCS11_IDENTITY_FORMAT,
    ...publicIdentityFields(id),
    certificate: id.certificate ? Buffer.from(id.certificate).toString('base64') : null,
    pkcs11: { module: id.pkcs11.module, token: id.pkcs11.token, keyLabel: id.pkcs11.keyLabel, keyStorage: id.pkcs11.keyStorage },
  }, null, 2);
}

/** Cheap test on a pasted credential or file, before choosing the parser. */
export function isPkcs11IdentityJson(text: string): boolean {
  try {
    const o = JSON.parse(text) as unknown;
    return o !== null && typeof o === 'object' && (o as { format?: unknown }).format === PKCS11_IDENTITY_FORMAT;
  } catch {
    return false;
  }
}

/**
 * Parses and checks a PKCS#11 identity file: format, the public fields and certificate binding
 * (the same checks as a software identity file), and the token reference. Refuses a file that
 * carries secret keys. Throws Error with a secret-free message.
 */
export function parsePkcs11IdentityJson(text: string): Pkcs11Identity {
  const o = parseJsonObject(text, 'identity');
  if (o.format !== PKCS11_IDENTITY_FORMAT) throw new Error(`identity: "format" must be "${PKCS11_IDENTITY_FORMAT}"`);
  for (const secret of ['kemSecretKey', 'sigSecretKey', 'secretKey']) {
    if (secret in o) throw new Error(`identity: a PKCS#11 identity file must not hold "${secret}"`);
  }
  const keys = parsePublicIdentityFields(o);
  const certificate = parseCertificateFor(o, keys);

  const ref = o.pkcs11;
  if (ref === null || typeof ref !== 'object' || Array.isArray(ref)) throw new Error('identity: "pkcs11" must be an object { module, token, keyLabel }');
  const r = ref as Record<string, unknown>;
  if (typeof r.module !== 'string' || r.module.trim() === '') throw new Error('identity: "pkcs11.module" must be the path of the PKCS#11 module');
  if (!isValidTokenLabel(r.token)) throw new Error('identity: "pkcs11.token" must be a token label of 1 to 32 printable characters');
  if (!isValidKeyLabel(r.keyLabel)) throw new Error('identity: "pkcs11.keyLabel" must be 1 to 128 printable characters');
  if (r.keyStorage !== 'wrapped-aes-256-gcm') throw new Error('identity: "pkcs11.keyStorage" must be "wrapped-aes-256-gcm"');

  return Object.freeze({
    ...keys,
    ...(certificate ? { certificate } : {}),
    pkcs11: Object.freeze({ module: r.module, token: r.token, keyLabel: r.keyLabel, keyStorage: r.keyStorage }),
  });
}

/**
 * The identity as an IdentityBundle with empty secret keys, for `issueCertificate`, which reads
 * the public fields only. Never give it to a SoftwareProvider: it can neither sign nor decrypt.
 */
export function publicBundleOf(id: PublicIdentity): IdentityBundle {
  return Object.freeze({
    deviceId: id.deviceId, keyEpoch: id.keyEpoch, keyId: id.keyId, kemAlgorithm: id.kemAlgorithm, sigAlgorithm: id.sigAlgorithm,
    kemPublicKey: id.kemPublicKey, sigPublicKey: id.sigPublicKey, kemSecretKey: new Uint8Array(0), sigSecretKey: new Uint8Array(0),
    ...(id.certificate ? { certificate: id.certificate } : {}),
  });
}
