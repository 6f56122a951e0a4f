/**
 * The PKCS#11 SecurityProvider (DESIGN §3, seed 004 trust boundary 1): the device identity and
 * the anti-rollback counters behind a hardware token's boundary.
 *
 * Tokens of today (SoftHSM2 2.6, most HSMs) offer no ML-KEM / ML-DSA / Falcon mechanism, so the
 * post-quantum secret keys are stored only encrypted by an AES-256 key that is generated in the
 * token as sensitive and non-extractable (AES-GCM runs in the token), as a private token object.
 * At open they are decrypted into this process's memory after login, and wiped on close() or as
 * soon as the token is found removed. Sealing of local state runs AES-GCM in the token under the
 * same key; counters are private token objects. The identity file holds public keys and a token
 * reference only (./pkcs11/identity-file.ts).
 *
 * Token objects (CKA_APPLICATION "pqc-iiot" for data objects):
 *   CKO_SECRET_KEY  CKA_LABEL <keyLabel>, CKA_ID = key id, AES-256, sensitive, non-extractable
 *   CKO_DATA        CKA_LABEL identity/<keyLabel>: 0x01 ‖ nonce(12) ‖ AES-GCM(kem sk ‖ sig sk) ‖ tag
 *   CKO_DATA        CKA_LABEL counter/<deviceId>/<name>: u64 big-endian
 * What this protects and what it does not: README "Provider swap (software ↔ PKCS#11)".
 */
import { randomBytes } from 'node:crypto';
import { KEM_ALGORITHMS, SIG_ALGORITHMS } from '../crypto/algorithms';
import { constantTimeEqual } from '../crypto/symmetric';
import { offloadDecapsulate, offloadSign } from '../crypto/worker-pool';
import { createIdentity, type CreateIdentityOptions, type IdentityBundle } from '../session/identity';
import { IdentityKeys, type SecurityProvider } from '../session/provider';
import { toHex } from '../wire/common';
import {
  defaultKeyLabel, isValidKeyLabel, isValidTokenLabel, type KeyStorage, type Pkcs11Identity, type Pkcs11Reference, type PublicIdentity,
} from './pkcs11/identity-file';
import { Pkcs11ProviderError, TokenSession, type PqMechanismReport, type TokenDescription } from './pkcs11/token';

export { Pkcs11ProviderError, PKCS11_ERROR_CODES, type Pkcs11ErrorCode, type PqMechanismReport, type TokenDescription } from './pkcs11/token';
export {
  PKCS11_IDENTITY_FORMAT, isPkcs11IdentityJson, parsePkcs11IdentityJson, pkcs11IdentityToJson, defaultKeyLabel,
  type Pkcs11Identity, type Pkcs11Reference, type PublicIdentity,
} from './pkcs11/identity-file';

const WRAP_VERSION = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const WRAP_DOMAIN = 'pqc-iiot:pkcs11-wrap:v1';
const SEAL_DOMAIN = 'pqc-iiot:pkcs11-seal:v1';
const COUNTER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const U64_MAX = (1n << 64n) - 1n;

const identityObjectLabel = (keyLabel: string): string => `identity/${keyLabel}`;
const counterObjectLabel = (deviceId: string, name: string): string => `counter/${deviceId}/${name}`;

/** Length-framed parts (u32 length ‖ bytes each), so no two part lists give the same AAD. */
function frame(...parts: Array<string | Uint8Array>): Uint8Array {
  const bytes = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p)));
  const out = Buffer.alloc(bytes.reduce((n, b) => n + 4 + b.length, 0));
  let o = 0;
  for (const b of bytes) {
    out.writeUInt32BE(b.length, o);
    b.copy(out, o + 4);
    o += 4 + b.length;
  }
  return new Uint8Array(out);
}

/** Binds a wrapped identity to the exact identity it belongs to: swapping blobs fails the tag. */
function wrapAad(id: PublicIdentity): Uint8Array {
  const epoch = Buffer.alloc(4);
  epoch.writeUInt32BE(id.keyEpoch, 0);
  return frame(WRAP_DOMAIN, id.deviceId, epoch, id.keyId, id.kemAlgorithm, id.sigAlgorithm);
}

export interface Pkcs11TokenOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string;
  /** Label of the token. */
  readonly token: string;
  /** The token user's PIN: used for login and not kept. */
  readonly pin: string;
  /** Label of the token's AES key (default "pqc-iiot/<deviceId>"). */
  readonly keyLabel?: string;
  /** Replace a key and wrapped identity already stored under the label (they are lost). */
  readonly replace?: boolean;
}

export interface StoredIdentity {
  readonly identity: Pkcs11Identity;
  /** PKCS#11 3.2 post-quantum mechanisms the token lists (reported; not used, see KeyStorage). */
  readonly pqMechanisms: PqMechanismReport;
  readonly token: TokenDescription;
}

/**
 * Stores a software identity's secret keys in a token: a new non-extractable AES-256 key under
 * `keyLabel`, and the keys encrypted by it in the token. Returns the identity file contents
 * (public keys, certificate, token reference). The caller's bundle is not wiped: it is theirs.
 */
export function storeIdentityInToken(bundle: IdentityBundle, opts: Pkcs11TokenOptions): StoredIdentity {
  const keyLabel = opts.keyLabel ?? defaultKeyLabel(bundle.deviceId);
  checkLabels(opts.token, keyLabel);
  const token = TokenSession.open(opts);
  try {
    const oldKeys = token.findSecretKeys(keyLabel);
    const oldBlobs = token.findData(identityObjectLabel(keyLabel));
    if ((oldKeys.length > 0 || oldBlobs.length > 0) && !opts.replace) {
      throw new Pkcs11ProviderError(
        'key-exists',
        `token ${JSON.stringify(opts.token)} already holds a key labelled ${JSON.stringify(keyLabel)}; ` +
          'choose another key label, or replace it (its identity is lost)',
      );
    }
    for (const h of oldKeys) token.destroy(h);
    for (const b of oldBlobs) token.destroy(b.handle);

    const key = token.generateAesKey(keyLabel, bundle.keyId);
    const plain = new Uint8Array(bundle.kemSecretKey.length + bundle.sigSecretKey.length);
    plain.set(bundle.kemSecretKey, 0);
    plain.set(bundle.sigSecretKey, bundle.kemSecretKey.length);
    let blob: Uint8Array;
    try {
      const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
      const body = token.gcmEncrypt(key, nonce, wrapAad(bundle), plain);
      blob = new Uint8Array(1 + NONCE_BYTES + body.length);
      blob[0] = WRAP_VERSION;
      blob.set(nonce, 1);
      blob.set(body, 1 + NONCE_BYTES);
    } finally {
      plain.fill(0);
    }
    token.createData(identityObjectLabel(keyLabel), blob);
    // Read back and open what was stored, so a token that silently dropped or mangled the object
    // fails now, at provisioning, and not at the device's next start.
    const check = unwrapSecrets(token, key, bundle, keyLabel);
    check.kem.fill(0);
    check.sig.fill(0);

    const pkcs11: Pkcs11Reference = { module: opts.module, token: opts.token, keyLabel, keyStorage: 'wrapped-aes-256-gcm' };
    const identity: Pkcs11Identity = Object.freeze({
      deviceId: bundle.deviceId, keyEpoch: bundle.keyEpoch, keyId: bundle.keyId, kemAlgorithm: bundle.kemAlgorithm,
      sigAlgorithm: bundle.sigAlgorithm, kemPublicKey: bundle.kemPublicKey, sigPublicKey: bundle.sigPublicKey,
      ...(bundle.certificate ? { certificate: bundle.certificate } : {}),
      pkcs11: Object.freeze(pkcs11),
    });
    return { identity, pqMechanisms: token.pqMechanisms(), token: token.describe() };
  } finally {
    token.close();
  }
}

/**
 * Generates a device identity and stores it in a token (see storeIdentityInToken). The key pairs
 * are generated in this process (no token offers these algorithms yet); the secret keys are
 * wiped from memory once stored.
 */
export function createIdentityInToken(identity: CreateIdentityOptions, opts: Pkcs11TokenOptions): StoredIdentity {
  const keyLabel = opts.keyLabel ?? defaultKeyLabel(identity.deviceId);
  checkLabels(opts.token, keyLabel);
  const bundle = createIdentity(identity);
  try {
    return storeIdentityInToken(bundle, { ...opts, keyLabel });
  } finally {
    bundle.kemSecretKey.fill(0);
    bundle.sigSecretKey.fill(0);
  }
}

function checkLabels(token: string, keyLabel: string): void {
  if (!isValidTokenLabel(token)) throw new Pkcs11ProviderError('token-not-found', 'token label must be 1 to 32 printable characters');
  if (!isValidKeyLabel(keyLabel)) throw new Pkcs11ProviderError('key-missing', 'key label must be 1 to 128 printable characters');
}

function unwrapSecrets(token: TokenSession, key: Buffer, id: PublicIdentity, keyLabel: string): { kem: Uint8Array; sig: Uint8Array } {
  const blobs = token.findData(identityObjectLabel(keyLabel));
  const where = `token ${JSON.stringify(token.tokenLabel)}`;
  if (blobs.length === 0) {
    throw new Pkcs11ProviderError('key-missing', `${where} holds no wrapped identity for key label ${JSON.stringify(keyLabel)}`);
  }
  if (blobs.length > 1) throw new Pkcs11ProviderError('token-error', `${where} holds ${blobs.length} wrapped identities for key label ${JSON.stringify(keyLabel)}`);
  const blob = blobs[0].value;
  const kemBytes = KEM_ALGORITHMS[id.kemAlgorithm].secretKey;
  const sigBytes = SIG_ALGORITHMS[id.sigAlgorithm].secretKey;
  const mismatch = new Pkcs11ProviderError(
    'key-mismatch',
    `the wrapped keys under ${JSON.stringify(keyLabel)} in ${where} do not belong to this identity file ` +
      `(device ${id.deviceId}, key ${toHex(id.keyId).slice(0, 16)}…)`,
  );
  if (blob.length !== 1 + NONCE_BYTES + kemBytes + sigBytes + TAG_BYTES || blob[0] !== WRAP_VERSION) throw mismatch;
  const plain = token.gcmDecrypt(key, blob.subarray(1, 1 + NONCE_BYTES), wrapAad(id), blob.subarray(1 + NONCE_BYTES));
  if (!plain) throw mismatch;
  try {
    return { kem: plain.slice(0, kemBytes), sig: plain.slice(kemBytes) };
  } finally {
    plain.fill(0);
  }
}

export interface Pkcs11OpenOptions {
  /** The token user's PIN: used for login and not kept. */
  readonly pin: string;
  /** Override the identity file's reference (the module path often differs between machines). */
  readonly module?: string;
  readonly token?: string;
  readonly keyLabel?: string;
}

/**
 * Opens the provider for an identity stored in a token: login, checks that the key under the
 * label is this identity's (CKA_ID = key id) and non-extractable, and decrypts the secret keys
 * into memory. Throws Pkcs11ProviderError (module-not-found, token-not-found, pin-incorrect,
 * key-missing, key-mismatch…) with a secret-free message.
 */
export function openPkcs11Provider(identity: Pkcs11Identity, opts: Pkcs11OpenOptions): Pkcs11Provider {
  const ref: Pkcs11Reference = {
    module: nonEmpty(opts.module) ?? identity.pkcs11.module,
    token: nonEmpty(opts.token) ?? identity.pkcs11.token,
    keyLabel: nonEmpty(opts.keyLabel) ?? identity.pkcs11.keyLabel,
    keyStorage: identity.pkcs11.keyStorage,
  };
  checkLabels(ref.token, ref.keyLabel);
  const token = TokenSession.open({ module: ref.module, token: ref.token, pin: opts.pin });
  try {
    const where = `token ${JSON.stringify(ref.token)}`;
    const keys = token.findSecretKeys(ref.keyLabel);
    if (keys.length === 0) {
      throw new Pkcs11ProviderError(
        'key-missing',
        `${where} holds no key labelled ${JSON.stringify(ref.keyLabel)} (create one with: pqc-iiot identity new --pkcs11-module … --token ${ref.token})`,
      );
    }
    if (keys.length > 1) throw new Pkcs11ProviderError('token-error', `${where} holds ${keys.length} keys labelled ${JSON.stringify(ref.keyLabel)}`);
    const key = keys[0];
    const attrs = token.keyAttributes(key);
    if (!constantTimeEqual(attrs.id, identity.keyId)) {
      throw new Pkcs11ProviderError(
        'key-mismatch',
        `the key labelled ${JSON.stringify(ref.keyLabel)} in ${where} belongs to another identity ` +
          `(key id ${toHex(attrs.id).slice(0, 16) || 'none'}…, the file says ${toHex(identity.keyId).slice(0, 16)}…)`,
      );
    }
    if (!attrs.sensitive || attrs.extractable) {
      throw new Pkcs11ProviderError('token-error', `the key labelled ${JSON.stringify(ref.keyLabel)} in ${where} is extractable; refusing to use it`);
    }
    const secrets = unwrapSecrets(token, key, identity, ref.keyLabel);
    return new Pkcs11Provider(identity, ref, token, key, secrets, { pq: token.pqMechanisms(), token: token.describe() });
  } catch (err) {
    token.close();
    throw err;
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

export class Pkcs11Provider extends IdentityKeys implements SecurityProvider {
  readonly nonExportable = true;
  readonly rollbackResistant = true;
  readonly keyStorage: KeyStorage;
  readonly reference: Pkcs11Reference;
  readonly pqMechanisms: PqMechanismReport;
  /** Manufacturer, model and whether the slot is hardware (false for SoftHSM: test use). */
  readonly tokenDescription: TokenDescription;
  readonly counters: NonNullable<SecurityProvider['counters']>;
  private readonly token: TokenSession;
  private readonly key: Buffer;
  private readonly kemSecretKey: Uint8Array;
  private readonly sigSecretKey: Uint8Array;
  private closed = false;

  /** Use openPkcs11Provider(). */
  constructor(
    identity: PublicIdentity, reference: Pkcs11Reference, token: TokenSession, key: Buffer,
    secrets: { kem: Uint8Array; sig: Uint8Array }, info: { pq: PqMechanismReport; token: TokenDescription },
  ) {
    super(identity);
    this.reference = Object.freeze({ ...reference });
    this.keyStorage = reference.keyStorage;
    this.pqMechanisms = info.pq;
    this.tokenDescription = info.token;
    this.token = token;
    this.key = key;
    this.kemSecretKey = secrets.kem;
    this.sigSecretKey = secrets.sig;
    this.counters = Object.freeze({
      read: async (name: string) => this.readCounter(name),
      advance: async (name: string, value: bigint) => this.advanceCounter(name, value),
    });
  }

  /** Off the main thread when it would run in JavaScript there, as SoftwareProvider does. */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    this.live();
    return offloadSign(this.sigAlgorithm, message, this.sigSecretKey);
  }

  async decapsulate(capsule: Uint8Array): Promise<Uint8Array> {
    this.live();
    return offloadDecapsulate(this.kemAlgorithm, capsule, this.kemSecretKey);
  }

  /** nonce (12) ‖ AES-256-GCM in the token (aad = domain, key id, label) ‖ tag. */
  async seal(plaintext: Uint8Array, label: string): Promise<Uint8Array> {
    this.guard();
    const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
    const body = this.run(() => this.token.gcmEncrypt(this.key, nonce, frame(SEAL_DOMAIN, this.keyId, label), plaintext));
    const out = new Uint8Array(NONCE_BYTES + body.length);
    out.set(nonce, 0);
    out.set(body, NONCE_BYTES);
    return out;
  }

  async unseal(sealed: Uint8Array, label: string): Promise<Uint8Array | undefined> {
    this.guard();
    if (!(sealed instanceof Uint8Array) || sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
    return this.run(() => this.token.gcmDecrypt(this.key, sealed.subarray(0, NONCE_BYTES), frame(SEAL_DOMAIN, this.keyId, label), sealed.subarray(NONCE_BYTES)));
  }

  /** Wipes the secret keys and ends the token session; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kemSecretKey.fill(0);
    this.sigSecretKey.fill(0);
    this.token.close();
  }

  toJSON(): Record<string, unknown> {
    return { deviceId: this.deviceId, keyEpoch: this.keyEpoch, provider: 'pkcs11', token: this.reference.token, keyLabel: this.reference.keyLabel };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Pkcs11Provider(${this.deviceId}, epoch ${this.keyEpoch}, token ${JSON.stringify(this.reference.token)})`;
  }

  /** The counter's value: the highest of its objects (two exist only between create and delete). */
  private readCounter(name: string): bigint {
    this.guard();
    const label = this.counterLabel(name);
    return this.run(() => {
      let max = 0n;
      for (const o of this.token.findData(label)) {
        if (o.value.length !== 8) throw new Pkcs11ProviderError('token-error', `counter ${JSON.stringify(name)} in the token is malformed`);
        const v = Buffer.from(o.value).readBigUInt64BE(0);
        if (v > max) max = v;
      }
      return max;
    });
  }

  /**
   * Raises the counter to `value`, refusing to lower it. The new value is written as a new object
   * before the old ones are deleted, so a crash in between leaves the higher value readable.
   * (SoftHSM does not let CKA_VALUE of a data object be changed in place.)
   */
  private advanceCounter(name: string, value: bigint): void {
    this.guard();
    if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) throw new RangeError('counter value must be a bigint from 0 to 2^64-1');
    const label = this.counterLabel(name);
    this.run(() => {
      const existing = this.token.findData(label);
      let current = 0n;
      for (const o of existing) {
        if (o.value.length === 8) {
          const v = Buffer.from(o.value).readBigUInt64BE(0);
          if (v > current) current = v;
        }
      }
      if (value < current) {
        throw new Pkcs11ProviderError('counter-rollback', `counter ${JSON.stringify(name)} is at ${current}; refusing to lower it to ${value}`);
      }
      if (value === current && existing.length === 1) return;
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64BE(value, 0);
      this.token.createData(label, bytes);
      for (const o of existing) this.token.destroy(o.handle);
    });
  }

  private counterLabel(name: string): string {
    if (typeof name !== 'string' || !COUNTER_NAME.test(name)) throw new RangeError('counter name must be 1 to 64 characters of A-Z a-z 0-9 _ . -');
    return counterObjectLabel(this.deviceId, name);
  }

  private guard(): void {
    if (this.closed) throw new Pkcs11ProviderError('closed', `the PKCS#11 provider of ${this.deviceId} is closed`);
  }

  /**
   * Before each use of the in-memory keys: the token must still be there, so pulling it (or
   * re-initialising it) stops signing and decryption at once, as with a key that lives inside.
   * Costs one attribute read (about 0.2 ms with SoftHSM).
   */
  private live(): void {
    this.guard();
    this.run(() => this.token.assertAlive(this.key));
  }

  /** Token calls; a removed token wipes the keys for good (fail closed). */
  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof Pkcs11ProviderError && err.code === 'token-removed') {
        this.kemSecretKey.fill(0);
        this.sigSecretKey.fill(0);
      }
      throw err;
    }
  }
}
