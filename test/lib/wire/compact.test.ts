/**
 * Compact mode wire structures (docs/PROTOCOL.md §2.10 compact topic envelope, §2.11 batch
 * manifest): round trips, the bad-input table (truncation at every length, oversize before
 * parsing, wrong magic/version/type, seeded random bytes), and lies specific to each layout.
 */
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, resolveLimits } from '../../../lib';
import { decodeBatchManifest, encodeBatchManifest, encodeBatchManifestBody, manifestDigest } from '../../../lib/wire/batch-manifest';
import { decodeCompactEnvelope, encodeCompactEnvelope, encodeCompactEnvelopeHeader } from '../../../lib/wire/compact-envelope';
import { LABELS, domainDigest, sha256 } from '../../../lib/crypto/symmetric';
import { compactNonce } from '../../../lib/session/topic-keys';
import { assertReason, concat, prng, randomBytes, withByte, withU16 } from '../fixtures';
import { badInputTable } from './decoder-table';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const KEY_ID = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

function compactEnvelope(sender = 'sensor-01', ciphertext: Uint8Array = new Uint8Array(116).fill(7)): Uint8Array {
  return encodeCompactEnvelope(encodeCompactEnvelopeHeader({ senderId: sender, keySerial: 5n, seq: 1234n }), ciphertext);
}

function manifest(count = 2, signature: Uint8Array = new Uint8Array(650).fill(9)): Uint8Array {
  const body = encodeBatchManifestBody({
    senderId: 'sensor-01',
    senderKeyEpoch: 3,
    senderKeyId: KEY_ID,
    sigAlgorithm: 'Falcon-512',
    timestamp: 1_735_689_600_000n,
    digests: Array.from({ length: count }, (_, i) => sha256(enc(`m${i}`))),
  });
  return encodeBatchManifest(body, signature);
}

describe('wire/compact-envelope (§2.10)', () => {
  it('round trip: fields, header bytes and ciphertext as encoded; nothing else on the wire', () => {
    const ct = randomBytes(prng(1), 116);
    const e = compactEnvelope('sensor-01', ct);
    // header 4 + id 1+9 + key_serial 8 + seq 8 + u16 length 2 + ciphertext.
    assert.equal(e.length, 4 + 10 + 8 + 8 + 2 + 116);
    assert.deepEqual([...e.subarray(0, 4)], [0x50, 0x51, 0x01, 0x08]);
    const d = decodeCompactEnvelope(e);
    assert.ok(d.ok);
    assert.equal(d.value.senderId, 'sensor-01');
    assert.equal(d.value.keySerial, 5n);
    assert.equal(d.value.seq, 1234n);
    assert.deepEqual(d.value.ciphertext, ct);
    assert.deepEqual(d.value.headerBytes, e.subarray(0, 30));
  });

  badInputTable({ type: 'compactEnvelope', valid: () => compactEnvelope(), decode: (b) => decodeCompactEnvelope(b), maxBytes: () => DEFAULT_LIMITS.maxEnvelopeBytes, seed: 0xc8 });

  it('a ciphertext shorter than the 16-byte tag is bad-length; an invalid sender id is bad-id', () => {
    const e = compactEnvelope();
    const lenAt = 4 + 10 + 16;
    assertReason(decodeCompactEnvelope(concat(withU16(e.subarray(0, lenAt + 2), lenAt, 15), new Uint8Array(15))), 'bad-length');
    assertReason(decodeCompactEnvelope(withByte(e, 5, 0x2f)), 'bad-id', 'slash in the id');
    assertReason(decodeCompactEnvelope(withByte(e, 4, 0)), 'bad-id', 'empty id');
    assertReason(decodeCompactEnvelope(withByte(e, 4, 200)), 'bad-id', 'id longer than 128');
  });

  it('I5 the configured envelope limit applies before parsing', () => {
    const e = compactEnvelope('sensor-01', new Uint8Array(300));
    const limits = resolveLimits({ maxEnvelopeBytes: 256 });
    assertReason(decodeCompactEnvelope(e, limits), 'too-large');
  });

  it('the nonce is u32 0x00000001 ‖ u64 seq (never the wrap nonce 0^12)', () => {
    assert.equal(Buffer.from(compactNonce(0x0102030405060708n)).toString('hex'), '000000010102030405060708');
    assert.equal(Buffer.from(compactNonce(0n)).toString('hex'), '000000010000000000000000');
  });
});

describe('wire/batch-manifest (§2.11)', () => {
  it('round trip: fields, digests and signature; the signature covers every byte before it under its own label', () => {
    const m = manifest(3);
    const d = decodeBatchManifest(m);
    assert.ok(d.ok);
    assert.equal(d.value.senderId, 'sensor-01');
    assert.equal(d.value.senderKeyEpoch, 3);
    assert.deepEqual(d.value.senderKeyId, KEY_ID);
    assert.equal(d.value.sigAlgorithm, 'Falcon-512');
    assert.equal(d.value.timestamp, 1_735_689_600_000n);
    assert.deepEqual(d.value.digests, [0, 1, 2].map((i) => sha256(enc(`m${i}`))));
    assert.equal(d.value.signature.length, 650);
    assert.deepEqual(d.value.signedBytes, m.subarray(0, m.length - 652));
    assert.deepEqual(manifestDigest(d.value.signedBytes), domainDigest(LABELS.batchManifest, [m.subarray(0, m.length - 652)]));
    assert.equal(LABELS.batchManifest, 'pqc-iiot:batch-manifest:v1');
  });

  badInputTable({ type: 'batchManifest', valid: () => manifest(2), decode: (b) => decodeBatchManifest(b), maxBytes: () => DEFAULT_LIMITS.maxManifestBytes, seed: 0xc9 });

  const countAt = 4 + 10 + 4 + 16 + 1 + 8;

  it('leaf_count 0 is bad-field', () => {
    const m = manifest(1);
    assertReason(decodeBatchManifest(withByte(m, countAt, 0)), 'bad-field');
  });

  it('a count that does not fit the bytes is refused (truncated, trailing-data or a length lie), never an exception', () => {
    const m = manifest(2);
    for (const n of [1, 3, 4, 100, 255]) {
      const r = decodeBatchManifest(withByte(m, countAt, n));
      assert.equal(r.ok, false, `count ${n} of 2 accepted`);
    }
    // Count larger than the digests present, with nothing after them: truncated.
    assertReason(decodeBatchManifest(withByte(m.subarray(0, countAt + 1 + 64), countAt, 3)), 'truncated');
  });

  it('255 digests fit the default limit with the largest signature; 256 cannot be encoded', () => {
    const big = manifest(255, new Uint8Array(3309));
    assert.ok(big.length <= DEFAULT_LIMITS.maxManifestBytes);
    assertReason(decodeBatchManifest(big), 'bad-length', 'ML-DSA-65 length under Falcon');
    assert.throws(() => manifest(256), RangeError);
    assert.throws(() => manifest(0), RangeError);
  });

  it('signature longer than Falcon-512 allows, or empty, is bad-length; unknown algorithm is unknown-algorithm; bad sender id is bad-id', () => {
    assertReason(decodeBatchManifest(manifest(1, new Uint8Array(667))), 'bad-length');
    const m = manifest(1);
    assertReason(decodeBatchManifest(withByte(m, 4 + 10 + 4 + 16, 0x09)), 'unknown-algorithm');
    assertReason(decodeBatchManifest(withByte(m, 6, 0x20)), 'bad-id');
    assertReason(decodeBatchManifest(withU16(m, m.length - 652, 0)), 'bad-length', 'zero-length signature');
  });

  it('I5 the configured manifest limit applies before parsing', () => {
    assertReason(decodeBatchManifest(manifest(40), resolveLimits({ maxManifestBytes: 1024 })), 'too-large');
    assert.ok(decodeBatchManifest(manifest(4), resolveLimits({ maxManifestBytes: 1024 })).ok);
  });
});
