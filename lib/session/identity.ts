/**
 * Device identities and CA key pairs as provisioned by the CLI or the editor, and their JSON
 * files. A bundle holds secret keys: it lives only in credentials or 0600 files, and nothing
 * here puts a secret into an error message. docs/PROTOCOL.md §6.
 */
import {
  DEFAULT_CA_SIG, DEFAULT_KEM, DEFAULT_SIG, KEM_ALGORITHMS, SIG_ALGORITHMS, isKemAlgorithm, isSigAlgorithm,
  type KemAlgorithm, type SigAlgorithm,
} from '../crypto/algorithms';
import { cryptoBackend } from '../crypto/backend';
import { signCertificate } from '../trust/certificates';
import { isValidTopicFilter } from '../trust/topics';
import { caPublicKey, caPublicKeyToText, parseCaPublicKeyText, type CaPublicKey } from '../wire/ca-key';
import { decodeCertificate, type Role } from '../wire/certificate';
import { deriveKeyId, toHex } from '../wire/common';
import { isValidDeviceId } from '../wire/fields';

export const IDENTITY_FORMAT = 'pqc-iiot-identity/1';
export const CA_FORMAT = 'pqc-iiot-ca/1';

/** The public side of an identity: what peers see, and all a hardware-backed file holds. */
export interface PublicIdentity {
  readonly deviceId: string;
  readonly keyEpoch: number;
  readonly kemAlgorithm: KemAlgorithm;
  readonly sigAlgorithm: SigAlgorithm;
  readonly kemPublicKey: Uint8Array;
  readonly sigPublicKey: Uint8Array;
  readonly keyId: Uint8Array;
  /** CA-issued certificate (wire bytes), absent until `issueCertificate`. */
  readonly certificate?: Uint8Array;
}

/** A software identity: the public side plus both secret keys. */
export interface IdentityBundle extends PublicIdentity {
  readonly kemSecretKey: Uint8Array;
  readonly sigSecretKey: Uint8Array;
}

export interface CaKeyPair {
  readonly publicKey: CaPublicKey;
  readonly secretKey: Uint8Array;
}

export interface CreateIdentityOptions {
  deviceId: string;
  kemAlgorithm?: KemAlgorithm;
  sigAlgorithm?: SigAlgorithm;
  keyEpoch?: number;
  /** Deterministic key generation for test vectors only. */
  seeds?: { kem: Uint8Array; sig: Uint8Array };
}

export function createIdentity(opts: CreateIdentityOptions): IdentityBundle {
  if (!isValidDeviceId(opts.deviceId)) {
    throw new Error('device id must be 1 to 128 characters of A-Z a-z 0-9 _ . -');
  }
  const kemAlgorithm = opts.kemAlgorithm ?? DEFAULT_KEM;
  const sigAlgorithm = opts.sigAlgorithm ?? DEFAULT_SIG;
  if (!isKemAlgorithm(kemAlgorithm)) throw new Error(`unknown KEM algorithm ${shown(kemAlgorithm)}`);
  if (!isSigAlgorithm(sigAlgorithm)) throw new Error(`unknown signature algorithm ${shown(sigAlgorithm)}`);
  const keyEpoch = opts.keyEpoch ?? 1;
  if (!Number.isInteger(keyEpoch) || keyEpoch < 0 || keyEpoch > 0xffffffff) throw new Error('key epoch must be an integer from 0 to 4294967295');
  const backend = cryptoBackend();
  const kem = backend.kemKeygen(kemAlgorithm, opts.seeds?.kem);
  const sig = backend.sigKeygen(sigAlgorithm, opts.seeds?.sig);
  return Object.freeze({
    deviceId: opts.deviceId,
    keyEpoch,
    kemAlgorithm,
    sigAlgorithm,
    kemPublicKey: kem.publicKey,
    kemSecretKey: kem.secretKey,
    sigPublicKey: sig.publicKey,
    sigSecretKey: sig.secretKey,
    keyId: deriveKeyId(kemAlgorithm, kem.publicKey, sigAlgorithm, sig.publicKey),
  });
}

export function createCa(opts: { sigAlgorithm?: SigAlgorithm; seed?: Uint8Array } = {}): CaKeyPair {
  const alg = opts.sigAlgorithm ?? DEFAULT_CA_SIG;
  if (!isSigAlgorithm(alg)) throw new Error(`unknown signature algorithm ${shown(alg)}`);
  const kp = cryptoBackend().sigKeygen(alg, opts.seed);
  return Object.freeze({ publicKey: caPublicKey(alg, kp.publicKey), secretKey: kp.secretKey });
}

export interface IssueOptions {
  roles: Role;
  topics: string[];
  /** Validity window in ms since the Unix epoch. */
  notBefore: number;
  notAfter: number;
  /** Deterministic signing for test vectors only. */
  random?: Uint8Array;
}

/** Returns a copy of the bundle with a certificate signed by the CA. */
export function issueCertificate(ca: CaKeyPair, identity: IdentityBundle, opts: IssueOptions): IdentityBundle {
  if (opts.roles !== 'pub' && opts.roles !== 'sub' && opts.roles !== 'both') throw new Error('roles must be pub, sub or both');
  if (!Array.isArray(opts.topics) || opts.topics.length < 1 || opts.topics.length > 255) {
    throw new Error('a certificate needs 1 to 255 topic filters');
  }
  for (const t of opts.topics) {
    if (!isValidTopicFilter(t)) throw new Error(`invalid topic filter ${JSON.stringify(t)}`);
  }
  if (!Number.isSafeInteger(opts.notBefore) || !Number.isSafeInteger(opts.notAfter) || opts.notAfter < opts.notBefore || opts.notBefore < 0) {
    throw new Error('validity window must be two integers (ms) with notBefore <= notAfter');
  }
  const certificate = signCertificate(ca, {
    deviceId: identity.deviceId,
    keyEpoch: identity.keyEpoch,
    kemAlgorithm: identity.kemAlgorithm,
    kemPublicKey: identity.kemPublicKey,
    sigAlgorithm: identity.sigAlgorithm,
    sigPublicKey: identity.sigPublicKey,
    notBefore: BigInt(opts.notBefore),
    notAfter: BigInt(opts.notAfter),
    roles: opts.roles,
    topics: opts.topics,
  }, opts.random);
  return Object.freeze({ ...identity, certificate });
}

/** Quotes a user-supplied name in an error only if it looks like a name, never like key material. */
function shown(value: unknown): string {
  return typeof value === 'string' && /^[A-Za-z0-9_.-]{1,24}$/.test(value) ? JSON.stringify(value) : '(value not shown)';
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/**
 * The public fields of an identity file, in file order: a software identity (`identityToJson`)
 * and a token identity (lib/io/pkcs11/identity-file.ts) both begin with them.
 */
export function publicIdentityFields(id: PublicIdentity): Record<string, string | number> {
  return {
    deviceId: id.deviceId,
    keyEpoch: id.keyEpoch,
    keyId: toHex(id.keyId),
    kemAlgorithm: id.kemAlgorithm,
    sigAlgorithm: id.sigAlgorithm,
    kemPublicKey: b64(id.kemPublicKey),
    sigPublicKey: b64(id.sigPublicKey),
  };
}

export function identityToJson(b: IdentityBundle): string {
  return JSON.stringify({
    format: IDENTITY_FORMAT,
    ...publicIdentityFields(b),
    kemSecretKey: b64(b.kemSecretKey),
    sigSecretKey: b64(b.sigSecretKey),
    certificate: b.certificate ? b64(b.certificate) : null,
  }, null, 2);
}

function field(o: Record<string, unknown>, name: string, what: string): unknown {
  if (!(name in o)) throw new Error(`identity: missing "${name}" (${what})`);
  return o[name];
}

function base64Field(o: Record<string, unknown>, name: string, expected: number, kind: 'identity' | 'CA'): Uint8Array {
  const v = o[name];
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new Error(`${kind}: "${name}" must be base64`);
  const bytes = new Uint8Array(Buffer.from(v, 'base64'));
  if (bytes.length !== expected) throw new Error(`${kind}: "${name}" has ${bytes.length} bytes, expected ${expected}`);
  return bytes;
}

/** The JSON object of an identity or CA file; errors never quote the text. */
export function parseJsonObject(text: string, kind: 'identity' | 'CA'): Record<string, unknown> {
  if (typeof text !== 'string' || text.trim() === '') throw new Error(`${kind}: empty`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    // The parser's message can quote the input, which holds secrets: keep it out.
    throw new Error(`${kind}: not valid JSON`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${kind}: expected a JSON object`);
  return o as Record<string, unknown>;
}

/**
 * Parses and checks what publicIdentityFields writes, for every identity file format: id (I0), key
 * epoch, algorithms, public key lengths, and the key id if the file states one. The certificate is
 * checked against them afterwards (parseCertificateFor). Throws Error with a secret-free message.
 */
export function parsePublicIdentityFields(o: Record<string, unknown>): Omit<PublicIdentity, 'certificate'> {
  const deviceId = field(o, 'deviceId', 'device id');
  if (!isValidDeviceId(deviceId)) throw new Error('identity: device id must be 1 to 128 characters of A-Z a-z 0-9 _ . -');
  const keyEpoch = field(o, 'keyEpoch', 'key epoch');
  if (typeof keyEpoch !== 'number' || !Number.isInteger(keyEpoch) || keyEpoch < 0 || keyEpoch > 0xffffffff) {
    throw new Error('identity: "keyEpoch" must be an integer from 0 to 4294967295');
  }
  const kemAlgorithm = field(o, 'kemAlgorithm', 'KEM algorithm');
  const sigAlgorithm = field(o, 'sigAlgorithm', 'signature algorithm');
  if (!isKemAlgorithm(kemAlgorithm)) throw new Error(`identity: unknown KEM algorithm ${shown(kemAlgorithm)}`);
  if (!isSigAlgorithm(sigAlgorithm)) throw new Error(`identity: unknown signature algorithm ${shown(sigAlgorithm)}`);
  const kemPublicKey = base64Field(o, 'kemPublicKey', KEM_ALGORITHMS[kemAlgorithm].publicKey, 'identity');
  const sigPublicKey = base64Field(o, 'sigPublicKey', SIG_ALGORITHMS[sigAlgorithm].publicKey, 'identity');
  const keyId = deriveKeyId(kemAlgorithm, kemPublicKey, sigAlgorithm, sigPublicKey);
  if (o.keyId !== undefined && o.keyId !== toHex(keyId)) throw new Error('identity: "keyId" does not match the public keys');
  return { deviceId, keyEpoch, kemAlgorithm, sigAlgorithm, kemPublicKey, sigPublicKey, keyId };
}

/**
 * The file's certificate (null or absent: none yet). It must decode and have been issued for
 * exactly these keys: a certificate for another device, epoch or key is refused here, when the
 * file is loaded, rather than by every peer later.
 */
export function parseCertificateFor(o: Record<string, unknown>, keys: Omit<PublicIdentity, 'certificate'>): Uint8Array | undefined {
  if (o.certificate === undefined || o.certificate === null) return undefined;
  if (typeof o.certificate !== 'string') throw new Error('identity: "certificate" must be base64 or null');
  const certificate = new Uint8Array(Buffer.from(o.certificate, 'base64'));
  const d = decodeCertificate(certificate);
  if (!d.ok) throw new Error(`identity: certificate does not decode (${d.reason})`);
  const c = d.value;
  if (c.deviceId !== keys.deviceId || c.keyEpoch !== keys.keyEpoch || toHex(c.keyId) !== toHex(keys.keyId)) {
    throw new Error('identity: certificate was issued for another device, epoch or key');
  }
  return certificate;
}

/**
 * Parses and checks an identity bundle: format, the public fields (parsePublicIdentityFields),
 * secret key lengths, that the secret keys belong to the public keys, and the certificate binding.
 * Throws Error with a secret-free message.
 */
export function parseIdentityJson(text: string): IdentityBundle {
  const o = parseJsonObject(text, 'identity');
  if (o.format !== IDENTITY_FORMAT) throw new Error(`identity: "format" must be "${IDENTITY_FORMAT}"`);
  const keys = parsePublicIdentityFields(o);
  const kemSecretKey = base64Field(o, 'kemSecretKey', KEM_ALGORITHMS[keys.kemAlgorithm].secretKey, 'identity');
  const sigSecretKey = base64Field(o, 'sigSecretKey', SIG_ALGORITHMS[keys.sigAlgorithm].secretKey, 'identity');
  assertKeysBelongTogether(keys.kemAlgorithm, keys.kemPublicKey, kemSecretKey, keys.sigAlgorithm, keys.sigPublicKey, sigSecretKey);
  const certificate = parseCertificateFor(o, keys);
  return Object.freeze({ ...keys, kemSecretKey, sigSecretKey, ...(certificate ? { certificate } : {}) });
}

/** A pasted bundle with mixed-up keys would fail later and obscurely; catch it here. */
function assertKeysBelongTogether(
  kemAlg: KemAlgorithm, kemPk: Uint8Array, kemSk: Uint8Array, sigAlg: SigAlgorithm, sigPk: Uint8Array, sigSk: Uint8Array,
): void {
  const backend = cryptoBackend();
  const kemOk = (() => {
    try {
      const { capsule, sharedSecret } = backend.encapsulate(kemAlg, kemPk);
      return Buffer.compare(Buffer.from(backend.decapsulate(kemAlg, capsule, kemSk)), Buffer.from(sharedSecret)) === 0;
    } catch {
      return false;
    }
  })();
  if (!kemOk) throw new Error('identity: KEM secret key does not match its public key');
  const probe = new TextEncoder().encode('pqc-iiot:key-check');
  const sigOk = (() => {
    try {
      return backend.verify(sigAlg, backend.sign(sigAlg, probe, sigSk), probe, sigPk);
    } catch {
      return false;
    }
  })();
  if (!sigOk) throw new Error('identity: signature secret key does not match its public key');
}

export interface IdentityPublicInfo {
  deviceId: string;
  keyEpoch: number;
  keyId: string;
  fingerprint: string;
  kemAlgorithm: KemAlgorithm;
  sigAlgorithm: SigAlgorithm;
  kemPublicKey: string;
  sigPublicKey: string;
  hasCertificate: boolean;
  certificate?: { roles: Role; topics: string[]; notBefore: number; notAfter: number; caKeyId: string };
}

/** Key id as 8 groups of 4 hex digits, for people comparing keys by eye. */
export function fingerprintOf(keyId: Uint8Array): string {
  return toHex(keyId).match(/.{4}/g)!.join(':');
}

/** Public parts only: safe for editor properties, logs and CLI output. */
export function identityPublicInfo(b: IdentityBundle): IdentityPublicInfo {
  const info: IdentityPublicInfo = {
    deviceId: b.deviceId,
    keyEpoch: b.keyEpoch,
    keyId: toHex(b.keyId),
    fingerprint: fingerprintOf(b.keyId),
    kemAlgorithm: b.kemAlgorithm,
    sigAlgorithm: b.sigAlgorithm,
    kemPublicKey: b64(b.kemPublicKey),
    sigPublicKey: b64(b.sigPublicKey),
    hasCertificate: b.certificate !== undefined,
  };
  if (b.certificate) {
    const d = decodeCertificate(b.certificate);
    if (d.ok) {
      info.certificate = {
        roles: d.value.roles, topics: d.value.topics, notBefore: Number(d.value.notBefore),
        notAfter: Number(d.value.notAfter), caKeyId: toHex(d.value.caKeyId),
      };
    }
  }
  return info;
}

export function caKeyPairToJson(ca: CaKeyPair): string {
  return JSON.stringify({
    format: CA_FORMAT,
    sigAlgorithm: ca.publicKey.sigAlgorithm,
    publicKey: caPublicKeyToText(ca.publicKey),
    secretKey: b64(ca.secretKey),
  }, null, 2);
}

export function parseCaKeyPairJson(text: string): CaKeyPair {
  const o = parseJsonObject(text, 'CA');
  if (o.format !== CA_FORMAT) throw new Error(`CA: "format" must be "${CA_FORMAT}"`);
  const alg = o.sigAlgorithm;
  if (!isSigAlgorithm(alg)) throw new Error(`CA: unknown signature algorithm ${shown(alg)}`);
  if (typeof o.publicKey !== 'string') throw new Error('CA: "publicKey" must be the CA public key text');

  const pk = parseCaPublicKeyText(o.publicKey);
  if (!pk.ok || pk.value.sigAlgorithm !== alg) throw new Error('CA: "publicKey" is not a valid CA public key');
  const secretKey = base64Field(o, 'secretKey', SIG_ALGORITHMS[alg].secretKey, 'CA');
  const backend = cryptoBackend();
  const probe = new TextEncoder().encode('pqc-iiot:ca-key-check');
  if (!backend.verify(alg, backend.sign(alg, probe, secretKey), probe, pk.value.publicKey)) {
    throw new Error('CA: secret key does not match the public key');
  }
  return Object.freeze({ publicKey: pk.value, secretKey });
}
