/**
 * Certificate verification under the pinned CA (lib/trust/certificates.ts, I1, docs/PROTOCOL.md
 * §2.2 and §6): issuer, CA signature, key id derivation, validity window, and tampering.
 */
import assert from 'node:assert/strict';
import {
  cryptoBackend, decodeCertificate, resolveLimits, verifyCertificate, type CaKeyPair, type IdentityBundle,
} from '../../../lib';
import { certificateDigest, checkValidity } from '../../../lib/trust/certificates';
import { encodeCertificateBody, type CertificateFields } from '../../../lib/wire/certificate';
import { appendSignature } from '../../../lib/wire/common';
import {
  DAY, T0, assertReason, assertRejected, certify, countCrypto, device, falconCa as makeFalconCa, flipBit, keysFor, otherCa,
  regionsOf, testCa,
} from '../fixtures';

describe('trust/certificates (I1)', () => {
  let dev: IdentityBundle;
  let cert: Uint8Array;
  let falconCa: CaKeyPair;

  before(() => {
    dev = device({ id: 'cert-dev' });
    cert = dev.certificate!;
    falconCa = makeFalconCa();
  });

  it('I1 a certificate issued by the pinned CA verifies', () => {
    const r = verifyCertificate(cert, testCa().publicKey, T0);
    assert.ok(r.ok);
    assert.equal(r.value.deviceId, 'cert-dev');
  });

  it('I1 a certificate from another CA is bad-certificate, refused before any signature check', async () => {
    const foreign = certify(keysFor({ id: 'cert-dev' }), { ca: otherCa() }).certificate!;
    assert.ok(verifyCertificate(foreign, otherCa().publicKey, T0).ok, 'it is valid under its own CA');
    const { value, total } = await countCrypto(() => verifyCertificate(foreign, testCa().publicKey, T0));
    assertReason(value, 'bad-certificate');
    assert.equal(total, 0, 'issuer mismatch is decided without cryptography');
  });

  it('I1 a certificate naming the pinned CA key id but signed by another key is bad-certificate', () => {
    // Forge: take the body of a genuine certificate and sign it with another CA's secret key.
    const d = decodeCertificate(cert);
    assert.ok(d.ok);
    const forged = appendSignature(
      d.value.signedBytes, cryptoBackend().sign('ML-DSA-44', certificateDigest(d.value.signedBytes), otherCa().secretKey),
    );
    assertReason(verifyCertificate(forged, testCa().publicKey, T0), 'bad-certificate');
  });

  it('I1 a Falcon-512 CA issues certificates that verify only under itself', () => {
    const c = certify(keysFor({ id: 'cert-dev' }), { ca: falconCa }).certificate!;
    assert.ok(verifyCertificate(c, falconCa.publicKey, T0).ok);
    assertReason(verifyCertificate(c, testCa().publicKey, T0), 'bad-certificate');
    assertReason(verifyCertificate(cert, falconCa.publicKey, T0), 'bad-certificate');
  });

  it('I1 a CA-signed certificate whose key id is not derived from its keys is key-id-mismatch', () => {
    const d = decodeCertificate(cert);
    assert.ok(d.ok);
    const { signature: _s, signedBytes: _b, bytes: _x, ...fields } = d.value;
    const lying: CertificateFields = { ...fields, keyId: keysFor({ id: 'bob' }).keyId };
    const body = encodeCertificateBody(lying);
    const signed = appendSignature(body, cryptoBackend().sign('ML-DSA-44', certificateDigest(body), testCa().secretKey));
    assertReason(verifyCertificate(signed, testCa().publicKey, T0), 'key-id-mismatch');
  });

  it('I1 validity window: inclusive at both ends, not-yet-valid before, expired after', () => {
    const nb = T0 - 180 * DAY;
    const na = T0 + 180 * DAY;
    assert.ok(verifyCertificate(cert, testCa().publicKey, nb).ok, 'at notBefore');
    assert.ok(verifyCertificate(cert, testCa().publicKey, na).ok, 'at notAfter');
    assert.ok(verifyCertificate(cert, testCa().publicKey, na + 0.9).ok, 'fractions of a ms are floored');
    assertReason(verifyCertificate(cert, testCa().publicKey, nb - 1), 'not-yet-valid');
    assertReason(verifyCertificate(cert, testCa().publicKey, na + 1), 'expired');
    assertReason(verifyCertificate(cert, testCa().publicKey, 0), 'not-yet-valid');
    assert.deepEqual(checkValidity({ notBefore: 5n, notAfter: 5n }, 5), { ok: true, value: true });
    assertReason(checkValidity({ notBefore: 5n, notAfter: 5n }, 6), 'expired');
  });

  it('I1 a flipped bit anywhere in a certificate (every 11th byte and one per field) is refused', () => {
    const g = regionsOf('certificate', cert);
    const offsets = new Set<number>();
    for (let o = 0; o < cert.length; o += 11) offsets.add(o);
    for (const r of Object.values(g)) offsets.add(Math.floor((r.start + r.end - 1) / 2));
    const reasons = new Set<string>();
    for (const o of offsets) {
      for (const bit of [0, 7]) reasons.add(assertRejected(verifyCertificate(flipBit(cert, o, bit), testCa().publicKey, T0), `byte ${o} bit ${bit}`));
    }
    assert.ok(reasons.has('bad-certificate'));
  });

  it('I5 an oversized certificate is too-large with no cryptography at all', async () => {
    const limits = resolveLimits({ maxCertificateBytes: 1024 });
    const { value, total } = await countCrypto(() => verifyCertificate(cert, testCa().publicKey, T0, limits));
    assertReason(value, 'too-large');
    assert.equal(total, 0);
    const big = await countCrypto(() => verifyCertificate(new Uint8Array(16 * 1024 + 1), testCa().publicKey, T0));
    assertReason(big.value, 'too-large');
    assert.equal(big.total, 0);
  });

  it('an expired certificate with a valid signature costs exactly one verification (cheap checks first)', async () => {
    const { value, counts } = await countCrypto(() => verifyCertificate(cert, testCa().publicKey, T0 + 365 * DAY));
    assertReason(value, 'expired');
    assert.equal(counts.verify, 1);
  });
});
