/**
 * I7: distributed revocation updates are authenticated, bound to the revocation topic and
 * monotonic; a revoked (device, key) can neither become trusted nor have envelopes accepted.
 */
import assert from 'node:assert/strict';
import { DEFAULT_REVOCATION_TOPIC } from '../../../lib/session/session';
import { EMPTY_REVOCATIONS, applyRevocation, issueRevocation, type RevocationState } from '../../../lib/trust/revocation';
import { ALL_KEYS, decodeRevocation } from '../../../lib/wire/revocation';
import {
  T0, assertReason, countCrypto, device, flipBit, introduce, otherCa, pair, prng, randomBytes, session, testCa,
} from '../fixtures';

const TOPIC = DEFAULT_REVOCATION_TOPIC;

function revoke(state: RevocationState, entries: Array<{ deviceId: string; keyId: Uint8Array }>, topic = TOPIC) {
  return issueRevocation(testCa(), state, entries, topic, T0);
}

describe('revocation updates (I7)', () => {
  it('I7 an update signed by the pinned CA on the revocation topic is applied; seq increases by one', () => {
    const u1 = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'sensor-a', keyId: ALL_KEYS }]);
    const r = applyRevocation(EMPTY_REVOCATIONS, u1.bytes, TOPIC, TOPIC, testCa().publicKey);
    assert.ok(r.ok);
    assert.equal(r.value.state.seq, 0n);
    assert.equal(r.value.added.length, 1);
    const u2 = revoke(u1.state, [{ deviceId: 'sensor-b', keyId: new Uint8Array(16).fill(7) }]);
    const r2 = applyRevocation(r.value.state, u2.bytes, TOPIC, TOPIC, testCa().publicKey);
    assert.ok(r2.ok);
    assert.equal(r2.value.state.seq, 1n);
    assert.deepEqual(r2.value.added.map((e) => e.deviceId), ['sensor-b']);
    assert.equal(r2.value.state.entries.length, 2, 'updates are cumulative');
  });

  it('I7 rollback: an older update, or the same seq with other entries, is refused; the same one again is a quiet duplicate', () => {
    const u1 = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }]);
    const u2 = revoke(u1.state, [{ deviceId: 'b', keyId: ALL_KEYS }]);
    const applied = applyRevocation(EMPTY_REVOCATIONS, u2.bytes, TOPIC, TOPIC, testCa().publicKey);
    assert.ok(applied.ok);
    assertReason(applyRevocation(applied.value.state, u1.bytes, TOPIC, TOPIC, testCa().publicKey), 'rollback');
    assertReason(applyRevocation(applied.value.state, u2.bytes, TOPIC, TOPIC, testCa().publicKey), 'duplicate');
    const forkSameSeq = revoke(u1.state, [{ deviceId: 'c', keyId: ALL_KEYS }]);
    assertReason(applyRevocation(applied.value.state, forkSameSeq.bytes, TOPIC, TOPIC, testCa().publicKey), 'rollback');
  });

  it('I7 additive: a newer update that drops an applied entry is refused (no unrevoke)', () => {
    const u1 = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }]);
    const applied = applyRevocation(EMPTY_REVOCATIONS, u1.bytes, TOPIC, TOPIC, testCa().publicKey);
    assert.ok(applied.ok);
    // A CA that lost its state and starts over at a higher seq without "a".
    const restart = issueRevocation(testCa(), { ...EMPTY_REVOCATIONS, seq: 5n }, [{ deviceId: 'x', keyId: ALL_KEYS }], TOPIC, T0);
    assertReason(applyRevocation(applied.value.state, restart.bytes, TOPIC, TOPIC, testCa().publicKey), 'rollback');
  });

  it('I7 topic binding: an update re-published on another topic, or issued for another topic, is refused', () => {
    const u = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }]);
    assertReason(applyRevocation(EMPTY_REVOCATIONS, u.bytes, 'plant/other', TOPIC, testCa().publicKey), 'topic-mismatch');
    const forOther = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }], 'site-b/revocations');
    assertReason(applyRevocation(EMPTY_REVOCATIONS, forOther.bytes, TOPIC, TOPIC, testCa().publicKey), 'topic-mismatch');
  });

  it('I7 authenticity: another CA, a tampered signature or body is refused', () => {
    const foreign = issueRevocation(otherCa(), EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }], TOPIC, T0);
    assertReason(applyRevocation(EMPTY_REVOCATIONS, foreign.bytes, TOPIC, TOPIC, testCa().publicKey), 'bad-signature');
    const u = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }]);
    for (let offset = 0; offset < u.bytes.length; offset += 11) {
      const r = applyRevocation(EMPTY_REVOCATIONS, flipBit(u.bytes, offset), TOPIC, TOPIC, testCa().publicKey);
      assert.equal(r.ok, false, `bit flip at ${offset} was accepted`);
    }
  });

  it('I7 / I5 size is checked before decoding and before any signature check', async () => {
    const huge = new Uint8Array(256 * 1024 + 1);
    const { value, total } = await countCrypto(() => applyRevocation(EMPTY_REVOCATIONS, huge, TOPIC, TOPIC, testCa().publicKey));
    assertReason(value, 'too-large');
    assert.equal(total, 0);
  });

  it('I7 bad input never throws: truncations, lying counts, unsorted entries, random bytes', () => {
    const u = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'a', keyId: ALL_KEYS }, { deviceId: 'b', keyId: ALL_KEYS }]);
    for (let n = 0; n < u.bytes.length; n++) {
      const r = decodeRevocation(u.bytes.subarray(0, n));
      assert.equal(r.ok, false, `truncated to ${n} was accepted`);
    }
    // The count field sits after header(4), topic(2+15), seq(8), issued_at(8).
    const countAt = 4 + 2 + TOPIC.length + 16;
    const lying = Uint8Array.from(u.bytes);
    new DataView(lying.buffer).setUint32(countAt, 0xffffffff);
    assertReason(decodeRevocation(lying), 'bad-length');
    // Swap the ids of the two entries (each 1 + 1 + 16 bytes): no longer in canonical order.
    const swapped = Uint8Array.from(u.bytes);
    const first = countAt + 4;
    swapped[first + 1] = 'b'.charCodeAt(0);
    swapped[first + 18 + 1] = 'a'.charCodeAt(0);
    assertReason(decodeRevocation(swapped), 'bad-field');
    const rand = prng(7);
    for (let i = 0; i < 200; i++) {
      const r = decodeRevocation(randomBytes(rand, Math.floor(rand() * 400)));
      assert.equal(r.ok, false);
    }
  });
});

describe('revocation in the session (I7)', function () {
  this.timeout(60_000);

  it('I7 a revoked sender\'s next envelope is refused with "revoked" before any decryption, others continue', async () => {
    const sensor = session(device({ id: 'rev-sensor' }));
    const other = session(device({ id: 'rev-other' }));
    const controller = session(device({ id: 'rev-controller' }));
    await pair(sensor, controller);
    await pair(other, controller);
    const before = await sensor.sealDirect('plant/temp', Buffer.from('1'), 'rev-controller', T0);
    const after = await sensor.sealDirect('plant/temp', Buffer.from('2'), 'rev-controller', T0);
    assert.ok((await controller.open('plant/temp', before, T0)).ok);

    const update = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'rev-sensor', keyId: device({ id: 'rev-sensor' }).keyId }]);
    const applied = controller.handleRevocation(TOPIC, update.bytes);
    assert.ok(applied.ok);
    assert.deepEqual(applied.value.untrusted, ['rev-sensor']);
    assert.equal(applied.value.selfRevoked, false);

    const { value, counts } = await countCrypto(() => controller.open('plant/temp', after, T0));
    assertReason(value, 'revoked');
    assert.equal(counts.decapsulate + counts.verify, 0, 'no crypto for a revoked sender');
    const fromOther = await other.sealDirect('plant/temp', Buffer.from('3'), 'rev-controller', T0);
    assert.ok((await controller.open('plant/temp', fromOther, T0)).ok, 'unrevoked peers continue');
  });

  it('I7 a revoked key cannot complete a key announcement in strict mode, even re-announced', async () => {
    const sensor = session(device({ id: 'rev-sensor2' }));
    const controller = session(device({ id: 'rev-controller2' }));
    const update = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'rev-sensor2', keyId: ALL_KEYS }]);
    assert.ok(controller.handleRevocation(TOPIC, update.bytes).ok);
    const announcement = await sensor.buildAnnouncement(T0);
    assertReason(await controller.handleAnnouncement(sensor.announcementTopic(), announcement, T0), 'revoked');
    assert.equal(controller.listPeers().length, 0);
    await assert.rejects(() => controller.sealDirect('plant/x', Buffer.from('x'), 'rev-sensor2', T0), /revoked/);
  });

  it('I7 revoking one key id leaves a rotated key of the same device trusted', async () => {
    const old = device({ id: 'rev-rot', epoch: 1 });
    const rotated = session(device({ id: 'rev-rot', epoch: 2 }));
    const controller = session(device({ id: 'rev-controller3' }));
    const update = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'rev-rot', keyId: old.keyId }]);
    assert.ok(controller.handleRevocation(TOPIC, update.bytes).ok);
    await introduce(controller, rotated);
    assert.equal(controller.listPeers()[0]?.keyEpoch, 2);
  });

  it('I7 a session reports when its own key is revoked', () => {
    const me = session(device({ id: 'rev-self' }));
    const update = revoke(EMPTY_REVOCATIONS, [{ deviceId: 'rev-self', keyId: ALL_KEYS }]);
    const r = me.handleRevocation(TOPIC, update.bytes);
    assert.ok(r.ok);
    assert.equal(r.value.selfRevoked, true);
  });
});
