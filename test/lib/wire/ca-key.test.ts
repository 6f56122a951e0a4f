/**
 * CA public key codec and its text form (lib/wire/ca-key.ts, docs/PROTOCOL.md §2.5): binary
 * bad-input table, and the text parser used by the editor and the CLI.
 */
import assert from 'node:assert/strict';
import {
  CA_KEY_TEXT_PREFIX, caPublicKeyToText, decodeCaPublicKey, encodeCaPublicKey, parseCaPublicKeyText, type CaKeyPair,
} from '../../../lib';
import { assertReason, assertRejected, prng, randomBytes, regionsOf, testCa, withByte, withU16 } from '../fixtures';
import { badInputTable } from './decoder-table';

const MAX_CA_KEY_BYTES = 4 + 1 + 2 + 1952;

describe('wire/ca-key', () => {
  let ca: CaKeyPair;
  let bin: Uint8Array;

  before(() => {
    ca = testCa();
    bin = encodeCaPublicKey(ca.publicKey.sigAlgorithm, ca.publicKey.publicKey);
  });

  it('decodes to the same key and key id as the CA it came from', () => {
    const r = decodeCaPublicKey(bin);
    assert.ok(r.ok);
    assert.equal(r.value.sigAlgorithm, 'ML-DSA-44');
    assert.deepEqual(r.value.publicKey, ca.publicKey.publicKey);
    assert.deepEqual(r.value.keyId, ca.publicKey.keyId);
    assert.equal(r.value.keyId.length, 16);
  });

  badInputTable({ type: 'caPublicKey', valid: () => bin, decode: decodeCaPublicKey, maxBytes: () => MAX_CA_KEY_BYTES, seed: 0xca });

  it('unknown algorithm byte is unknown-algorithm; a key of the wrong length is bad-length', () => {
    const g = regionsOf('caPublicKey', bin);
    for (const b of [0x00, 0x04, 0xff]) assertReason(decodeCaPublicKey(withByte(bin, g.sigAlgorithm.start, b)), 'unknown-algorithm');
    assertReason(decodeCaPublicKey(withByte(bin, g.sigAlgorithm.start, 0x01)), 'bad-length', 'ML-DSA-44 key as Falcon');
    assertReason(decodeCaPublicKey(withByte(bin, g.sigAlgorithm.start, 0x03)), 'bad-length', 'ML-DSA-44 key as ML-DSA-65');
    assertReason(decodeCaPublicKey(withU16(bin, g.publicKey.prefix!, 0xffff)), 'bad-length');
    assertReason(decodeCaPublicKey(withU16(bin, g.publicKey.prefix!, 1313)), 'truncated');
    assertReason(decodeCaPublicKey(withU16(bin, g.publicKey.prefix!, 0)), 'bad-length');
  });

  describe('text form', () => {
    it('round-trips, and ignores white space from copy and paste', () => {
      const text = caPublicKeyToText(ca.publicKey);
      assert.ok(text.startsWith(CA_KEY_TEXT_PREFIX));
      const r = parseCaPublicKeyText(text);
      assert.ok(r.ok);
      assert.deepEqual(r.value.keyId, ca.publicKey.keyId);
      const wrapped = `  ${text.slice(0, 10)}\n${text.slice(10, 70)}\r\n\t${text.slice(70)}\n`;
      const w = parseCaPublicKeyText(wrapped);
      assert.ok(w.ok);
      assert.deepEqual(w.value.publicKey, ca.publicKey.publicKey);
    });

    it('a missing or different prefix is bad-magic', () => {
      const b64 = caPublicKeyToText(ca.publicKey).slice(CA_KEY_TEXT_PREFIX.length);
      for (const t of [b64, `pqcca2:${b64}`, `PQCCA1:${b64}`, `pqcca1${b64}`, '']) assertReason(parseCaPublicKeyText(t), 'bad-magic', t.slice(0, 8));
    });

    it('non-base64 characters are bad-field; non-string input is bad-field', () => {
      const text = caPublicKeyToText(ca.publicKey);
      for (const bad of [`${text}!`, `${text.slice(0, 20)}-${text.slice(21)}`, `${text}===`, `${CA_KEY_TEXT_PREFIX}%%%%`]) {
        assertReason(parseCaPublicKeyText(bad), 'bad-field', bad.slice(-8));
      }
      for (const x of [undefined, null, 42, bin, {}]) assertReason(parseCaPublicKeyText(x as unknown as string), 'bad-field');
    });

    it('I5 text longer than any CA key could be is too-large before decoding', () => {
      assertReason(parseCaPublicKeyText(CA_KEY_TEXT_PREFIX + 'A'.repeat(4 * Math.ceil(MAX_CA_KEY_BYTES / 3) + 8)), 'too-large');
      assertReason(parseCaPublicKeyText(CA_KEY_TEXT_PREFIX + '!'.repeat(100_000)), 'too-large', 'size before alphabet');
    });

    it('every truncation of the base64 text is refused', () => {
      const text = caPublicKeyToText(ca.publicKey);
      // Unpadded base64 is accepted (Buffer decodes it), so cutting only the '=' padding leaves
      // the full key: start the cuts below the padding.
      const unpadded = text.replace(/=+$/, '');
      for (let n = CA_KEY_TEXT_PREFIX.length; n < unpadded.length; n++) {
        assertRejected(parseCaPublicKeyText(text.slice(0, n)), `text cut at ${n}`);
      }
      // Cut at a multiple of 4 base64 characters: exactly a truncated binary encoding.
      assertReason(parseCaPublicKeyText(text.slice(0, CA_KEY_TEXT_PREFIX.length + 400)), 'truncated');
      assertReason(parseCaPublicKeyText(CA_KEY_TEXT_PREFIX), 'truncated', 'prefix only');
    });

    it('200 seeded random base64 strings are refused with a known reason', () => {
      const rand = prng(0xb64);
      for (let i = 0; i < 200; i++) {
        const b = Buffer.from(randomBytes(rand, Math.floor(rand() * 1500)));
        if (i % 2 === 0 && b.length >= 4) b.set([0x50, 0x51, 0x01, 0x04], 0);
        assertRejected(parseCaPublicKeyText(CA_KEY_TEXT_PREFIX + b.toString('base64')), `random #${i}`);
      }
    });
  });
});
