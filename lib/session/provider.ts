/**
 * The SecurityProvider boundary (seed 004, trust boundary 1): long-term secrets sit behind it
 * and the protocol core only asks it to sign and to decapsulate. The software provider keeps
 * the keys of an identity bundle in memory; a hardware provider implements the same interface.
 */
import type { KemAlgorithm, SigAlgorithm } from '../crypto/algorithms';
import { cryptoBackend } from '../crypto/backend';
import type { IdentityBundle } from './identity';

export interface SecurityProvider {
  readonly deviceId: string;
  readonly keyEpoch: number;
  readonly keyId: Uint8Array;
  readonly kemAlgorithm: KemAlgorithm;
  readonly sigAlgorithm: SigAlgorithm;
  readonly kemPublicKey: Uint8Array;
  readonly sigPublicKey: Uint8Array;
  readonly certificate: Uint8Array | undefined;
  /** True when the private keys cannot be read out of the provider. */
  readonly nonExportable: boolean;
  /** True when sealed state and counters cannot be rolled back behind the provider's back. */
  readonly rollbackResistant: boolean;
  sign(message: Uint8Array): Promise<Uint8Array>;
  decapsulate(capsule: Uint8Array): Promise<Uint8Array>;
  /** Wipes what the provider holds in memory. */
  close(): void;
}

export class SoftwareProvider implements SecurityProvider {
  readonly deviceId: string;
  readonly keyEpoch: number;
  readonly keyId: Uint8Array;
  readonly kemAlgorithm: KemAlgorithm;
  readonly sigAlgorithm: SigAlgorithm;
  readonly kemPublicKey: Uint8Array;
  readonly sigPublicKey: Uint8Array;
  readonly certificate: Uint8Array | undefined;
  readonly nonExportable = false;
  readonly rollbackResistant = false;
  private readonly kemSecretKey: Uint8Array;
  private readonly sigSecretKey: Uint8Array;

  constructor(bundle: IdentityBundle) {
    this.deviceId = bundle.deviceId;
    this.keyEpoch = bundle.keyEpoch;
    this.keyId = bundle.keyId;
    this.kemAlgorithm = bundle.kemAlgorithm;
    this.sigAlgorithm = bundle.sigAlgorithm;
    this.kemPublicKey = bundle.kemPublicKey;
    this.sigPublicKey = bundle.sigPublicKey;
    this.certificate = bundle.certificate;
    // Own copies, so close() can wipe them without touching the caller's bundle.
    this.kemSecretKey = Uint8Array.from(bundle.kemSecretKey);
    this.sigSecretKey = Uint8Array.from(bundle.sigSecretKey);
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return cryptoBackend().sign(this.sigAlgorithm, message, this.sigSecretKey);
  }

  async decapsulate(capsule: Uint8Array): Promise<Uint8Array> {
    return cryptoBackend().decapsulate(this.kemAlgorithm, capsule, this.kemSecretKey);
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
