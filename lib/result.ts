/**
 * One result type for everything that comes from the network (STYLE habit 2).
 * Decoders and trust checks never throw on a peer's bytes: they return a Reason from the closed
 * list below. Exceptions are kept for local programming errors. See docs/PROTOCOL.md §8.
 */

export const REASONS = Object.freeze({
  // Size and framing: checked before any parsing or cryptography (I5).
  'too-large': 'input is larger than the configured limit for its message type',
  'truncated': 'input ends before a field it announces',
  'trailing-data': 'bytes follow the last field of the structure',
  'bad-magic': 'first two bytes are not 0x5051 ("PQ")',
  'bad-version': 'protocol version is not one this implementation speaks',
  'bad-type': 'structure type byte is not the one expected here',
  'unknown-algorithm': 'KEM or signature algorithm byte is not known',
  'bad-length': 'a length field disagrees with its algorithm or limit',
  'bad-id': 'device id is not 1..128 characters of [A-Za-z0-9_.-] (I0)',
  'bad-field': 'a field holds a value outside its allowed set',
  // Trust decisions on announcements and certificates (I1, I2).
  'topic-mismatch': 'announcement topic suffix is not the announced device id',
  'no-certificate': 'strict mode requires a CA-issued certificate',
  'bad-certificate': 'certificate signature does not verify under the pinned CA key',
  'certificate-subject': 'certificate was issued to another device',
  'certificate-key-mismatch': 'announced keys differ from the certificate keys',
  'key-id-mismatch': 'key id is not the one derived from the public keys',
  'not-yet-valid': 'certificate validity starts in the future',
  'expired': 'certificate validity has ended',
  'epoch-rollback': 'key epoch is lower than the one already trusted for this device',
  'epoch-collision': 'same key epoch announced with a different key id',
  'bad-signature': 'signature does not verify',
  'peer-limit': 'the configured number of trusted peers is reached',
  // Envelopes (I3, I4, I7).
  'unknown-sender': 'no trusted key for the sender',
  'stale-key': 'envelope names a sender key that is not the trusted one',
  'not-authorized': 'sender certificate does not allow publishing on this topic',
  'not-for-me': 'envelope is addressed to another recipient or key',
  'replay': 'sequence number is older than the replay window',
  'duplicate': 'sequence number was already accepted (dropped quietly)',
  'decrypt-failed': 'KEM decapsulation or AES-GCM authentication failed',
  'revoked': 'sender key has been revoked',
  'no-key': 'topic key for this message never arrived (or was superseded) in time',
  'budget': 'too many signature checks or decapsulations failed recently, for this sender or in total: refused without checking',
  'unsigned': 'compact envelope whose batch manifest did not verify within compactWaitMs',
  // Lifecycle: revocation updates and stored state (I6, I7).
  'rollback': 'update is not newer than the one already applied, or drops revoked entries',
  'state-rollback': 'stored state is older than its generation counter says (restored copy)',
  'provider-failed': 'this device\'s key provider failed (for example the PKCS#11 token was removed): message not opened',
  'not-stored': 'verified, but the replay state could not be saved: withheld so it cannot be accepted twice',
  'stale': 'timestamp is outside the accepted clock skew',
  'own-message': 'the message was sent by this device itself',
} as const);

export type Reason = keyof typeof REASONS;
export const REASON_CODES: readonly Reason[] = Object.freeze(Object.keys(REASONS) as Reason[]);

export type Result<T> = { ok: true; value: T } | { ok: false; reason: Reason; detail?: string };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(reason: Reason, detail?: string): Result<T> {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}

export function isReason(value: unknown): value is Reason {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(REASONS, value);
}
