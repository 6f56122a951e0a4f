/**
 * CA public key (the trust anchor pinned in every config node). docs/PROTOCOL.md §2.5.
 * Text form for the editor and CLI: "pqcca1:" + base64 of the binary structure.
 */
import { KEY_ID_BYTES, type SigAlgorithm } from '../crypto/algorithms';
import { LABELS, domainDigest } from '../crypto/symmetric';
import { fail, ok, type Result } from '../result';
import { sigAlgorithm, sigKeyFits, sigPublicKey } from './common';
import { decodeAll, encode, struct } from './fields';
import { header } from './header';

const caKeyLayout = struct({
  header: header('caPublicKey'),
  sigAlgorithm,
  publicKey: sigPublicKey,
});

export interface CaPublicKey {
  readonly sigAlgorithm: SigAlgorithm;
  readonly publicKey: Uint8Array;
  /** First 16 bytes of SHA-256 framed("pqc-iiot:ca-key-id:v1", encoding): names the CA in certificates. */
  readonly keyId: Uint8Array;
}

export const CA_KEY_TEXT_PREFIX = 'pqcca1:';
const MAX_CA_KEY_BYTES = 4 + 1 + 2 + 1952;

export function encodeCaPublicKey(sigAlg: SigAlgorithm, publicKey: Uint8Array): Uint8Array {
  return encode(caKeyLayout, { header: 'caPublicKey', sigAlgorithm: sigAlg, publicKey });
}

export function caPublicKey(sigAlg: SigAlgorithm, publicKey: Uint8Array): CaPublicKey {
  const bytes = encodeCaPublicKey(sigAlg, publicKey);
  return Object.freeze({ sigAlgorithm: sigAlg, publicKey, keyId: caKeyIdOf(bytes) });
}

function caKeyIdOf(encoded: Uint8Array): Uint8Array {
  return domainDigest(LABELS.caKeyId, [encoded]).slice(0, KEY_ID_BYTES);
}

export function decodeCaPublicKey(bytes: Uint8Array): Result<CaPublicKey> {
  const r = decodeAll(caKeyLayout, bytes, MAX_CA_KEY_BYTES);
  if (!r.ok) return r;
  if (!sigKeyFits(r.value.sigAlgorithm, r.value.publicKey)) return fail('bad-length', 'CA public key length');
  return ok(Object.freeze({ sigAlgorithm: r.value.sigAlgorithm, publicKey: r.value.publicKey, keyId: caKeyIdOf(bytes) }));
}

export function caPublicKeyToText(pk: CaPublicKey): string {
  return CA_KEY_TEXT_PREFIX + Buffer.from(encodeCaPublicKey(pk.sigAlgorithm, pk.publicKey)).toString('base64');
}

/** Parses the text form; white space (line breaks from copy and paste) is ignored. */
export function parseCaPublicKeyText(text: string): Result<CaPublicKey> {
  if (typeof text !== 'string') return fail('bad-field', 'CA public key must be text');
  const compact = text.replace(/\s+/g, '');
  if (!compact.startsWith(CA_KEY_TEXT_PREFIX)) return fail('bad-magic', `CA public key text must start with "${CA_KEY_TEXT_PREFIX}"`);
  const b64 = compact.slice(CA_KEY_TEXT_PREFIX.length);
  if (b64.length > 4 * Math.ceil(MAX_CA_KEY_BYTES / 3) + 4) return fail('too-large');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return fail('bad-field', 'CA public key text is not base64');
  return decodeCaPublicKey(new Uint8Array(Buffer.from(b64, 'base64')));
}
