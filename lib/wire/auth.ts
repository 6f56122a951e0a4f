/**
 * Sender authentication trailer of data envelopes (docs/PROTOCOL.md §2.7): one kind byte, then
 * the kind's fields. Every kind authenticates the I3 message digest
 *   framed("pqc-iiot:mqtt-msg:v1", sender id, topic, encrypted blob)
 * where the encrypted blob is every byte before the trailer.
 */
import { signature as signatureField } from './common';
import { u8, type Field } from './fields';

export const AUTH_KINDS = Object.freeze({
  /** A signature over the message digest. */
  signature: 0x01,
} as const);

export type EnvelopeAuth = { readonly kind: 'signature'; readonly signature: Uint8Array };

export const envelopeAuth: Field<EnvelopeAuth> = {
  name: 'auth',
  encode(w, value) {
    u8.encode(w, AUTH_KINDS[value.kind]);
    signatureField.encode(w, value.signature);
  },
  decode(r) {
    const kind = u8.decode(r);
    if (kind === undefined) return undefined;
    if (kind !== AUTH_KINDS.signature) return r.fail('bad-field');
    const signature = signatureField.decode(r);
    return signature === undefined ? undefined : { kind: 'signature', signature };
  },
};

/** Size of an encoded trailer, to find where the encrypted blob ends. */
export function authBytes(auth: EnvelopeAuth): number {
  return 1 + 2 + auth.signature.length;
}
