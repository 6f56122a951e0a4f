/**
 * Topic mode (docs/PROTOCOL.md §4.5–4.6, §6.6): one publisher, many subscribers, a topic key
 * wrapped per authorized subscriber and rotated by strategy or membership change.
 */
import assert from 'node:assert/strict';
import type { SecureSession, SealedTopicMessage } from '../../../lib/session/session';
import type { KeyStrategy } from '../../../lib/session/topic-keys';
import { EMPTY_REVOCATIONS, issueRevocation } from '../../../lib/trust/revocation';
import { decodeTopicKey } from '../../../lib/wire/topic-key';
import { decodeTopicEnvelope } from '../../../lib/wire/topic-envelope';
import { DAY, T0, assertReason, certify, flipBit, introduce, keysFor, pair, session, testCa } from '../fixtures';

const TOPIC = 'plant/line-1/temperature';

/** Delivers what a publisher produced to a subscriber: key message first (when any), then the envelope. */
async function deliver(sub: SecureSession, sealed: SealedTopicMessage, now = T0) {
  if (sealed.keyMessage) {
    const k = await sub.handleKeyMessage(sealed.keyMessage.topic, sealed.keyMessage.payload, now);
    if (!k.ok && k.reason !== 'not-for-me') assert.fail(`key message refused: ${k.reason}`);
  }
  return sub.open(TOPIC, sealed.envelope, now);
}

describe('topic mode: topic keys and strategies', function () {
  this.timeout(60_000);
  let publisher: SecureSession;
  let subs: SecureSession[];
  let outsider: SecureSession;

  before(async () => {
    publisher = session(certify(keysFor({ id: 'tk-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    subs = ['tk-sub-1', 'tk-sub-2', 'tk-sub-3'].map((id) => session(certify(keysFor({ id }), { roles: 'sub', topics: ['plant/line-1/#'] })));
    // Valid certificate, but for another topic: must never read plant/line-1.
    outsider = session(certify(keysFor({ id: 'tk-outsider' }), { roles: 'sub', topics: ['plant/line-2/#'] }));
    for (const s of [...subs, outsider]) await pair(publisher, s);
  });

  it('three authorized subscribers decrypt every message exactly once; the unauthorized one decrypts nothing', async () => {
    const got = new Map<string, string[]>();
    const outsiderResults: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sealed = await publisher.sealTopic(TOPIC, Buffer.from(`reading ${i}`), T0 + i);
      if (i === 0) {
        assert.ok(sealed.keyMessage, 'first message creates a key');
        assert.deepEqual(sealed.keyMessage.recipients.sort(), ['tk-sub-1', 'tk-sub-2', 'tk-sub-3']);
      }
      for (const s of subs) {
        const r = await deliver(s, sealed, T0 + i);
        assert.ok(r.ok, `${s.deviceId}: ${r.ok ? '' : r.reason}`);
        got.set(s.deviceId, [...(got.get(s.deviceId) ?? []), Buffer.from(r.value.data).toString()]);
        assertReason(await s.open(TOPIC, sealed.envelope, T0 + i), 'duplicate');
      }
      if (sealed.keyMessage) assertReason(await outsider.handleKeyMessage(sealed.keyMessage.topic, sealed.keyMessage.payload, T0), 'not-for-me');
      const o = await outsider.open(TOPIC, sealed.envelope, T0 + i);
      // Its certificate does not let it read here, and it has no key: the envelope stays sealed.
      outsiderResults.push(o.ok ? 'DECRYPTED' : o.reason);
    }
    for (const s of subs) assert.deepEqual(got.get(s.deviceId), [0, 1, 2, 3, 4].map((i) => `reading ${i}`));
    assert.ok(!outsiderResults.includes('DECRYPTED'), `outsider results: ${outsiderResults}`);
  });

  it('the envelope of a 100-byte reading stays under 1,000 bytes with Falcon-512', async () => {
    const falconPub = session(certify(keysFor({ id: 'tk-falcon', sig: 'Falcon-512' }), { roles: 'pub', topics: ['plant/#'] }));
    await pair(falconPub, subs[0]);
    const sealed = await falconPub.sealTopic(TOPIC, new Uint8Array(100), T0);
    assert.ok(sealed.envelope.length <= 1000, `${sealed.envelope.length} bytes`);
    const r = await deliver(subs[0], sealed);
    assert.ok(r.ok);
  });

  describe('each strategy rotates exactly when it should', () => {
    async function keyMessagesFor(strategy: KeyStrategy, sends: Array<{ at: number; bytes: number }>): Promise<number[]> {
      const pub = session(certify(keysFor({ id: `tk-s-${strategy.kind}` }), { roles: 'pub', topics: ['plant/#'] }));
      await pair(pub, subs[0]);
      const rotatedAt: number[] = [];
      for (let i = 0; i < sends.length; i++) {
        const sealed = await pub.sealTopic(TOPIC, new Uint8Array(sends[i].bytes), sends[i].at, strategy);
        if (sealed.keyMessage) rotatedAt.push(i);
        const r = await deliver(subs[0], sealed, sends[i].at);
        assert.ok(r.ok, r.ok ? '' : r.reason);
      }
      return rotatedAt;
    }
    const every = (n: number, bytes = 10) => Array.from({ length: n }, (_, i) => ({ at: T0 + i * 1000, bytes }));

    it('ephemeral: a new key for every message', async () => {
      assert.deepEqual(await keyMessagesFor({ kind: 'ephemeral' }, every(4)), [0, 1, 2, 3]);
    });
    it('packets: after N messages', async () => {
      assert.deepEqual(await keyMessagesFor({ kind: 'packets', count: 3 }, every(8)), [0, 3, 6]);
    });
    it('bytes: before the key would carry more than N bytes', async () => {
      assert.deepEqual(await keyMessagesFor({ kind: 'bytes', count: 25 }, every(6, 10)), [0, 2, 4]);
    });
    it('seconds: once N seconds have passed since the key was made', async () => {
      // Messages every second; key lifetime 3 s.
      assert.deepEqual(await keyMessagesFor({ kind: 'seconds', count: 3 }, every(8)), [0, 3, 6]);
    });
    it('schedule: at each epoch + k × interval boundary, with the key\'s end in the key message', async () => {
      const epochMs = T0 - 500;
      const rotatedAt = await keyMessagesFor({ kind: 'schedule', epochMs, intervalMs: 2000 }, every(6));
      // Boundaries at T0+1500, T0+3500, T0+5500: sends at T0+0,1000 | 2000,3000 | 4000,5000.
      assert.deepEqual(rotatedAt, [0, 2, 4]);
    });
  });

  it('a late joiner decrypts: the next message rotates the key to include it', async () => {
    const pub = session(certify(keysFor({ id: 'tk-late-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    await pair(pub, subs[0]);
    const first = await pub.sealTopic(TOPIC, Buffer.from('before'), T0);
    assert.ok((await deliver(subs[0], first)).ok);
    const late = session(certify(keysFor({ id: 'tk-late' }), { roles: 'sub', topics: ['plant/#'] }));
    await pair(pub, late);
    const second = await pub.sealTopic(TOPIC, Buffer.from('after'), T0 + 1);
    assert.ok(second.keyMessage, 'membership change rotates');
    assert.ok(second.keyMessage.recipients.includes('tk-late'));
    const r = await deliver(late, second, T0 + 1);
    assert.ok(r.ok);
    assert.equal(Buffer.from(r.value.data).toString(), 'after');
    assert.ok((await deliver(subs[0], second, T0 + 1)).ok, 'existing subscriber continues');
  });

  it('I7 a revoked subscriber cannot decrypt anything published after the revocation; the others continue without a gap', async () => {
    const pub = session(certify(keysFor({ id: 'tk-rev-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const keep = session(certify(keysFor({ id: 'tk-keep' }), { roles: 'sub', topics: ['plant/#'] }));
    const gone = session(certify(keysFor({ id: 'tk-gone' }), { roles: 'sub', topics: ['plant/#'] }));
    await pair(pub, keep);
    await pair(pub, gone);
    const before = await pub.sealTopic(TOPIC, Buffer.from('m0'), T0);
    assert.ok((await deliver(gone, before)).ok);
    assert.ok((await deliver(keep, before)).ok);

    const update = issueRevocation(testCa(), EMPTY_REVOCATIONS, [{ deviceId: 'tk-gone', keyId: keysFor({ id: 'tk-gone' }).keyId }], pub.revocationTopic, T0);
    assert.ok(pub.handleRevocation(pub.revocationTopic, update.bytes).ok);
    assert.ok(keep.handleRevocation(keep.revocationTopic, update.bytes).ok);

    const keepGot: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const sealed = await pub.sealTopic(TOPIC, Buffer.from(`m${i}`), T0 + i);
      if (i === 1) {
        assert.ok(sealed.keyMessage, 'the revocation forces a rotation before the next message');
        assert.deepEqual(sealed.keyMessage.recipients, ['tk-keep']);
        // The revoked device sees the key message but holds no wrap in it.
        assertReason(await gone.handleKeyMessage(sealed.keyMessage.topic, sealed.keyMessage.payload, T0 + i), 'not-for-me');
      }
      const g = await gone.open(TOPIC, sealed.envelope, T0 + i);
      assert.equal(g.ok, false, 'revoked subscriber decrypted a message after revocation');
      // It saw the authentic key message without its wrap: it knows at once it is not a member.
      assertReason(g, 'not-for-me');
      const k = await deliver(keep, sealed, T0 + i);
      assert.ok(k.ok);
      keepGot.push(Buffer.from(k.value.data).toString());
    }
    assert.deepEqual(keepGot, ['m1', 'm2', 'm3']);
  });

  it('concurrent seals on one topic make exactly one key, and every envelope opens', async () => {
    const pub = session(certify(keysFor({ id: 'tk-conc-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const sub = session(certify(keysFor({ id: 'tk-conc-sub' }), { roles: 'sub', topics: ['plant/#'] }));
    await pair(pub, sub);
    const sealed = await Promise.all([0, 1, 2, 3].map((i) => pub.sealTopic(TOPIC, Buffer.from(`c${i}`), T0)));
    assert.equal(sealed.filter((x) => x.keyMessage).length, 1);
    assert.equal(new Set(sealed.map((x) => x.keySerial)).size, 1);
    for (const x of sealed) assert.ok((await deliver(sub, x)).ok);
  });

  it('a message that arrives before its key message is held, then released when the key arrives', async () => {
    const pub = session(certify(keysFor({ id: 'tk-order-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const sub = session(certify(keysFor({ id: 'tk-order-sub' }), { roles: 'sub', topics: ['plant/#'] }));
    await pair(pub, sub);
    const sealed = await pub.sealTopic(TOPIC, Buffer.from('early'), T0);
    const held = sub.open(TOPIC, sealed.envelope, T0);
    const k = await sub.handleKeyMessage(sealed.keyMessage!.topic, sealed.keyMessage!.payload, T0);
    assert.ok(k.ok);
    assert.equal(k.value.released, 1);
    const r = await held;
    assert.ok(r.ok);
    assert.equal(Buffer.from(r.value.data).toString(), 'early');
  });

  it('a held message whose key never arrives fails with no-key after the wait; a full hold queue refuses at once', async () => {
    const pub = session(certify(keysFor({ id: 'tk-lost-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const sub = session(certify(keysFor({ id: 'tk-lost-sub' }), { roles: 'sub', topics: ['plant/#'] }), { limits: { maxPendingMessages: 1 } });
    await pair(pub, sub);
    const a = await pub.sealTopic(TOPIC, Buffer.from('a'), T0);
    const b = await pub.sealTopic(TOPIC, Buffer.from('b'), T0);
    const heldA = sub.open(TOPIC, a.envelope, T0);
    assertReason(await sub.open(TOPIC, b.envelope, T0), 'no-key');
    assert.equal(sub.expirePending(T0 + 1000), 0, 'not yet');
    assert.equal(sub.expirePending(T0 + 5000), 1);
    assertReason(await heldA, 'no-key');
  });

  describe('attacks on key messages', () => {
    let pub: SecureSession;
    let sub: SecureSession;
    let sealed: SealedTopicMessage;
    before(async () => {
      pub = session(certify(keysFor({ id: 'tk-atk-pub' }), { roles: 'pub', topics: ['plant/#'] }));
      sub = session(certify(keysFor({ id: 'tk-atk-sub' }), { roles: 'sub', topics: ['plant/#'] }));
      await pair(pub, sub);
      sealed = await pub.sealTopic(TOPIC, Buffer.from('x'), T0);
    });

    it('a bit flipped anywhere in the key message is refused, and never installs a key', async () => {
      const km = sealed.keyMessage!;
      for (let offset = 0; offset < km.payload.length; offset += 13) {
        const fresh = session(certify(keysFor({ id: 'tk-atk-sub' }), { roles: 'sub', topics: ['plant/#'] }));
        await introduce(fresh, pub);
        const r = await fresh.handleKeyMessage(km.topic, flipBit(km.payload, offset), T0);
        assert.equal(r.ok, false, `flip at ${offset} accepted`);
      }
    });

    it('a key message re-published under another topic or another publisher is refused', async () => {
      const km = sealed.keyMessage!;
      assertReason(await sub.handleKeyMessage('pqc/topic-keys/tk-atk-pub/plant/line-9/x', km.payload, T0), 'topic-mismatch');
      assertReason(await sub.handleKeyMessage(`pqc/topic-keys/someone/${TOPIC}`, km.payload, T0), 'topic-mismatch');
      assertReason(await sub.handleKeyMessage('pqc/topic-keys/bad id!/x', km.payload, T0), 'bad-id');
    });

    it('an older key message (rollback) or the same one again (retained re-delivery) changes nothing', async () => {
      const km1 = sealed.keyMessage!;
      assert.ok((await sub.handleKeyMessage(km1.topic, km1.payload, T0)).ok);
      const newer = await pub.sealTopic(TOPIC, Buffer.from('y'), T0 + 1, { kind: 'ephemeral' });
      assert.ok((await sub.handleKeyMessage(newer.keyMessage!.topic, newer.keyMessage!.payload, T0 + 1)).ok);
      assertReason(await sub.handleKeyMessage(km1.topic, km1.payload, T0 + 1), 'rollback');
      assertReason(await sub.handleKeyMessage(newer.keyMessage!.topic, newer.keyMessage!.payload, T0 + 1), 'duplicate');
    });

    it('a topic envelope re-routed to another topic is refused (I3)', async () => {
      const fresh = await pub.sealTopic(TOPIC, Buffer.from('z'), T0 + 2);
      if (fresh.keyMessage) await sub.handleKeyMessage(fresh.keyMessage.topic, fresh.keyMessage.payload, T0 + 2);
      assertReason(await sub.open('plant/line-1/pressure', fresh.envelope, T0 + 2), 'bad-signature');
      assert.ok((await sub.open(TOPIC, fresh.envelope, T0 + 2)).ok);
    });

    it('a key message from an unknown or unauthorized publisher is refused before any decapsulation', async () => {
      const stranger = session(certify(keysFor({ id: 'tk-stranger' }), { roles: 'pub', topics: ['plant/#'] }));
      await introduce(stranger, sub);
      const s = await stranger.sealTopic(TOPIC, Buffer.from('x'), T0);
      assertReason(await sub.handleKeyMessage(s.keyMessage!.topic, s.keyMessage!.payload, T0), 'unknown-sender');
      const subOnly = session(certify(keysFor({ id: 'tk-subonly' }), { roles: 'both', topics: ['other/#'] }));
      await pair(subOnly, sub);
      await assert.rejects(() => subOnly.sealTopic(TOPIC, Buffer.from('x'), T0), /does not allow publishing/);
    });

    it('decodes: fields as sealed, wraps per subscriber, header bound', () => {
      const k = decodeTopicKey(sealed.keyMessage!.payload);
      assert.ok(k.ok);
      assert.equal(k.value.topic, TOPIC);
      assert.deepEqual(k.value.wraps.map((w) => w.recipientId), ['tk-atk-sub']);
      const e = decodeTopicEnvelope(sealed.envelope);
      assert.ok(e.ok);
      assert.equal(e.value.keySerial, k.value.keySerial);
      assert.ok(e.value.seq > e.value.keySerial);
    });
  });

  it('an expired subscriber is left out of the next key', async () => {
    const pub = session(certify(keysFor({ id: 'tk-exp-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const shortLived = session(certify(keysFor({ id: 'tk-exp-sub' }), { roles: 'sub', topics: ['plant/#'], notBefore: T0 - DAY, notAfter: T0 + DAY }));
    await pair(pub, shortLived);
    const first = await pub.sealTopic(TOPIC, Buffer.from('a'), T0);
    assert.deepEqual(first.keyMessage!.recipients, ['tk-exp-sub']);
    const later = await pub.sealTopic(TOPIC, Buffer.from('b'), T0 + 2 * DAY);
    assert.deepEqual(later.keyMessage!.recipients, []);
  });

  it('membership follows certificate boundaries to the millisecond and new peers at once, however often the publisher sends', async () => {
    const pub = session(certify(keysFor({ id: 'tk-edge-pub' }), { roles: 'pub', topics: ['plant/#'] }));
    const ending = session(certify(keysFor({ id: 'tk-edge-end' }), { roles: 'sub', topics: ['plant/#'], notBefore: T0 - DAY, notAfter: T0 + 1000 }));
    const starting = session(certify(keysFor({ id: 'tk-edge-start' }), { roles: 'sub', topics: ['plant/#'], notBefore: T0 + 2000, notAfter: T0 + DAY }));
    await pair(pub, ending);
    await introduce(pub, starting, T0 + 2000); // trusted once valid; its record stays
    const keyed = async (at: number): Promise<string[] | undefined> => (await pub.sealTopic(TOPIC, Buffer.from('x'), at)).keyMessage?.recipients;
    assert.deepEqual(await keyed(T0 + 2000), ['tk-edge-start'], 'the ending one is past its end, the starting one has begun');
    assert.equal(await keyed(T0 + 2001), undefined, 'same members: same key');
    const late = session(certify(keysFor({ id: 'tk-edge-late' }), { roles: 'sub', topics: ['plant/#'] }));
    await introduce(pub, late, T0 + 2002);
    assert.deepEqual((await keyed(T0 + 2002))?.sort(), ['tk-edge-late', 'tk-edge-start'], 'a new peer joins the next key at once');
    const fresh = session(certify(keysFor({ id: 'tk-edge-pub2' }), { roles: 'pub', topics: ['plant/#'] }));
    await pair(fresh, ending);
    assert.deepEqual(await (async () => (await fresh.sealTopic(TOPIC, Buffer.from('y'), T0 + 1000)).keyMessage?.recipients)(), ['tk-edge-end'], 'valid through its last millisecond');
    assert.equal((await fresh.sealTopic(TOPIC, Buffer.from('y'), T0 + 1000)).keyMessage, undefined);
    assert.deepEqual((await fresh.sealTopic(TOPIC, Buffer.from('z'), T0 + 1001)).keyMessage?.recipients, [], 'gone one millisecond later');
  });
});
