/**
 * Certificate codec (lib/wire/certificate.ts, docs/PROTOCOL.md §2.2): decoding of valid
 * certificates and the full bad-input table, plus certificate-specific lies (roles, validity
 * window, topic filters, algorithm bytes, key lengths).
 */
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, decodeCertificate, deriveKeyId, resolveLimits, type IdentityBundle } from '../../../lib';
import { appendSignature } from '../../../lib/wire/common';
import { encodeCertificateBody, type CertificateFields } from '../../../lib/wire/certificate';
import {
  DAY, T0, assertReason, certify, device, keysFor, regionsOf, testCa, withByte, withU16,
} from '../fixtures';
import { badInputTable } from './decoder-table';

/** A certificate body with arbitrary (possibly inconsistent) fields and a dummy signature. */
function handmade(overrides: Partial<CertificateFields>, sigLength = 2420): Uint8Array {
  const id = keysFor({ id: 'cert-dev' });
  const fields: CertificateFields = {
    deviceId: id.deviceId,
    keyEpoch: id.keyEpoch,
    keyId: id.keyId,
    kemAlgorithm: id.kemAlgorithm,
    kemPublicKey: id.kemPublicKey,
    sigAlgorithm: id.sigAlgorithm,
    sigPublicKey: id.sigPublicKey,
    notBefore: BigInt(T0),
    notAfter: BigInt(T0 + DAY),
    roles: 'both',
    topics: ['plant/#'],
    caKeyId: testCa().publicKey.keyId,
    caSigAlgorithm: 'ML-DSA-44',
    ...overrides,
  };
  return appendSignature(encodeCertificateBody(fields), new Uint8Array(sigLength).fill(7));
}

describe('wire/certificate', () => {
  let dev: IdentityBundle;
  let falcon: IdentityBundle;
  let cert: Uint8Array;

  before(() => {
    dev = device({ id: 'cert-dev' });
    falcon = certify(keysFor({ id: 'falcon-dev', sig: 'Falcon-512' }), { roles: 'pub', topics: ['plant/a/+', 'plant/b/#'] });
    cert = dev.certificate!;
  });

  it('decodes every field of an issued certificate', () => {
    const r = decodeCertificate(cert);
    assert.ok(r.ok);
    const c = r.value;
    assert.equal(c.deviceId, 'cert-dev');
    assert.equal(c.keyEpoch, 1);
    assert.deepEqual(c.keyId, dev.keyId);
    assert.deepEqual(c.keyId, deriveKeyId(c.kemAlgorithm, c.kemPublicKey, c.sigAlgorithm, c.sigPublicKey));
    assert.equal(c.kemAlgorithm, 'ML-KEM-768');
    assert.equal(c.sigAlgorithm, 'ML-DSA-44');
    assert.deepEqual(c.kemPublicKey, dev.kemPublicKey);
    assert.deepEqual(c.sigPublicKey, dev.sigPublicKey);
    assert.equal(c.roles, 'both');
    assert.deepEqual(c.topics, ['plant/#']);
    assert.equal(c.notBefore, BigInt(T0 - 180 * DAY));
    assert.equal(c.notAfter, BigInt(T0 + 180 * DAY));
    assert.deepEqual(c.caKeyId, testCa().publicKey.keyId);
    assert.equal(c.caSigAlgorithm, 'ML-DSA-44');
    assert.equal(c.signature.length, 2420);
    assert.deepEqual(c.bytes, cert);
    assert.equal(c.signedBytes.length, cert.length - 2 - 2420);
  });

  it('decodes a Falcon-512 device certificate with several topic filters', () => {
    const r = decodeCertificate(falcon.certificate!);
    assert.ok(r.ok);
    assert.equal(r.value.sigAlgorithm, 'Falcon-512');
    assert.equal(r.value.roles, 'pub');
    assert.deepEqual(r.value.topics, ['plant/a/+', 'plant/b/#']);
  });

  describe('ML-DSA-44 device', () => {
    badInputTable({ type: 'certificate', valid: () => cert, decode: (b) => decodeCertificate(b), maxBytes: () => DEFAULT_LIMITS.maxCertificateBytes, seed: 0xce47 });
  });

  describe('Falcon-512 device, two topic filters', () => {
    badInputTable({
      type: 'certificate', valid: () => falcon.certificate!, decode: (b) => decodeCertificate(b),
      maxBytes: () => DEFAULT_LIMITS.maxCertificateBytes, seed: 0xfa1c,
    });
  });

  describe('certificate-specific lies', () => {
    it('unknown KEM, signature and CA-signature algorithm bytes are unknown-algorithm', () => {
      const g = regionsOf('certificate', cert);
      for (const b of [0x00, 0x03, 0x80, 0xff]) assertReason(decodeCertificate(withByte(cert, g.kemAlgorithm.start, b)), 'unknown-algorithm', `kem ${b}`);
      for (const b of [0x00, 0x04, 0x80, 0xff]) {
        assertReason(decodeCertificate(withByte(cert, g.sigAlgorithm.start, b)), 'unknown-algorithm', `sig ${b}`);
        assertReason(decodeCertificate(withByte(cert, g.caSigAlgorithm.start, b)), 'unknown-algorithm', `ca sig ${b}`);
      }
    });

    it('a key length that does not match its (known) algorithm is bad-length', () => {
      const g = regionsOf('certificate', cert);
      assertReason(decodeCertificate(withByte(cert, g.kemAlgorithm.start, 0x02)), 'bad-length', 'ML-KEM-768 key labelled ML-KEM-1024');
      assertReason(decodeCertificate(withByte(cert, g.sigAlgorithm.start, 0x01)), 'bad-length', 'ML-DSA-44 key labelled Falcon-512');
      assertReason(decodeCertificate(withByte(cert, g.sigAlgorithm.start, 0x03)), 'bad-length', 'ML-DSA-44 key labelled ML-DSA-65');
      assertReason(decodeCertificate(withByte(cert, g.caSigAlgorithm.start, 0x03)), 'bad-length', 'ML-DSA-44 CA signature labelled ML-DSA-65');
      const kem1024 = handmade({ kemPublicKey: new Uint8Array(1568) });
      assertReason(decodeCertificate(kem1024), 'bad-length', '1568-byte key labelled ML-KEM-768');
      assertReason(decodeCertificate(handmade({ sigPublicKey: new Uint8Array(1311) })), 'bad-length', 'short sig key');
      assertReason(decodeCertificate(handmade({}, 2419)), 'bad-length', 'ML-DSA-44 CA signature one byte short');
    });

    it('length prefixes that lie: above the field maximum is bad-length, beyond the input is truncated', () => {
      const g = regionsOf('certificate', cert);
      assertReason(decodeCertificate(withU16(cert, g.kemPublicKey.prefix!, 0xffff)), 'bad-length', 'kem pk 65535');
      assertReason(decodeCertificate(withU16(cert, g.kemPublicKey.prefix!, 1569)), 'bad-length', 'kem pk 1569');
      assertReason(decodeCertificate(withU16(cert, g.kemPublicKey.prefix!, 0)), 'bad-length', 'kem pk 0');
      assertReason(decodeCertificate(withU16(cert, g.sigPublicKey.prefix!, 0xffff)), 'bad-length', 'sig pk 65535');
      assertReason(decodeCertificate(withU16(cert, g.signature.prefix!, 0xffff)), 'bad-length', 'signature 65535');
      assertReason(decodeCertificate(withU16(cert, g.signature.prefix!, 3310)), 'bad-length', 'signature 3310');
      assertReason(decodeCertificate(withU16(cert, g.signature.prefix!, 2421)), 'truncated', 'signature one more than present');
      assertReason(decodeCertificate(withU16(cert, g.signature.prefix!, 2419)), 'trailing-data', 'signature one less than present');
      assertReason(decodeCertificate(withByte(cert, g.deviceId.prefix!, 200)), 'bad-id', 'device id length 200');
      assertReason(decodeCertificate(withByte(cert, g.deviceId.prefix!, 0)), 'bad-id', 'device id length 0');
      // The single topic filter: count and length.
      const topicsAt = g.topics.start;
      assertReason(decodeCertificate(withByte(cert, topicsAt, 0)), 'bad-length', 'zero topic filters');
      assertReason(decodeCertificate(withU16(cert, topicsAt + 1, 0xffff)), 'truncated', 'topic length 65535');
      assertReason(decodeCertificate(withU16(cert, topicsAt + 1, 0)), 'bad-length', 'empty topic');
    });

    it('roles outside pub/sub/both are bad-field', () => {
      const at = regionsOf('certificate', cert).roles.start;
      for (const b of [0, 4, 7, 0xff]) assertReason(decodeCertificate(withByte(cert, at, b)), 'bad-field', `roles ${b}`);
      for (const [b, role] of [[1, 'pub'], [2, 'sub'], [3, 'both']] as const) {
        const r = decodeCertificate(withByte(cert, at, b));
        assert.ok(r.ok && r.value.roles === role, `roles byte ${b}`);
      }
    });

    it('a validity window that ends before it starts is bad-field; a zero-length window decodes', () => {
      assertReason(decodeCertificate(handmade({ notBefore: BigInt(T0 + 1), notAfter: BigInt(T0) })), 'bad-field');
      assert.ok(decodeCertificate(handmade({ notBefore: BigInt(T0), notAfter: BigInt(T0) })).ok);
      assert.ok(decodeCertificate(handmade({ notBefore: 0n, notAfter: (1n << 64n) - 1n })).ok);
    });

    it('invalid topic filters are bad-field (misplaced wildcards, NUL, invalid UTF-8, over maxTopicBytes)', () => {
      for (const t of ['a/#/b', 'a#', 'a/b+', '+a', '##', 'a\u0000b']) {
        assertReason(decodeCertificate(handmade({ topics: ['plant/#', t] })), 'bad-field', JSON.stringify(t));
      }
      const good = handmade({ topics: ['x'.repeat(40)] });
      assert.ok(decodeCertificate(good).ok);
      assertReason(decodeCertificate(good, resolveLimits({ maxTopicBytes: 39 })), 'bad-field', 'topic over maxTopicBytes');
      assert.ok(decodeCertificate(good, resolveLimits({ maxTopicBytes: 40 })).ok);
      // Invalid UTF-8 inside a topic filter: patch the bytes of an ASCII filter.
      const g = regionsOf('certificate', good);
      assertReason(decodeCertificate(withByte(good, g.topics.start + 3, 0xff)), 'bad-field', 'invalid UTF-8 in filter');
    });

    it('more topic filters than maxTopicFilters is bad-length', () => {
      const three = handmade({ topics: ['a', 'b', 'c'] });
      assert.ok(decodeCertificate(three).ok);
      assertReason(decodeCertificate(three, resolveLimits({ maxTopicFilters: 2 })), 'bad-length');
      assert.ok(decodeCertificate(three, resolveLimits({ maxTopicFilters: 3 })).ok);
      const many = handmade({ topics: Array.from({ length: 33 }, (_, i) => `t/${i}`) });
      assertReason(decodeCertificate(many), 'bad-length', '33 filters over the default 32');
    });

    it('I5 maxCertificateBytes is configurable: the same certificate is too-large under a lower limit', () => {
      assert.ok(decodeCertificate(cert, resolveLimits({ maxCertificateBytes: cert.length })).ok);
      assertReason(decodeCertificate(cert, resolveLimits({ maxCertificateBytes: cert.length - 1 })), 'too-large');
      assertReason(decodeCertificate(cert, resolveLimits({ maxCertificateBytes: 1024 })), 'too-large');
    });
  });
});
