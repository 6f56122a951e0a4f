/**
 * Stored session state (docs/PROTOCOL.md §5.1): what a restarted receiver and sender keep, and
 * that stored bytes are re-verified instead of trusted.
 */
import assert from 'node:assert/strict';
import { SEQUENCE_RESERVATION, type CounterSnapshot, type TrustSnapshot } from '../../../lib/session/session';
import { EMPTY_REVOCATIONS, issueRevocation } from '../../../lib/trust/revocation';
import { ALL_KEYS } from '../../../lib/wire/revocation';
import { decodeDirectEnvelope } from '../../../lib/wire/envelope';
import { DAY, T0, assertReason, certify, device, keysFor, pair, session, testCa } from '../fixtures';

const roundTrip = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('session state: snapshot and restore', function () {
  this.timeout(60_000);

  it('I4 a restarted receiver refuses every envelope it accepted before, and accepts new ones', async () => {
    const sender = session(device({ id: 'st-sender' }));
    const receiver = session(device({ id: 'st-receiver' }));
    await pair(sender, receiver);
    const captured: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      const env = await sender.sealDirect('plant/a', Buffer.from(`m${i}`), 'st-receiver', T0);
      captured.push(env);
      assert.ok((await receiver.open('plant/a', env, T0)).ok);
    }
    const trust = roundTrip(receiver.snapshotTrust());
    const counters = roundTrip(receiver.snapshotCounters());

    const restarted = session(device({ id: 'st-receiver' }));
    const report = await restarted.restore(trust, counters, T0);
    assert.ok(report.ok);
    assert.equal(report.value.peers, 1);
    for (const env of captured) assertReason(await restarted.open('plant/a', env, T0), ['duplicate', 'replay']);
    const fresh = await sender.sealDirect('plant/a', Buffer.from('new'), 'st-receiver', T0);
    assert.ok((await restarted.open('plant/a', fresh, T0)).ok);
  });

  it('a restarted sender never reuses a sequence number, even with its clock set back a day', async () => {
    const sender = session(device({ id: 'st-seq' }));
    const receiver = session(device({ id: 'st-seq-rx' }));
    await pair(sender, receiver);
    let highest = -1n;
    for (let i = 0; i < 3; i++) {
      const env = decodeDirectEnvelope(await sender.sealDirect('plant/a', Buffer.from('x'), 'st-seq-rx', T0));
      assert.ok(env.ok);
      highest = env.value.seq;
    }
    const counters = roundTrip(sender.snapshotCounters());
    assert.ok(BigInt(counters.sendReservedUpTo) > highest);
    assert.ok(BigInt(counters.sendReservedUpTo) <= highest + SEQUENCE_RESERVATION);

    const restarted = session(device({ id: 'st-seq' }));
    assert.ok((await restarted.restore(undefined, counters, T0 - DAY)).ok);
    await pair(restarted, receiver, T0 - DAY);
    const next = decodeDirectEnvelope(await restarted.sealDirect('plant/a', Buffer.from('y'), 'st-seq-rx', T0 - DAY));
    assert.ok(next.ok);
    assert.ok(next.value.seq > highest, `${next.value.seq} must exceed ${highest}`);
  });

  it('the state version moves on accepted messages and sequence reservations, not on refused input', async () => {
    const sender = session(device({ id: 'st-ver' }));
    const receiver = session(device({ id: 'st-ver-rx' }));
    await pair(sender, receiver);
    const v0 = receiver.stateVersion;
    assertReason(await receiver.open('plant/a', new Uint8Array(10), T0), 'bad-magic');
    assert.deepEqual(receiver.stateVersion, v0);
    const env = await sender.sealDirect('plant/a', Buffer.from('x'), 'st-ver-rx', T0);
    assert.ok((await receiver.open('plant/a', env, T0)).ok);
    assert.equal(receiver.stateVersion.counters, v0.counters + 1);
    const s0 = sender.stateVersion.counters;
    await sender.sealDirect('plant/a', Buffer.from('x'), 'st-ver-rx', T0);
    assert.equal(sender.stateVersion.counters, s0, 'inside the reservation: nothing to save');
  });

  it('a time floor restored from state keeps an expired certificate expired after the clock is set back', async () => {
    const shortLived = certify(keysFor({ id: 'st-short' }), { notBefore: T0 - DAY, notAfter: T0 + DAY });
    const sender = session(shortLived);
    const receiver = session(device({ id: 'st-floor-rx' }));
    await pair(sender, receiver);
    const env = await sender.sealDirect('plant/a', Buffer.from('x'), 'st-floor-rx', T0);
    // The receiver once saw a time after the certificate's end.
    assertReason(await receiver.open('plant/a', new Uint8Array(0), T0 + 2 * DAY), ['bad-magic', 'truncated']);
    const counters = roundTrip(receiver.snapshotCounters());
    const restarted = session(device({ id: 'st-floor-rx' }));
    const restored = await restarted.restore(roundTrip(receiver.snapshotTrust()), counters, T0);
    assert.ok(restored.ok);
    assert.deepEqual(restored.value.dropped.map((d) => d.reason), ['expired']);
    assertReason(await restarted.open('plant/a', env, T0), 'unknown-sender');
  });

  it('stored announcements are verified again: a tampered one is dropped, not trusted', async () => {
    const sender = session(device({ id: 'st-tamper' }));
    const receiver = session(device({ id: 'st-tamper-rx' }));
    await pair(sender, receiver);
    const trust = roundTrip(receiver.snapshotTrust());
    const bytes = Buffer.from(trust.peers[0], 'hex');
    bytes[bytes.length - 20] ^= 1;
    trust.peers[0] = bytes.toString('hex');
    const restarted = session(device({ id: 'st-tamper-rx' }));
    const report = await restarted.restore(trust, undefined, T0);
    assert.ok(report.ok);
    assert.equal(report.value.peers, 0);
    assert.deepEqual(report.value.dropped, [{ deviceId: 'st-tamper', reason: 'bad-signature' }]);
  });

  it('I7 a restored revocation update still refuses the revoked key', async () => {
    const sensor = session(device({ id: 'st-revoked' }));
    const receiver = session(device({ id: 'st-rev-rx' }));
    const update = issueRevocation(testCa(), EMPTY_REVOCATIONS, [{ deviceId: 'st-revoked', keyId: ALL_KEYS }], receiver.revocationTopic, T0);
    assert.ok(receiver.handleRevocation(receiver.revocationTopic, update.bytes).ok);
    const restarted = session(device({ id: 'st-rev-rx' }));
    assert.ok((await restarted.restore(roundTrip(receiver.snapshotTrust()), undefined, T0)).ok);
    assert.equal(restarted.revocationSequence(), 0n);
    assertReason(await restarted.handleAnnouncement(sensor.announcementTopic(), await sensor.buildAnnouncement(T0), T0), 'revoked');
  });

  it('malformed or foreign state is refused as a whole', async () => {
    const me = session(device({ id: 'st-me' }));
    const good = roundTrip(me.snapshotCounters());
    const bad: Array<[string, CounterSnapshot | undefined, TrustSnapshot | undefined]> = [
      ['other device', { ...good, deviceId: 'someone-else' }, undefined],
      ['bad format', { ...good, format: 'x' as never }, undefined],
      ['negative floor', { ...good, timeFloor: -1 }, undefined],
      ['non-decimal reservation', { ...good, sendReservedUpTo: '12abc' }, undefined],
      ['bad window id', { ...good, windows: { 'bad id!': { last: '1', seen: '1' } } }, undefined],
      ['bad window bitmap', { ...good, windows: { ok: { last: '1', seen: 'zz' } } }, undefined],
      ['trust of another device', undefined, { format: 'pqc-iiot-state/1', deviceId: 'x', peers: [], revocation: null }],
    ];
    for (const [what, counters, trust] of bad) {
      const r = await session(device({ id: 'st-me' })).restore(trust, counters, T0);
      assert.equal(r.ok, false, what);
    }
  });
});
