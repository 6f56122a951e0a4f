/**
 * The SecurityProvider boundary (seed 004, trust boundary 1): long-term secrets sit behind it
 * and the protocol core only asks it to sign and to decapsulate. The software provider keeps
 * the keys of an identity bundle in memory; a hardware provider implements the same interface.
 */
import type { KemAlgorithm, SigAlgorithm } from '../crypto/algorithms';
import { offloadDecapsulate, offloadSign } from '../crypto/worker-pool';
import { LABELS, aesGcmOpen, aesGcmSeal, hkdf, randomNonce } from '../crypto/symmetric';
import type { IdentityBundle, PublicIdentity } from './identity';

/**
 * A failure of the local provider itself (a token removed, a module gone): the fault is ours,
 * not the peer's, so it propagates instead of becoming a verdict about the message.
 */
export class ProviderError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

/**
 * The public side of an identity, which every provider exposes the same way. Unlike an identity
 * file's PublicIdentity, `certificate` is always there to read (undefined until the CA issues one).
 */
export type ProviderIdentity = Omit<PublicIdentity, 'certificate'> & { readonly certificate: Uint8Array | undefined };

export interface SecurityProvider extends ProviderIdentity {
  /** True when the private keys cannot be read out of the provider. */
  readonly nonExportable: boolean;
  /** True when sealed state and counters cannot be rolled back behind the provider's back. */
  readonly rollbackResistant: boolean;
  sign(message: Uint8Array): Promise<Uint8Array>;
  decapsulate(capsule: Uint8Array): Promise<Uint8Array>;
  /**
   * Authenticated encryption of local state under a key only this provider can use; `label`
   * separates uses (e.g. "state", "audit"). unseal returns undefined for anything it did not seal.
   */
  seal(plaintext: Uint8Array, label: string): Promise<Uint8Array>;
  unseal(sealed: Uint8Array, label: string): Promise<Uint8Array | undefined>;
  /**
   * Monotonic counters that cannot be rolled back behind the provider's back (hardware only;
   * undefined for software, where the state store keeps its own best-effort counter).
   */
  readonly counters?: {
    read(name: string): Promise<bigint>;
    /** Raises the counter to `value`; refuses (throws) to lower it. */
    advance(name: string, value: bigint): Promise<void>;
  };
  /** Wipes what the provider holds in memory. */
  close(): void;
}

const SEAL_INFO = LABELS.stateSeal;

/**
 * Holds the public side of an identity; providers extend it and add their secrets. (A class
 * must declare its fields: `implements ProviderIdentity` keeps the list in step with the type.)
 */
export abstract class IdentityKeys implements ProviderIdentity {
  readonly deviceId: string;
  readonly keyEpoch: number;
  readonly keyId: Uint8Array;
  readonly kemAlgorithm: KemAlgorithm;
  readonly sigAlgorithm: SigAlgorithm;
  readonly kemPublicKey: Uint8Array;
  readonly sigPublicKey: Uint8Array;
  readonly certificate: Uint8Array | undefined;

  protected constructor(identity: PublicIdentity) {
    this.deviceId = identity.deviceId;
    this.keyEpoch = identity.keyEpoch;
    this.keyId = identity.keyId;
    this.kemAlgorithm = identity.kemAlgorithm;
    this.sigAlgorithm = identity.sigAlgorithm;
    this.kemPublicKey = identity.kemPublicKey;
    this.sigPublicKey = identity.sigPublicKey;
    this.certificate = identity.certificate;
  }
}

export class SoftwareProvider extends IdentityKeys implements SecurityProvider {
  readonly nonExportable = false;
  readonly rollbackResistant = false;
  private readonly kemSecretKey: Uint8Array;
  private readonly sigSecretKey: Uint8Array;

  constructor(bundle: IdentityBundle) {
    super(bundle);
    // Own copies, so close() can wipe them without touching the caller's bundle.
    this.kemSecretKey = Uint8Array.from(bundle.kemSecretKey);
    this.sigSecretKey = Uint8Array.from(bundle.sigSecretKey);
  }

  /** Off the main thread when it would run in JavaScript there (lib/crypto/worker-pool.ts). */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    return offloadSign(this.sigAlgorithm, message, this.sigSecretKey);
  }

  async decapsulate(capsule: Uint8Array): Promise<Uint8Array> {
    return offloadDecapsulate(this.kemAlgorithm, capsule, this.kemSecretKey);
  }

  /** nonce (12) ‖ AES-256-GCM(HKDF(secret keys, label), nonce, plaintext, aad = label) ‖ tag. */
  async seal(plaintext: Uint8Array, label: string): Promise<Uint8Array> {
    const key = this.sealKey(label);
    try {
      const nonce = randomNonce();
      const body = aesGcmSeal(key, nonce, plaintext, new TextEncoder().encode(label));
      const out = new Uint8Array(nonce.length + body.length);
      out.set(nonce, 0);
      out.set(body, nonce.length);
      return out;
    } finally {
      key.fill(0);
    }
  }

  async unseal(sealed: Uint8Array, label: string): Promise<Uint8Array | undefined> {
    if (!(sealed instanceof Uint8Array) || sealed.length < 12 + 16) return undefined;
    const key = this.sealKey(label);
    try {
      return aesGcmOpen(key, sealed.subarray(0, 12), sealed.subarray(12), new TextEncoder().encode(label));
    } finally {
      key.fill(0);
    }
  }

  /** Derived from both secret keys: only the holder of this identity can seal or unseal. */
  private sealKey(label: string): Uint8Array {
    const ikm = new Uint8Array(this.kemSecretKey.length + this.sigSecretKey.length);
    ikm.set(this.kemSecretKey, 0);
    ikm.set(this.sigSecretKey, this.kemSecretKey.length);
    try {
      return hkdf(ikm, new TextEncoder().encode(label), new TextEncoder().encode(SEAL_INFO), 32);
    } finally {
      ikm.fill(0);
    }
  }

  close(): void {
    this.kemSecretKey.fill(0);
    this.sigSecretKey.fill(0);
  }

  /** Keeps secrets out of util.inspect / console.log / Node-RED debug of this object. */
  toJSON(): Record<string, unknown> {
    return { deviceId: this.deviceId, keyEpoch: this.keyEpoch, provider: 'software' };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SoftwareProvider(${this.deviceId}, epoch ${this.keyEpoch})`;
  }
}
