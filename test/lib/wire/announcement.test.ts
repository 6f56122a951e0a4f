/**
 * Key announcement codec (lib/wire/announcement.ts, docs/PROTOCOL.md §2.3): decoding, the
 * bad-input table, and announcement-specific lies. Trust decisions are in session tests.
 */
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, decodeAnnouncement, resolveLimits, type IdentityBundle } from '../../../lib';
import { appendSignature } from '../../../lib/wire/common';
import { encodeAnnouncementBody } from '../../../lib/wire/announcement';
import { T0, assertReason, device, keysFor, regionsOf, session, withByte, withU16 } from '../fixtures';
import { badInputTable } from './decoder-table';

describe('wire/announcement', () => {
  let dev: IdentityBundle;
  let ann: Uint8Array;
  let bare: Uint8Array;
  let falconAnn: Uint8Array;

  before(async () => {
    dev = device({ id: 'ann-dev' });
    ann = await session(dev).buildAnnouncement(T0);
    bare = await session(keysFor({ id: 'ann-bare' }), { strict: false }).buildAnnouncement(T0);
    falconAnn = await session(keysFor({ id: 'falcon-dev', sig: 'Falcon-512' }), { strict: false }).buildAnnouncement(T0);
  });

  it('decodes every field, with the certificate carried verbatim', () => {
    const r = decodeAnnouncement(ann);
    assert.ok(r.ok);
    const a = r.value;
    assert.equal(a.deviceId, 'ann-dev');
    assert.equal(a.keyEpoch, 1);
    assert.deepEqual(a.keyId, dev.keyId);
    assert.equal(a.kemAlgorithm, 'ML-KEM-768');
    assert.equal(a.sigAlgorithm, 'ML-DSA-44');
    assert.deepEqual(a.kemPublicKey, dev.kemPublicKey);
    assert.deepEqual(a.sigPublicKey, dev.sigPublicKey);
    assert.equal(a.issuedAt, BigInt(T0));
    assert.deepEqual(a.certificate, dev.certificate);
    assert.equal(a.signature.length, 2420);
    assert.deepEqual(a.signedBytes, ann.subarray(0, ann.length - 2 - 2420));
  });

  it('an announcement without certificate carries an empty certificate field', () => {
    const r = decodeAnnouncement(bare);
    assert.ok(r.ok);
    assert.equal(r.value.certificate.length, 0);
    assert.equal(regionsOf('announcement', bare).certificate.end - regionsOf('announcement', bare).certificate.start, 2);
  });

  describe('with certificate (ML-DSA-44)', () => {
    badInputTable({ type: 'announcement', valid: () => ann, decode: (b) => decodeAnnouncement(b), maxBytes: () => DEFAULT_LIMITS.maxAnnouncementBytes, seed: 0xa11 });
  });

  describe('without certificate (Falcon-512, variable-length signature)', () => {
    badInputTable({ type: 'announcement', valid: () => falconAnn, decode: (b) => decodeAnnouncement(b), maxBytes: () => DEFAULT_LIMITS.maxAnnouncementBytes, seed: 0xa12 });
  });

  describe('announcement-specific lies', () => {
    it('unknown algorithm bytes are unknown-algorithm', () => {
      const g = regionsOf('announcement', ann);
      for (const b of [0x00, 0x03, 0xff]) assertReason(decodeAnnouncement(withByte(ann, g.kemAlgorithm.start, b)), 'unknown-algorithm', `kem ${b}`);
      for (const b of [0x00, 0x04, 0xff]) assertReason(decodeAnnouncement(withByte(ann, g.sigAlgorithm.start, b)), 'unknown-algorithm', `sig ${b}`);
    });

    it('keys or signature not matching their algorithm are bad-length', () => {
      const g = regionsOf('announcement', ann);
      assertReason(decodeAnnouncement(withByte(ann, g.kemAlgorithm.start, 0x02)), 'bad-length', 'kem 768 key as 1024');
      assertReason(decodeAnnouncement(withByte(ann, g.sigAlgorithm.start, 0x01)), 'bad-length', 'ML-DSA-44 key as Falcon');
      assertReason(decodeAnnouncement(withByte(ann, g.sigAlgorithm.start, 0x03)), 'bad-length', 'ML-DSA-44 key as ML-DSA-65');
      // A body with the right keys but a signature of the wrong length for ML-DSA-44.
      const body = ann.subarray(0, g.signature.start);
      assertReason(decodeAnnouncement(appendSignature(body, new Uint8Array(2419))), 'bad-length', 'short ML-DSA-44 signature');
      assertReason(decodeAnnouncement(appendSignature(body, new Uint8Array(3309))), 'bad-length', 'ML-DSA-65-sized signature');
      const fg = regionsOf('announcement', falconAnn);
      const falconBody = falconAnn.subarray(0, fg.signature.start);
      assertReason(decodeAnnouncement(appendSignature(falconBody, new Uint8Array(667))), 'bad-length', 'Falcon signature over 666');
      assert.ok(decodeAnnouncement(appendSignature(falconBody, new Uint8Array(1))).ok, 'any Falcon length 1..666 decodes');
    });

    it('length prefixes that lie: over the field maximum is bad-length, beyond the input is truncated', () => {
      const g = regionsOf('announcement', ann);
      assertReason(decodeAnnouncement(withU16(ann, g.kemPublicKey.prefix!, 0xffff)), 'bad-length');
      assertReason(decodeAnnouncement(withU16(ann, g.sigPublicKey.prefix!, 1953)), 'bad-length');
      assertReason(decodeAnnouncement(withU16(ann, g.signature.prefix!, 3310)), 'bad-length');
      assertReason(decodeAnnouncement(withU16(ann, g.signature.prefix!, 0)), 'bad-length', 'empty signature');
      assertReason(decodeAnnouncement(withU16(ann, g.signature.prefix!, 2421)), 'truncated');
      assertReason(decodeAnnouncement(withU16(ann, g.certificate.prefix!, 0xffff)), 'truncated', 'certificate length 65535');
      assertReason(decodeAnnouncement(withByte(ann, g.deviceId.prefix!, 129)), 'bad-id');
      assertReason(decodeAnnouncement(withByte(ann, g.deviceId.content, 0x2f)), 'bad-id', "'/' in the device id");
    });

    it('I5 a certificate larger than maxCertificateBytes inside an announcement within its limit is too-large', () => {
      const limits = resolveLimits({ maxCertificateBytes: 1024 });
      assertReason(decodeAnnouncement(ann, limits), 'too-large');
      assert.ok(decodeAnnouncement(bare, limits).ok, 'no certificate, nothing to limit');
      const exact = resolveLimits({ maxCertificateBytes: dev.certificate!.length });
      assert.ok(decodeAnnouncement(ann, exact).ok);
    });

    it('I5 maxAnnouncementBytes is configurable', () => {
      assert.ok(decodeAnnouncement(ann, resolveLimits({ maxAnnouncementBytes: ann.length })).ok);
      assertReason(decodeAnnouncement(ann, resolveLimits({ maxAnnouncementBytes: ann.length - 1 })), 'too-large');
    });

    it('encodeAnnouncementBody refuses an invalid device id (local error, never on the wire)', () => {
      const a = decodeAnnouncement(ann);
      assert.ok(a.ok);
      const { signature: _s, signedBytes: _b, ...fields } = a.value;
      assert.throws(() => encodeAnnouncementBody({ ...fields, deviceId: 'bad id' }), RangeError);
    });
  });
});
