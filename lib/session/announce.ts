/**
 * Key announcements: building one for this device and deciding whether to trust a peer's
 * (I1 strict mode, I2 binding and anti-rollback). docs/PROTOCOL.md §2.3 and §6.1.
 */
import { cryptoBackend } from '../crypto/backend';
import { bytesEqual, sha256 } from '../crypto/symmetric';
import type { Limits } from '../limits';
import { fail, ok, type Result } from '../result';
import { checkValidity, verifyCertificate } from '../trust/certificates';
import type { TrustedPeer } from '../trust/peers';
import type { CaPublicKey } from '../wire/ca-key';
import { announcementDigest, decodeAnnouncement, encodeAnnouncement, encodeAnnouncementBody } from '../wire/announcement';
import { deriveKeyId } from '../wire/common';
import type { SecurityProvider } from './provider';

type AnnouncingKeys = Pick<
  SecurityProvider,
  'deviceId' | 'keyEpoch' | 'keyId' | 'kemAlgorithm' | 'kemPublicKey' | 'sigAlgorithm' | 'sigPublicKey' | 'certificate'
>;

export async function buildAnnouncement(
  keys: AnnouncingKeys,
  issuedAt: number,
  sign: (digest: Uint8Array) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  const body = encodeAnnouncementBody({
    deviceId: keys.deviceId,
    keyEpoch: keys.keyEpoch,
    keyId: keys.keyId,
    kemAlgorithm: keys.kemAlgorithm,
    kemPublicKey: keys.kemPublicKey,
    sigAlgorithm: keys.sigAlgorithm,
    sigPublicKey: keys.sigPublicKey,
    issuedAt: BigInt(issuedAt),
    certificate: keys.certificate ?? new Uint8Array(0),
  });
  return encodeAnnouncement(body, await sign(announcementDigest(keys.deviceId, body)));
}

export interface AnnouncementPolicy {
  readonly strict: boolean;
  readonly ca: CaPublicKey | undefined;
  readonly limits: Limits;
  /** I7: a revoked key never becomes trusted again (absent: nothing is revoked). */
  readonly isRevoked?: (deviceId: string, keyId: Uint8Array) => boolean;
  /**
   * Asked once, right before the first post-quantum check (certificate or announcement
   * signature); false refuses the announcement with `budget` (§6.7). Absent: always allowed.
   */
  readonly admitSignatureChecks?: () => boolean;
}

export type AnnouncementOutcome = { kind: 'trusted'; peer: TrustedPeer } | { kind: 'unchanged'; peer: TrustedPeer };

/**
 * Decides on one announcement from `topicDeviceId`'s topic. `current` is the peer's present
 * trust record, if any. Size and id were checked by the caller before this is reached; the
 * order here is cheap checks first, then the CA signature, then the device signature.
 */
export function evaluateAnnouncement(
  payload: Uint8Array,
  topicDeviceId: string,
  current: TrustedPeer | undefined,
  policy: AnnouncementPolicy,
  now: number,
): Result<AnnouncementOutcome> {
  const hash = sha256(payload);
  if (current && bytesEqual(current.announcementHash, hash)) {
    // A retained re-delivery costs no signature check, but validity and revocation still apply.
    if (policy.isRevoked?.(current.deviceId, current.keyId)) return fail('revoked');
    const validity = checkValidity(current, now);
    return validity.ok ? ok({ kind: 'unchanged', peer: current }) : validity;
  }
  const d = decodeAnnouncement(payload, policy.limits);
  if (!d.ok) return d;
  const a = d.value;
  if (a.deviceId !== topicDeviceId) return fail('topic-mismatch');
  const derived = deriveKeyId(a.kemAlgorithm, a.kemPublicKey, a.sigAlgorithm, a.sigPublicKey);
  if (!bytesEqual(derived, a.keyId)) return fail('key-id-mismatch');
  if (policy.isRevoked?.(a.deviceId, a.keyId)) return fail('revoked');
  if (current) {
    if (a.keyEpoch < current.keyEpoch) return fail('epoch-rollback', `epoch ${a.keyEpoch} < trusted ${current.keyEpoch}`);
    if (a.keyEpoch === current.keyEpoch && !bytesEqual(a.keyId, current.keyId)) return fail('epoch-collision');
    // Same key, older announcement: a replay of a superseded certificate (e.g. wider rights).
    if (a.keyEpoch === current.keyEpoch && a.issuedAt < current.issuedAt) return fail('rollback', 'older announcement of the trusted key');
  }

  let rights: Pick<TrustedPeer, 'role' | 'topics' | 'notBefore' | 'notAfter' | 'certified'>;
  const checksCertificate = a.certificate.length > 0 && policy.ca !== undefined;
  if (!checksCertificate && policy.strict) return fail('no-certificate');
  if (policy.admitSignatureChecks && !policy.admitSignatureChecks()) return fail('budget', 'signature checks');
  if (checksCertificate && policy.ca) {
    const c = verifyCertificate(a.certificate, policy.ca, now, policy.limits);
    if (!c.ok) return c;
    const cert = c.value;
    if (cert.deviceId !== a.deviceId) return fail('certificate-subject');
    if (
      cert.keyEpoch !== a.keyEpoch || !bytesEqual(cert.keyId, a.keyId) ||
      cert.kemAlgorithm !== a.kemAlgorithm || !bytesEqual(cert.kemPublicKey, a.kemPublicKey) ||
      cert.sigAlgorithm !== a.sigAlgorithm || !bytesEqual(cert.sigPublicKey, a.sigPublicKey)
    ) {
      return fail('certificate-key-mismatch');
    }
    rights = { role: cert.roles, topics: cert.topics, notBefore: cert.notBefore, notAfter: cert.notAfter, certified: true };
  } else {
    // Outside strict mode a peer without a (checkable) certificate is trusted on first use,
    // with full rights: the editor says so in red, and strict is the default.
    rights = { role: 'both', topics: ['#'], notBefore: 0n, notAfter: (1n << 64n) - 1n, certified: false };
  }

  if (!cryptoBackend().verify(a.sigAlgorithm, a.signature, announcementDigest(a.deviceId, a.signedBytes), a.sigPublicKey)) {
    return fail('bad-signature');
  }
  return ok({
    kind: 'trusted',
    peer: Object.freeze({
      deviceId: a.deviceId,
      keyEpoch: a.keyEpoch,
      keyId: a.keyId,
      kemAlgorithm: a.kemAlgorithm,
      kemPublicKey: a.kemPublicKey,
      sigAlgorithm: a.sigAlgorithm,
      sigPublicKey: a.sigPublicKey,
      ...rights,
      issuedAt: a.issuedAt,
      topics: Object.freeze([...rights.topics]),
      announcementHash: hash,
    }),
  });
}
