/**
 * Attack tests on the sans-I/O SecureSession (lib/session/session.ts, docs/PROTOCOL.md §4–6):
 * the broker is hostile and may replay, reorder, re-route, tamper and inject. Two or three
 * endpoints are joined directly, without any I/O; time is passed in as `now`.
 */
import assert from 'node:assert/strict';
import {
  REASON_CODES, SecureSession, cryptoBackend, initialSequenceFor, type IdentityBundle, type Reason,
} from '../../../lib';
import { sealDirectEnvelope } from '../../../lib/session/direct';
import {
  DAY, HOUR, T0, announcementOf, assertReason, assertRejected, certify, countCrypto, device, flipBit, introduce, keysFor,
  pair, prng, randomBytes, regionsOf, senderAt, session, type Region,
} from '../fixtures';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const TOPIC = 'plant/line1/temp';

/** Named byte ranges of an envelope, with the ciphertext split into body and GCM tag. */
function envelopeRegions(env: Uint8Array): Record<string, [number, number]> {
  const g = regionsOf('envelope', env);
  const content = (r: Region): [number, number] => [r.content, r.end];
  const out: Record<string, [number, number]> = {
    'magic': [0, 2], 'version': [2, 3], 'type': [3, 4],
    'sender id length': [g.senderId.prefix!, g.senderId.content], 'sender id': content(g.senderId),
    'sender key epoch': [g.senderKeyEpoch.start, g.senderKeyEpoch.end], 'sender key id': [g.senderKeyId.start, g.senderKeyId.end],
    'signature algorithm': [g.sigAlgorithm.start, g.sigAlgorithm.end],
    'recipient id length': [g.recipientId.prefix!, g.recipientId.content], 'recipient id': content(g.recipientId),
    'recipient key id': [g.recipientKeyId.start, g.recipientKeyId.end], 'KEM algorithm': [g.kemAlgorithm.start, g.kemAlgorithm.end],
    'seq': [g.seq.start, g.seq.end], 'timestamp': [g.timestamp.start, g.timestamp.end],
    'capsule length': [g.capsule.prefix!, g.capsule.content], 'capsule': content(g.capsule),
    'nonce': [g.nonce.start, g.nonce.end],
    'ciphertext length': [g.ciphertext.prefix!, g.ciphertext.content], 'ciphertext': [g.ciphertext.content, g.ciphertext.end - 16],
    'GCM tag': [g.ciphertext.end - 16, g.ciphertext.end],
    'signature length': [g.signature.prefix!, g.signature.content], 'signature': content(g.signature),
  };
  return out;
}

function announcementRegions(a: Uint8Array): Record<string, [number, number]> {
  const g = regionsOf('announcement', a);
  const out: Record<string, [number, number]> = { magic: [0, 2], version: [2, 3], type: [3, 4] };
  for (const [name, r] of Object.entries(g)) {
    if (name === 'magic' || name === 'version' || name === 'type') continue;
    if (r.prefix !== undefined) {
      out[`${name} length`] = [r.prefix, r.content];
      if (r.end > r.content) out[name] = [r.content, r.end];
    } else out[name] = [r.start, r.end];
  }
  return out;
}

/** Offsets to hit in a region: first, middle and last byte. */
function offsetsIn([start, end]: [number, number]): number[] {
  return [...new Set([start, Math.floor((start + end - 1) / 2), end - 1])];
}

describe('session/session attacks', () => {
  let alice: IdentityBundle;
  let bob: IdentityBundle;
  let carol: IdentityBundle;
  let mallory: IdentityBundle;
  let falcon: IdentityBundle;

  before(() => {
    alice = device({ id: 'alice' });
    bob = device({ id: 'bob' });
    carol = device({ id: 'carol' });
    mallory = device({ id: 'mallory' });
    falcon = certify(keysFor({ id: 'falcon-dev', sig: 'Falcon-512' }));
  });

  describe('replay and reordering', () => {
    it('an accepted envelope delivered again is duplicate, every time, and never re-delivers data', async () => {
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const env = await a.sealDirect(TOPIC, enc('once'), 'bob', T0);
      assert.ok((await b.open(TOPIC, env, T0)).ok);
      for (let i = 0; i < 3; i++) assertReason(await b.open(TOPIC, env, T0 + i * HOUR), 'duplicate');
    });

    it('a replay older than the window (after 64 newer messages) is replay', async () => {
      const b = session(bob);
      await introduce(b, session(alice));
      const old = await (await senderAt(alice, b, 10n)).sealDirect(TOPIC, enc('old'), 'bob', T0);
      assert.ok((await b.open(TOPIC, old, T0)).ok);
      assert.ok((await b.open(TOPIC, await (await senderAt(alice, b, 74n)).sealDirect(TOPIC, enc('new'), 'bob', T0), T0)).ok);
      assertReason(await b.open(TOPIC, old, T0), 'replay');
    });

    it('reordered delivery of ten envelopes is accepted once each, in any order', async () => {
      const b = session(bob);
      const a = await senderAt(alice, b, 1n);
      await introduce(b, a);
      const envs = [];
      for (let i = 0; i < 10; i++) envs.push(await a.sealDirect(TOPIC, enc(`m${i}`), 'bob', T0));
      const order = [9, 0, 5, 2, 8, 1, 7, 3, 6, 4];
      const got: string[] = [];
      for (const i of order) {
        const r = await b.open(TOPIC, envs[i], T0);
        assert.ok(r.ok, `m${i}`);
        got.push(dec(r.value.data));
      }
      assert.deepEqual(got, order.map((i) => `m${i}`));
      for (const i of order) assertReason(await b.open(TOPIC, envs[i], T0), 'duplicate');
    });

    it('sequence numbers start from the time of the first send, above those of an earlier run', async () => {
      assert.equal(initialSequenceFor(T0), BigInt(T0) << 20n);
      assert.ok(initialSequenceFor(T0 + 1) > initialSequenceFor(T0) + (1n << 19n));
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const r = await b.open(TOPIC, await a.sealDirect(TOPIC, enc('x'), 'bob', T0), T0);
      assert.ok(r.ok && r.value.seq === BigInt(T0) << 20n);
      const r2 = await b.open(TOPIC, await a.sealDirect(TOPIC, enc('y'), 'bob', T0 + 5), T0);
      assert.ok(r2.ok && r2.value.seq === (BigInt(T0) << 20n) + 1n, 'then one by one');
    });
  });

  describe('tampering', () => {
    const forbidden: readonly Reason[] = ['duplicate', 'replay'];

    it('a bit flipped in each region of an envelope (first, middle, last byte; fresh envelope each) is refused', async () => {
      const b = session(bob);
      const a = await senderAt(alice, b, 1n);
      await introduce(b, a);
      const probe = await a.sealDirect(TOPIC, enc('region probe: 32 bytes of data!!'), 'bob', T0);
      const regions = envelopeRegions(probe);
      const seen = new Map<string, Reason[]>();
      for (const [name, range] of Object.entries(regions)) {
        for (const o of offsetsIn(range)) {
          const fresh = await a.sealDirect(TOPIC, enc('region probe: 32 bytes of data!!'), 'bob', T0);
          assert.equal(fresh.length, probe.length, 'same layout every time');
          const r = await b.open(TOPIC, flipBit(fresh, o, o % 8), T0);
          const reason = assertRejected(r, `${name} @${o}`);
          if (name !== 'seq') assert.ok(!forbidden.includes(reason), `${name} @${o}: ${reason} would mean replay masked the tamper`);
          seen.set(name, [...(seen.get(name) ?? []), reason]);
        }
      }
      assert.ok(seen.get('signature')!.every((x) => x === 'bad-signature'));
      assert.ok(seen.get('ciphertext')!.every((x) => x === 'bad-signature'));
      assert.ok(seen.get('GCM tag')!.every((x) => x === 'bad-signature'));
      assert.ok(seen.get('nonce')!.every((x) => x === 'bad-signature'));
      assert.ok(seen.get('capsule')!.every((x) => x === 'bad-signature'));
      assert.ok(seen.get('timestamp')!.every((x) => x === 'bad-signature'));
      assert.deepEqual(seen.get('magic'), ['bad-magic', 'bad-magic']);
      assert.deepEqual(seen.get('version'), ['bad-version']);
      assert.deepEqual(seen.get('type'), ['bad-type']);
      assert.ok(seen.get('sender key id')!.every((x) => x === 'stale-key'));
      assert.ok(seen.get('recipient key id')!.every((x) => x === 'not-for-me'));
      // Nothing was consumed by all those rejections: an untouched envelope still opens.
      assert.ok((await b.open(TOPIC, await a.sealDirect(TOPIC, enc('after'), 'bob', T0), T0)).ok);
    });

    for (const who of ['Falcon-512', 'ML-DSA-44'] as const) {
      it(`${who} sender: a one-bit flip at every 7th byte across the whole envelope (fresh envelope each) is refused, never thrown`, async function () {
        this.timeout(120_000);
        const b = session(bob);
        const a = await senderAt(who === 'Falcon-512' ? falcon : alice, b, 1n);
        await introduce(b, a);
        const len = (await a.sealDirect(TOPIC, enc('sweep'), 'bob', T0)).length;
        let tried = 0;
        const reasons = new Map<Reason, number>();
        for (let o = 0; o < len; o += 7) {
          const fresh = await a.sealDirect(TOPIC, enc('sweep'), 'bob', T0);
          // Falcon signatures vary in length: skip an offset beyond this envelope.
          if (o >= fresh.length) continue;
          const seqRange = envelopeRegions(fresh).seq;
          const r = await b.open(TOPIC, flipBit(fresh, o, (o >> 3) % 8), T0);
          const reason = assertRejected(r, `offset ${o} of ${fresh.length}`);
          if (o < seqRange[0] || o >= seqRange[1]) assert.ok(!forbidden.includes(reason), `offset ${o}: ${reason}`);
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
          tried++;
        }
        assert.ok(tried >= Math.floor(len / 7) - 2, `only ${tried} offsets tried`);
        assert.ok((reasons.get('bad-signature') ?? 0) > tried / 2, JSON.stringify([...reasons]));
        // All those rejections consumed nothing.
        assert.ok((await b.open(TOPIC, await a.sealDirect(TOPIC, enc('after'), 'bob', T0), T0)).ok);
      });
    }

    it('a bit flipped in each region of an announcement (first, middle, last byte) is refused and installs nothing', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const reasons: Record<string, Reason[]> = {};
      for (const [name, range] of Object.entries(announcementRegions(payload))) {
        for (const o of offsetsIn(range)) {
          const r = await receiver.handleAnnouncement('pqc/keys/alice', flipBit(payload, o, o % 8), T0);
          (reasons[name] ??= []).push(assertRejected(r, `${name} @${o}`));
        }
      }
      assert.deepEqual(receiver.listPeers(), []);
      assert.ok(reasons.signature.every((x) => x === 'bad-signature'));
      assert.ok(reasons.issuedAt.every((x) => x === 'bad-signature'));
      assert.ok(reasons.kemPublicKey.every((x) => x === 'key-id-mismatch'));
      assert.ok(reasons.sigPublicKey.every((x) => x === 'key-id-mismatch'));
      assert.ok(reasons.keyId.every((x) => x === 'key-id-mismatch'));
      assert.ok(reasons.keyEpoch.every((x) => x === 'certificate-key-mismatch'));
      assert.ok(reasons.certificate.every((x) => x !== 'bad-signature'), 'certificate checked before the device signature');
      assert.ok((await receiver.handleAnnouncement('pqc/keys/alice', payload, T0)).ok, 'the untouched one is accepted');
    });

    for (const who of ['Falcon-512', 'ML-DSA-44'] as const) {
      it(`${who}: a one-bit flip at every 7th byte of an announcement is refused, also when the peer is already trusted`, async function () {
        this.timeout(120_000);
        const subject = who === 'Falcon-512' ? falcon : alice;
        const fresh = session(bob);
        const trusting = session(bob);
        const payload = await announcementOf(subject);
        await introduce(trusting, session(subject));
        const before = JSON.stringify(trusting.listPeers());
        const topic = `pqc/keys/${subject.deviceId}`;
        for (let o = 0; o < payload.length; o += 7) {
          const t = flipBit(payload, o, (o >> 3) % 8);
          assertRejected(await fresh.handleAnnouncement(topic, t, T0), `offset ${o}`);
          assertRejected(await trusting.handleAnnouncement(topic, t, T0), `offset ${o}, trusted peer`);
        }
        assert.deepEqual(fresh.listPeers(), []);
        assert.equal(JSON.stringify(trusting.listPeers()), before, 'trusted record unchanged');
      });
    }

    it('an identical re-delivered announcement (retained) is ok, unchanged, and costs no crypto', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const first = await receiver.handleAnnouncement('pqc/keys/alice', payload, T0);
      assert.ok(first.ok && first.value.changed);
      const { value, total } = await countCrypto(() => receiver.handleAnnouncement('pqc/keys/alice', payload, T0 + 1));
      assert.ok(value.ok && value.value.changed === false);
      assert.equal(total, 0);
    });
  });

  describe('forged, unknown and misdirected senders', () => {
    it("a forged sender: mallory signs with her own key but claims alice's id and key", async () => {
      const b = session(bob);
      await introduce(b, session(alice));
      await introduce(b, session(mallory));
      const claim = { deviceId: 'alice', keyEpoch: alice.keyEpoch, keyId: alice.keyId, sigAlgorithm: alice.sigAlgorithm };
      const forged = await sealDirectEnvelope({
        topic: TOPIC, data: enc('open the valve'), seq: 1n << 62n, timestamp: T0, sender: claim, recipient: bob,
        sign: async (d) => cryptoBackend().sign('ML-DSA-44', d, mallory.sigSecretKey),
      });
      assertReason(await b.open(TOPIC, forged, T0), 'bad-signature');
      // With her own key id, the claim does not even reach the signature.
      const own = await sealDirectEnvelope({
        topic: TOPIC, data: enc('x'), seq: 1n, timestamp: T0, recipient: bob,
        sender: { ...claim, keyId: mallory.keyId }, sign: async (d) => cryptoBackend().sign('ML-DSA-44', d, mallory.sigSecretKey),
      });
      assertReason(await b.open(TOPIC, own, T0), 'stale-key');
    });

    it('an unknown sender is refused in strict mode, also after its announcement was refused', async () => {
      const a = session(alice);
      const b = session(bob);
      await introduce(a, b);
      const env = await a.sealDirect(TOPIC, enc('x'), 'bob', T0);
      assertReason(await b.open(TOPIC, env, T0), 'unknown-sender');
      assertReason(await b.handleAnnouncement('pqc/keys/alice', await announcementOf(keysFor({ id: 'alice' })), T0), 'no-certificate');
      assertReason(await b.open(TOPIC, env, T0), 'unknown-sender');
      await introduce(b, a);
      assert.ok((await b.open(TOPIC, env, T0)).ok, 'once trusted, the same envelope opens');
    });

    it("mallory's genuine certificate re-published under alice's topic is refused", async () => {
      const b = session(bob);
      assertReason(await b.handleAnnouncement('pqc/keys/alice', await announcementOf(mallory), T0), 'topic-mismatch');
      const posing = { ...keysFor({ id: 'mallory' }), deviceId: 'alice', certificate: mallory.certificate };
      assertReason(await b.handleAnnouncement('pqc/keys/alice', await announcementOf(posing), T0), 'certificate-subject');
      assert.deepEqual(b.listPeers(), []);
    });

    it('an envelope for another recipient is not-for-me (other id, or the same id with another key)', async () => {
      const a = session(alice);
      const b = session(bob);
      const c = session(carol);
      await pair(a, b);
      await introduce(c, a);
      const env = await a.sealDirect(TOPIC, enc('for bob'), 'bob', T0);
      assertReason(await c.open(TOPIC, env, T0), 'not-for-me');
      const bob2 = session(device({ id: 'bob', epoch: 2 }));
      await introduce(bob2, a);
      assertReason(await bob2.open(TOPIC, env, T0), 'not-for-me');
      assert.ok((await b.open(TOPIC, env, T0)).ok);
    });

    it("a device's own envelope and own announcement echoed back are own-message", async () => {
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const mine = await a.sealDirect(TOPIC, enc('echo'), 'bob', T0);
      const { value, total } = await countCrypto(() => a.open(TOPIC, mine, T0));
      assertReason(value, 'own-message');
      assert.equal(total, 0);
      assertReason(await a.handleAnnouncement(a.announcementTopic(), await announcementOf(a), T0), 'own-message');
    });
  });

  describe('certificate validity and rights', () => {
    it('an expired certificate is refused at announcement time (expired)', async () => {
      const old = certify(keysFor({ id: 'alice' }), { notBefore: T0 - 10 * DAY, notAfter: T0 - 1 });
      assertReason(await session(bob).handleAnnouncement('pqc/keys/alice', await announcementOf(old), T0), 'expired');
    });

    it('a not-yet-valid certificate is refused at announcement time (not-yet-valid)', async () => {
      const early = certify(keysFor({ id: 'alice' }), { notBefore: T0 + HOUR, notAfter: T0 + DAY });
      const b = session(bob);
      assertReason(await b.handleAnnouncement('pqc/keys/alice', await announcementOf(early), T0), 'not-yet-valid');
      assert.ok((await b.handleAnnouncement('pqc/keys/alice', await announcementOf(early), T0 + HOUR)).ok, 'accepted once valid');
    });

    it("messages after the peer's certificate expired are expired, and stay expired when the clock is set back", async () => {
      const short = certify(keysFor({ id: 'alice' }), { notBefore: T0 - HOUR, notAfter: T0 + HOUR });
      const a = session(short);
      const b = session(bob);
      await pair(a, b);
      const env1 = await a.sealDirect(TOPIC, enc('1'), 'bob', T0);
      const env2 = await a.sealDirect(TOPIC, enc('2'), 'bob', T0);
      const env3 = await a.sealDirect(TOPIC, enc('3'), 'bob', T0);
      assert.ok((await b.open(TOPIC, env1, T0 + HOUR)).ok, 'the last valid millisecond');
      assertReason(await b.open(TOPIC, env2, T0 + HOUR + 1), 'expired');
      // Time floor: once the receiver saw a later time, an earlier clock does not revive the peer.
      assertReason(await b.open(TOPIC, env2, T0), 'expired', 'clock set back');
      assertReason(await b.open(TOPIC, env3, T0 - 2 * HOUR), 'expired', 'clock set before notBefore');
      // The sender's own certificate: it refuses to seal once expired (local error).
      await assert.rejects(a.sealDirect(TOPIC, enc('4'), 'bob', T0 + 2 * HOUR), /expired/);
    });

    it('a retained announcement re-delivered after its certificate expired is not reported as trusted (expired)', async () => {
      // The identical bytes are expired when first seen after expiry; a receiver that saw them
      // earlier must reach the same verdict, not "ok, unchanged".
      const short = certify(keysFor({ id: 'alice' }), { notBefore: T0 - HOUR, notAfter: T0 + HOUR });
      const payload = await announcementOf(short);
      const b = session(bob);
      assert.ok((await b.handleAnnouncement('pqc/keys/alice', payload, T0)).ok);
      assertReason(await session(bob).handleAnnouncement('pqc/keys/alice', payload, T0 + 2 * HOUR), 'expired', 'fresh receiver');
      assertReason(await b.handleAnnouncement('pqc/keys/alice', payload, T0 + 2 * HOUR), 'expired', 'receiver that trusted it before');
    });

    it("a topic outside the certificate's filters is not-authorized at the receiver (and refused by a strict sender)", async () => {
      const narrow = certify(keysFor({ id: 'alice' }), { roles: 'pub', topics: ['plant/line1/#'] });
      // A non-strict sender skips its own rights check: the receiver must enforce them.
      const rogue = session(narrow, { strict: false });
      const b = session(bob);
      await introduce(rogue, b);
      await introduce(b, rogue);
      assert.ok((await b.open(TOPIC, await rogue.sealDirect(TOPIC, enc('ok'), 'bob', T0), T0)).ok);
      for (const topic of ['plant/line2/temp', 'plant', 'plant/line1x/a', 'other/plant/line1/temp']) {
        const env = await rogue.sealDirect(topic, enc('x'), 'bob', T0);
        const { value, counts } = await countCrypto(() => b.open(topic, env, T0));
        assertReason(value, 'not-authorized', topic);
        assert.equal(counts.verify + counts.decapsulate, 0, 'rights are checked before crypto');
      }
      const strictSender = session(narrow);
      await introduce(strictSender, b);
      await assert.rejects(strictSender.sealDirect('plant/line2/temp', enc('x'), 'bob', T0), /does not allow publishing/);
    });

    it('a sub-only device publishing is not-authorized', async () => {
      const sub = certify(keysFor({ id: 'sensor-sub' }), { roles: 'sub', topics: ['plant/#'] });
      const rogue = session(sub, { strict: false });
      const b = session(bob);
      await introduce(rogue, b);
      await introduce(b, rogue);
      assertReason(await b.open(TOPIC, await rogue.sealDirect(TOPIC, enc('x'), 'bob', T0), T0), 'not-authorized');
      const strictSub = session(sub);
      await introduce(strictSub, b);
      await assert.rejects(strictSub.sealDirect(TOPIC, enc('x'), 'bob', T0), /does not allow publishing/);
    });

    it("a '#' right does not grant $-topics", async () => {
      const everything = certify(keysFor({ id: 'alice' }), { topics: ['#'] });
      const rogue = session(everything, { strict: false });
      const b = session(bob, { strict: true });
      await introduce(rogue, b);
      await introduce(b, rogue);
      assertReason(await b.open('$SYS/broker', await rogue.sealDirect('$SYS/broker', enc('x'), 'bob', T0), T0), 'not-authorized');
    });

    it('a sender refuses a recipient whose certificate has expired (local error), as receivers refuse expired senders', async () => {
      const shortCarol = certify(keysFor({ id: 'carol' }), { notBefore: T0 - HOUR, notAfter: T0 + HOUR });
      const a = session(alice);
      await introduce(a, session(shortCarol), T0);
      assert.ok((await a.sealDirect(TOPIC, enc('in time'), 'carol', T0 + HOUR)).length > 0);
      await assert.rejects(a.sealDirect(TOPIC, enc('too late'), 'carol', T0 + 2 * HOUR), /expired/);
    });

    it('a sender refuses a recipient whose certificate does not allow reading the topic (local error)', async () => {
      const pubOnly = session(certify(keysFor({ id: 'carol' }), { roles: 'pub', topics: ['plant/#'] }));
      const a = session(alice);
      await introduce(a, pubOnly);
      await assert.rejects(a.sealDirect(TOPIC, enc('x'), 'carol', T0), /not authorized .* to read/);
      await assert.rejects(a.sealDirect(TOPIC, enc('x'), 'nobody', T0), /no trusted key/);
      await assert.rejects(a.sealDirect('plant/+/x', enc('x'), 'carol', T0), /invalid topic/);
    });
  });

  describe('other rejections', () => {
    it('a timestamp outside maxClockSkewMs is stale; the check is off by default', async () => {
      // Sessions keep a time floor, so every case gets its own sender and receiver.
      const skewed = async (sealAt: number, openAt: number, maxClockSkewMs: number): Promise<boolean> => {
        const b = session(bob, { limits: { maxClockSkewMs } });
        await b.handleAnnouncement('pqc/keys/alice', await announcementOf(alice), Math.min(sealAt, openAt));
        const a = session(alice);
        assert.ok((await a.handleAnnouncement('pqc/keys/bob', await announcementOf(bob), sealAt)).ok);
        const r = await b.open(TOPIC, await a.sealDirect(TOPIC, enc('t'), 'bob', sealAt), openAt);
        if (!r.ok) assert.equal(r.reason, 'stale');
        return r.ok;
      };
      assert.equal(await skewed(T0, T0 + 60_001, 60_000), false, 'late by 60.001 s');
      assert.equal(await skewed(T0 + 60_001, T0, 60_000), false, 'early by 60.001 s');
      assert.equal(await skewed(T0, T0 + 60_000, 60_000), true, 'late by exactly the skew');
      assert.equal(await skewed(T0 + 60_000, T0, 60_000), true, 'early by exactly the skew');
      assert.equal(await skewed(T0 - 30 * DAY, T0, 0), true, 'off by default: a month-old timestamp is accepted');
    });

    it('a payload that is not bytes, or an invalid topic, is bad-field', async () => {
      const b = session(bob);
      for (const p of ['text', 42, null, undefined, [1, 2, 3]]) {
        assertReason(await b.open(TOPIC, p as unknown as Uint8Array, T0), 'bad-field');
        assertReason(await b.handleAnnouncement('pqc/keys/alice', p as unknown as Uint8Array, T0), 'bad-field');
      }
      for (const t of ['', 'plant/+', 'plant/#', 'a\u0000b', 'x'.repeat(1025)]) assertReason(await b.open(t, new Uint8Array(10), T0), 'bad-field', JSON.stringify(t));
    });

    it('announcements outside the keys topic prefix are topic-mismatch; the prefix is configurable', async () => {
      const b = session(bob);
      const payload = await announcementOf(alice);
      for (const t of ['pqc/key/alice', 'pqc/keys', 'other/alice', 'pqc/keys/alice/x']) assertReason(await b.handleAnnouncement(t, payload, T0), 'topic-mismatch', t);
      const custom = session(bob, { keysTopicPrefix: 'site1/keys/' });
      assert.equal(custom.announcementTopic(), 'site1/keys/bob');
      assert.equal(custom.announcementFilter(), 'site1/keys/+');
      assertReason(await custom.handleAnnouncement('pqc/keys/alice', payload, T0), 'topic-mismatch');
      assert.ok((await custom.handleAnnouncement('site1/keys/alice', payload, T0)).ok);
      for (const bad of ['pqc/keys', 'pqc/+/', '#/', '']) assert.throws(() => session(bob, { keysTopicPrefix: bad }), /keys topic prefix/, bad);
    });

    it('300 seeded random payloads to open() and handleAnnouncement() are refused with a known reason, never thrown', async () => {
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const env = await a.sealDirect(TOPIC, enc('x'), 'bob', T0);
      const ann = await announcementOf(alice);
      const rand = prng(0x5e55);
      for (let i = 0; i < 300; i++) {
        const base = i % 2 ? env : ann;
        const input = randomBytes(rand, Math.floor(rand() * 2 * base.length));
        // Keep a valid prefix of up to half the real structure in some of them.
        if (i % 3 === 0) input.set(base.subarray(0, Math.min(input.length, Math.floor((rand() * base.length) / 2))), 0);
        const r1 = await b.open(TOPIC, input, T0);
        const r2 = await b.handleAnnouncement('pqc/keys/alice', input, T0);
        for (const r of [r1, r2]) {
          assert.equal(r.ok, false, `random #${i} accepted`);
          if (!r.ok) assert.ok(REASON_CODES.includes(r.reason));
        }
      }
      assert.deepEqual(b.listPeers().map((p) => p.deviceId), ['alice']);
      assert.ok((await b.open(TOPIC, env, T0)).ok);
    });

    it('a session reports verdict fields for an accepted envelope', async () => {
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const r = await b.open(TOPIC, await a.sealDirect(TOPIC, enc('hello'), 'bob', T0 + 7), T0 + 9);
      assert.ok(r.ok);
      assert.equal(dec(r.value.data), 'hello');
      assert.equal(r.value.sender, 'alice');
      assert.equal(r.value.keyEpoch, 1);
      assert.equal(r.value.keyId, Buffer.from(alice.keyId).toString('hex'));
      assert.equal(r.value.timestamp, T0 + 7);
      assert.equal(r.value.suite, 'ML-KEM-768/ML-DSA-44/AES-256-GCM');
      assert.ok(b instanceof SecureSession);
    });
  });
});
