/**
 * Direct envelope codec (lib/wire/envelope.ts, docs/PROTOCOL.md §2.4): decoding, the bad-input
 * table, and envelope-specific lies (capsule, ciphertext and signature lengths, ids, algorithms).
 */
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, decodeDirectEnvelope, resolveLimits, type SecureSession } from '../../../lib';
import { T0, assertReason, assertRejected, device, pair, regionsOf, session, withByte, withU16, withU32 } from '../fixtures';
import { badInputTable } from './decoder-table';

describe('wire/envelope', () => {
  let alice: SecureSession;
  let bob: SecureSession;
  let env: Uint8Array;
  let empty: Uint8Array;
  const data = new TextEncoder().encode('temperature=21.5');

  before(async () => {
    alice = session(device({ id: 'alice' }), { initialSequence: 1000n });
    bob = session(device({ id: 'bob' }));
    await pair(alice, bob);
    env = await alice.sealDirect('plant/line1/temp', data, 'bob', T0);
    empty = await alice.sealDirect('plant/line1/temp', new Uint8Array(0), 'bob', T0 + 1);
  });

  it('decodes every header field; headerBytes ends at the capsule and blob at the auth trailer', () => {
    const r = decodeDirectEnvelope(env);
    assert.ok(r.ok);
    const e = r.value;
    assert.equal(e.senderId, 'alice');
    assert.equal(e.senderKeyEpoch, 1);
    assert.deepEqual(e.senderKeyId, device({ id: 'alice' }).keyId);
    assert.equal(e.sigAlgorithm, 'ML-DSA-44');
    assert.equal(e.recipientId, 'bob');
    assert.deepEqual(e.recipientKeyId, device({ id: 'bob' }).keyId);
    assert.equal(e.kemAlgorithm, 'ML-KEM-768');
    assert.equal(e.seq, 1000n);
    assert.equal(e.timestamp, BigInt(T0));
    assert.equal(e.capsule.length, 1088);
    assert.equal(e.nonce.length, 12);
    assert.equal(e.ciphertext.length, data.length + 16);
    assert.equal(e.auth.signature.length, 2420);
    const g = regionsOf('envelope', env);
    assert.deepEqual(e.headerBytes, env.subarray(0, g.capsule.end));
    assert.deepEqual(e.blob, env.subarray(0, g.authKind.start));
    assert.equal(env[g.authKind.start], 0x01, 'auth kind 0x01: one signature');
  });

  it('an envelope of empty data holds just the 16-byte tag', () => {
    const r = decodeDirectEnvelope(empty);
    assert.ok(r.ok);
    assert.equal(r.value.ciphertext.length, 16);
  });

  badInputTable({ type: 'directEnvelope', valid: () => env, decode: (b) => decodeDirectEnvelope(b), maxBytes: () => DEFAULT_LIMITS.maxEnvelopeBytes, seed: 0xe4 });

  describe('envelope-specific lies', () => {
    it('unknown algorithm bytes are unknown-algorithm', () => {
      const g = regionsOf('envelope', env);
      for (const b of [0x00, 0x03, 0xff]) assertReason(decodeDirectEnvelope(withByte(env, g.kemAlgorithm.start, b)), 'unknown-algorithm', `kem ${b}`);
      for (const b of [0x00, 0x04, 0xff]) assertReason(decodeDirectEnvelope(withByte(env, g.sigAlgorithm.start, b)), 'unknown-algorithm', `sig ${b}`);
    });

    it('capsule or signature not matching the named algorithm is bad-length', () => {
      const g = regionsOf('envelope', env);
      assertReason(decodeDirectEnvelope(withByte(env, g.kemAlgorithm.start, 0x02)), 'bad-length', 'ML-KEM-768 capsule as ML-KEM-1024');
      assertReason(decodeDirectEnvelope(withByte(env, g.sigAlgorithm.start, 0x03)), 'bad-length', 'ML-DSA-44 signature as ML-DSA-65');
      assertReason(decodeDirectEnvelope(withByte(env, g.sigAlgorithm.start, 0x01)), 'bad-length', '2420-byte signature as Falcon');
    });

    it('length prefixes that lie', () => {
      const g = regionsOf('envelope', env);
      assertReason(decodeDirectEnvelope(withU16(env, g.capsule.prefix!, 0xffff)), 'bad-length', 'capsule 65535');
      assertReason(decodeDirectEnvelope(withU16(env, g.capsule.prefix!, 1569)), 'bad-length', 'capsule 1569');
      assertReason(decodeDirectEnvelope(withU16(env, g.capsule.prefix!, 0)), 'bad-length', 'capsule 0');
      assertRejected(decodeDirectEnvelope(withU16(env, g.capsule.prefix!, 1089)), 'capsule one byte longer');
      assertReason(decodeDirectEnvelope(withU32(env, g.ciphertext.prefix!, 0xffffffff)), 'truncated', 'ciphertext 2^32-1');
      assertReason(decodeDirectEnvelope(withU32(env, g.ciphertext.prefix!, 0x7fffffff)), 'truncated', 'ciphertext 2^31-1');
      assertReason(decodeDirectEnvelope(withU32(env, g.ciphertext.prefix!, 15)), 'bad-length', 'ciphertext shorter than a tag');
      assertReason(decodeDirectEnvelope(withU32(env, g.ciphertext.prefix!, 0)), 'bad-length', 'no ciphertext');
      assertRejected(decodeDirectEnvelope(withU32(env, g.ciphertext.prefix!, data.length + 17)), 'ciphertext one byte longer');
      assertReason(decodeDirectEnvelope(withU16(env, g.signature.prefix!, 0xffff)), 'bad-length', 'signature 65535');
      assertReason(decodeDirectEnvelope(withU16(env, g.signature.prefix!, 2421)), 'truncated', 'signature one longer');
      assertReason(decodeDirectEnvelope(withU16(env, g.signature.prefix!, 0)), 'bad-length', 'signature 0');
    });

    it('an unknown authentication kind is bad-field', () => {
      const g = regionsOf('envelope', env);
      for (const kind of [0x00, 0x03, 0x7f, 0xff]) {
        assertReason(decodeDirectEnvelope(withByte(env, g.authKind.start, kind)), 'bad-field', `auth kind ${kind}`);
      }
    });

    it('I0 invalid sender or recipient ids are bad-id', () => {
      const g = regionsOf('envelope', env);
      for (const [name, region] of [['sender', g.senderId], ['recipient', g.recipientId]] as const) {
        assertReason(decodeDirectEnvelope(withByte(env, region.prefix!, 0)), 'bad-id', `${name} length 0`);
        assertReason(decodeDirectEnvelope(withByte(env, region.prefix!, 129)), 'bad-id', `${name} length 129`);
        assertReason(decodeDirectEnvelope(withByte(env, region.prefix!, 255)), 'bad-id', `${name} length 255`);
        for (const b of [0x00, 0x20, 0x2f, 0x2b, 0x23, 0x7f, 0xc3, 0xff]) {
          assertReason(decodeDirectEnvelope(withByte(env, region.content, b)), 'bad-id', `${name} byte ${b}`);
        }
      }
    });

    it('I5 maxEnvelopeBytes is configurable', () => {
      assert.ok(decodeDirectEnvelope(env, resolveLimits({ maxEnvelopeBytes: env.length })).ok);
      assertReason(decodeDirectEnvelope(env, resolveLimits({ maxEnvelopeBytes: env.length - 1 })), 'too-large');
      assertReason(decodeDirectEnvelope(env, resolveLimits({ maxEnvelopeBytes: 256 })), 'too-large');
    });
  });
});
