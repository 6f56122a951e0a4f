/**
 * Verification budgets (docs/PROTOCOL.md §6.7): per-peer and global token buckets for failed
 * signature checks and decapsulations. Attack tests feed a forged-envelope flood at 10× the
 * legitimate rate together with legitimate traffic and count outcomes; time is injected (each
 * message carries its own `now`), so nothing depends on the machine's speed.
 */
import assert from 'node:assert/strict';
import type { SecureSession } from '../../../lib/session/session';
import { TokenBucket, VerificationBudget, resolveBudget, DEFAULT_BUDGET } from '../../../lib/trust/budget';
import { cryptoBackend } from '../../../lib/crypto/backend';
import { randomKey } from '../../../lib/crypto/symmetric';
import { decodeDirectEnvelope, encodeEnvelope, encodeEnvelopeBlob, messageDigest } from '../../../lib/wire/envelope';
import { decodeTopicEnvelope, encodeTopicEnvelopeHeader } from '../../../lib/wire/topic-envelope';
import { REASONS } from '../../../lib/result';
import { T0, assertReason, certify, countCrypto, keysFor, pair, regionsOf, session, withU32 } from '../fixtures';
import type { IdentityBundle } from '../../../lib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const TOPIC = 'plant/line-1/flow';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A tiny budget so floods exhaust it in a few messages. */
const SMALL = {
  verify: { perPeer: { rate: 2, burst: 4 }, global: { rate: 10, burst: 20 } },
  decapsulate: { perPeer: { rate: 2, burst: 4 }, global: { rate: 10, burst: 20 } },
};

/** The same direct envelope with another sequence number: decodes, passes the replay check, fails the signature. */
function withSeq(envelope: Uint8Array, seq: bigint): Uint8Array {
  const g = regionsOf('envelope', envelope);
  let out = withU32(envelope, g.seq.start, Number(seq >> 32n));
  out = withU32(out, g.seq.start + 4, Number(seq & 0xffffffffn));
  return out;
}

function tally(results: Array<{ ok: boolean; reason?: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = r.ok ? 'accepted' : (r.reason ?? '?');
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

describe('verification budgets (docs/PROTOCOL.md §6.7)', function () {
  this.timeout(120_000);

  describe('token buckets', () => {
    it('refill at rate up to burst; time going back adds nothing', () => {
      const b = new TokenBucket({ rate: 10, burst: 3 });
      assert.equal(b.available(T0), 3);
      assert.ok(b.take(T0) && b.take(T0) && b.take(T0));
      assert.equal(b.take(T0), false);
      assert.equal(b.take(T0 + 50), false, 'half a token after 50 ms');
      assert.equal(b.take(T0 + 100), true, 'one token after 100 ms');
      assert.equal(b.take(T0 - 10_000), false, 'the clock going back refills nothing');
      assert.equal(b.available(T0 + 100_000), 3, 'never above burst');
    });

    it('a success gives its tokens back; a failure keeps them spent; settling twice changes nothing', () => {
      const budget = new VerificationBudget({ verify: { perPeer: { rate: 0, burst: 2 }, global: { rate: 0, burst: 3 } } });
      for (let i = 0; i < 100; i++) {
        const t = budget.admit('verify', 'good', T0);
        assert.ok(t, `legit check ${i}`);
        budget.settle(t, true);
      }
      const f1 = budget.admit('verify', 'bad', T0)!;
      budget.settle(f1, false);
      budget.settle(f1, true); // ignored
      const f2 = budget.admit('verify', 'bad', T0)!;
      budget.settle(f2, false);
      assert.equal(budget.admit('verify', 'bad', T0), undefined, 'peer bucket empty');
      assert.ok(budget.admit('verify', 'good', T0), 'another peer still has its own tokens (global has 1)');
      assert.equal(budget.admit('verify', 'third', T0), undefined, 'global empty (one check still running)');
      assert.deepEqual(budget.stats.failed, { verify: 2, decapsulate: 0 });
      assert.equal(budget.stats.refused.verify, 2);
    });

    it('checks still running hold their token: a burst arriving at once is bounded', () => {
      const budget = new VerificationBudget({ verify: { perPeer: { rate: 0, burst: 5 }, global: { rate: 0, burst: 100 } } });
      const admitted = Array.from({ length: 50 }, () => budget.admit('verify', 'x', T0)).filter(Boolean);
      assert.equal(admitted.length, 5);
    });

    it('tracks a bounded number of peers, forgetting full buckets first', () => {
      const budget = new VerificationBudget({ maxTrackedPeers: 2, verify: { perPeer: { rate: 0, burst: 1 }, global: { rate: 0, burst: 100 } } });
      budget.settle(budget.admit('verify', 'drained', T0)!, false);
      for (const p of ['a', 'b', 'c', 'd']) budget.settle(budget.admit('verify', p, T0)!, true);
      assert.equal(budget.admit('verify', 'drained', T0), undefined, 'the drained bucket was kept');
    });

    it('defaults and validation', () => {
      assert.deepEqual(resolveBudget(), DEFAULT_BUDGET);
      assert.equal(resolveBudget({ verify: { perPeer: { burst: 9 } } }).verify.perPeer.burst, 9);
      for (const bad of [{ verify: { perPeer: { burst: 0 } } }, { verify: { global: { rate: -1 } } }, { maxTrackedPeers: 0 }, { decapsulate: { perPeer: { burst: 1.5 } } }]) {
        assert.throws(() => resolveBudget(bad), JSON.stringify(bad));
      }
    });

    it('docs/PROTOCOL.md §6.7 states the default buckets and §8 the reason', () => {
      const doc = readFileSync(join(__dirname, '..', '..', '..', '..', 'docs', 'PROTOCOL.md'), 'utf8');
      const d = DEFAULT_BUDGET;
      assert.ok(doc.includes(`| signature checks, per peer | ${d.verify.perPeer.burst} | ${d.verify.perPeer.rate} |`));
      assert.ok(doc.includes(`| signature checks, global | ${d.verify.global.burst} | ${d.verify.global.rate} |`));
      assert.ok(doc.includes(`| decapsulations, per peer | ${d.decapsulate.perPeer.burst} | ${d.decapsulate.perPeer.rate} |`));
      assert.ok(doc.includes(`| decapsulations, global | ${d.decapsulate.global.burst} | ${d.decapsulate.global.rate} |`));
      assert.ok(doc.includes(`| \`budget\` | ${REASONS.budget} |`));
    });
  });

  describe('floods through the session', () => {
    let legitKeys: IdentityBundle;
    let legit: SecureSession;
    let mallory: SecureSession;
    let peer: SecureSession;

    before(() => {
      legitKeys = certify(keysFor({ id: 'bb-legit' }), { roles: 'pub', topics: ['plant/#'] });
      legit = session(legitKeys, { batch: false });
      mallory = session(certify(keysFor({ id: 'bb-mallory' }), { roles: 'pub', topics: ['plant/#'] }), { batch: false });
      peer = session(certify(keysFor({ id: 'bb-peer' }), { roles: 'pub', topics: ['plant/#'] }), { batch: false });
    });

    async function receiver(id: string, budget: typeof SMALL | false = SMALL): Promise<SecureSession> {
      const r = session(certify(keysFor({ id }), { roles: 'sub', topics: ['plant/#'] }), { budget });
      for (const s of [legit, mallory, peer]) await pair(s, r);
      return r;
    }

    it('I5 topic mode: forgeries at 10× the legitimate rate under the publisher\'s own id cost no signature check; every legitimate message is accepted', async () => {
      const r = await receiver('bb-rx-topic');
      // 20 legitimate messages at 10 per second, each with its own signature (no batching: worst case).
      const sealed = [];
      for (let i = 0; i < 20; i++) sealed.push(await legit.sealTopic(TOPIC, enc(`legit ${i}`), T0 + i * 100));
      const km = sealed.find((s) => s.keyMessage)!.keyMessage!;
      assert.ok((await r.handleKeyMessage(km.topic, km.payload, T0)).ok);
      const d0 = decodeTopicEnvelope(sealed[0].envelope);
      assert.ok(d0.ok);
      const sigLength = d0.value.auth.signature.length;
      const forged = (seq: bigint, at: number): Uint8Array => {
        // A well-formed envelope naming the real publisher, its key and a fresh sequence number:
        // all it lacks is the topic key (random ciphertext) and the private key (random signature).
        const header = encodeTopicEnvelopeHeader({
          senderId: 'bb-legit', senderKeyEpoch: 1, senderKeyId: legitKeys.keyId, sigAlgorithm: legitKeys.sigAlgorithm,
          keySerial: d0.value.keySerial, seq, timestamp: BigInt(at),
        });
        return encodeEnvelope(encodeEnvelopeBlob(header, randomKey().subarray(0, 12), randomKey()), { kind: 'signature', signature: new Uint8Array(sigLength).fill(3) });
      };
      const legitResults = [];
      const floodResults = [];
      const before = r.throughputStats.verifications;
      let seq = d0.value.seq + 1_000_000n;
      for (let i = 0; i < 20; i++) {
        const at = T0 + i * 100;
        for (let k = 0; k < 10; k++) floodResults.push(await r.open(TOPIC, forged(seq++, at), at));
        legitResults.push(await r.open(TOPIC, sealed[i].envelope, at));
      }
      assert.deepEqual(tally(legitResults), { accepted: 20 });
      assert.deepEqual(tally(floodResults), { 'decrypt-failed': 200 });
      assert.equal(r.throughputStats.verifications - before, 20, 'only the legitimate messages were checked');
      assert.equal(r.throughputStats.budget!.refused.verify, 0);
    });

    it('I5 direct mode: a trusted peer flooding bad signatures at 10× the legitimate rate gets at most burst + rate × time checks; the legitimate sender loses nothing', async () => {
      const r = await receiver('bb-rx-direct');
      const template = await mallory.sealDirect(TOPIC, enc('spam'), 'bb-rx-direct', T0);
      const tSeq = (() => { const d = decodeDirectEnvelope(template); assert.ok(d.ok); return d.value.seq; })();
      const legitEnvs = [];
      for (let i = 0; i < 20; i++) legitEnvs.push(await legit.sealDirect(TOPIC, enc(`l${i}`), 'bb-rx-direct', T0 + i * 100));
      const legitResults = [];
      const floodResults = [];
      let seq = tSeq + 1n;
      for (let i = 0; i < 20; i++) {
        const at = T0 + i * 100;
        for (let k = 0; k < 10; k++) floodResults.push(await r.open(TOPIC, withSeq(template, seq++), at));
        legitResults.push(await r.open(TOPIC, legitEnvs[i], at));
      }
      assert.deepEqual(tally(legitResults), { accepted: 20 });
      const t = tally(floodResults);
      const elapsedS = 1.9;
      const allowed = SMALL.verify.perPeer.burst + Math.floor(SMALL.verify.perPeer.rate * elapsedS);
      assert.ok(t['bad-signature'] <= allowed, `mallory got ${t['bad-signature']} checks, at most ${allowed} allowed`);
      assert.ok(t['bad-signature'] >= SMALL.verify.perPeer.burst);
      assert.equal(t['bad-signature'] + t.budget, 200, JSON.stringify(t));
      // Mallory's genuine messages wait for its bucket to refill; the receiver is not stuck.
      const genuine = await mallory.sealDirect(TOPIC, enc('ok'), 'bb-rx-direct', T0 + 2000);
      assertReason(await r.open(TOPIC, genuine, T0 + 1900), 'budget');
      assert.ok((await r.open(TOPIC, genuine, T0 + 10_000)).ok, 'accepted once the bucket refilled');
    });

    it('I5 direct mode, the limitation: forgeries under a sender\'s own id exhaust only that sender\'s bucket; other peers are unaffected', async () => {
      const r = await receiver('bb-rx-imp');
      const genuine = await legit.sealDirect(TOPIC, enc('real'), 'bb-rx-imp', T0);
      const d = decodeDirectEnvelope(genuine);
      assert.ok(d.ok);
      for (let k = 0; k < 10; k++) await r.open(TOPIC, withSeq(genuine, d.value.seq + 1000n + BigInt(k)), T0);
      // The legitimate sender's next envelope needs a check its bucket cannot pay for now.
      assertReason(await r.open(TOPIC, genuine, T0), 'budget');
      // Another peer keeps its own bucket.
      assert.ok((await r.open(TOPIC, await peer.sealDirect(TOPIC, enc('p'), 'bb-rx-imp', T0), T0)).ok);
      // Time refills the bucket.
      assert.ok((await r.open(TOPIC, genuine, T0 + 1000)).ok);
    });

    it('I5 the global bucket bounds failed checks over all claimed peers together', async () => {
      const r = session(certify(keysFor({ id: 'bb-rx-global' }), { roles: 'sub', topics: ['plant/#'] }), {
        budget: { verify: { perPeer: { rate: 0, burst: 4 }, global: { rate: 0, burst: 6 } } },
      });
      for (const s of [legit, mallory, peer]) await pair(s, r);
      let checks = 0;
      for (const s of [mallory, peer, legit]) {
        const e = await s.sealDirect(TOPIC, enc('x'), 'bb-rx-global', T0);
        const seq = (decodeDirectEnvelope(e) as { value: { seq: bigint } }).value.seq;
        for (let k = 1; k <= 5; k++) {
          const res = await r.open(TOPIC, withSeq(e, seq + BigInt(k)), T0);
          if (!res.ok && res.reason === 'bad-signature') checks++;
        }
      }
      assert.equal(checks, 6);
    });

    it('I5 decapsulation budget: validly signed envelopes whose capsule does not open are bounded per peer', async () => {
      const r = await receiver('bb-rx-decaps');
      const mk = certify(keysFor({ id: 'bb-mallory' }), { roles: 'pub', topics: ['plant/#'] });
      const results = [];
      const template = await mallory.sealDirect(TOPIC, enc('x'), 'bb-rx-decaps', T0);
      const d = decodeDirectEnvelope(template);
      assert.ok(d.ok);
      const g = regionsOf('envelope', template);
      for (let k = 1; k <= 8; k++) {
        // Another sequence number and a corrupted capsule, then a real signature by Mallory's key.
        const blob = Uint8Array.from(d.value.blob);
        const seqd = withSeq(template, d.value.seq + BigInt(k)).subarray(0, blob.length);
        blob.set(seqd);
        blob[g.capsule.content + 5] ^= 0x40;
        const sig = cryptoBackend().sign(mk.sigAlgorithm, messageDigest('bb-mallory', TOPIC, blob), mk.sigSecretKey);
        results.push(await r.open(TOPIC, encodeEnvelope(blob, { kind: 'signature', signature: sig }), T0));
      }
      assert.deepEqual(tally(results), { 'decrypt-failed': SMALL.decapsulate.perPeer.burst, budget: 8 - SMALL.decapsulate.perPeer.burst });
      assert.ok((await r.open(TOPIC, await legit.sealDirect(TOPIC, enc('fine'), 'bb-rx-decaps', T0), T0)).ok);
    });

    it('legitimate traffic never drains a bucket, however small; budget: false turns budgets off', async () => {
      const r = session(certify(keysFor({ id: 'bb-rx-tiny' }), { roles: 'sub', topics: ['plant/#'] }), {
        budget: { verify: { perPeer: { rate: 0, burst: 1 }, global: { rate: 0, burst: 1 } }, decapsulate: { perPeer: { rate: 0, burst: 1 }, global: { rate: 0, burst: 1 } } },
      });
      await pair(legit, r);
      for (let i = 0; i < 30; i++) assert.ok((await r.open(TOPIC, await legit.sealDirect(TOPIC, enc(`${i}`), 'bb-rx-tiny', T0), T0)).ok, `#${i}`);
      const off = await receiver('bb-rx-off', false);
      assert.equal(off.throughputStats.budget, undefined);
      const e = await mallory.sealDirect(TOPIC, enc('x'), 'bb-rx-off', T0);
      const seq = (decodeDirectEnvelope(e) as { value: { seq: bigint } }).value.seq;
      for (let k = 1; k <= 10; k++) assertReason(await off.open(TOPIC, withSeq(e, seq + BigInt(k)), T0), 'bad-signature');
    });

    it('I5 forged announcements spend the claimed id\'s and the global signature budget; cheap refusals spend nothing; honest peers recover', async () => {
      const r = session(certify(keysFor({ id: 'bb-rx-ann' }), { roles: 'sub', topics: ['plant/#'] }), { budget: SMALL });
      const forge = async (s: SecureSession): Promise<Uint8Array> => {
        const a = Uint8Array.from(await s.buildAnnouncement(T0));
        a[a.length - 5] ^= 1; // inside the announcement signature: the certificate still verifies
        return a;
      };
      const spoofed = session(certify(keysFor({ id: 'bb-spoof' }), { roles: 'pub', topics: ['plant/#'] }));
      const forged = await forge(spoofed);
      const reasons: string[] = [];
      const { counts } = await countCrypto(async () => {
        for (let i = 0; i < 10; i++) {
          const res = await r.handleAnnouncement(spoofed.announcementTopic(), forged, T0);
          reasons.push(res.ok ? 'accepted' : res.reason);
        }
      });
      assert.deepEqual(tally(reasons.map((x) => (x === 'accepted' ? { ok: true } : { ok: false, reason: x }))), { 'bad-signature': 4, budget: 6 });
      assert.ok(counts.verify <= 8, `two checks (certificate, signature) per admitted forgery, none after: ${counts.verify}`);
      // Cheap refusals cost no token: no certificate in strict mode, undecodable bytes.
      const bare = session(keysFor({ id: 'bb-bare' }), { strict: false });
      for (let i = 0; i < 10; i++) {
        assertReason(await r.handleAnnouncement(bare.announcementTopic(), await bare.buildAnnouncement(T0), T0), 'no-certificate');
        assertReason(await r.handleAnnouncement('pqc/keys/bb-junk', Uint8Array.of(1, 2, 3), T0), ['bad-magic', 'truncated']);
      }
      // Many claimed ids: the global bucket (burst 20, 4 already spent) bounds them together.
      const many = [];
      for (let i = 0; i < 20; i++) many.push(session(certify(keysFor({ id: `bb-many-${i}` }), { roles: 'pub', topics: ['plant/#'] })));
      const spread: string[] = [];
      for (const s of many) {
        const res = await r.handleAnnouncement(s.announcementTopic(), await forge(s), T0);
        spread.push(res.ok ? 'accepted' : res.reason);
      }
      assert.deepEqual(tally(spread.map((x) => (x === 'accepted' ? { ok: true } : { ok: false, reason: x }))), { 'bad-signature': 16, budget: 4 });
      // A second later the global bucket has refilled (rate 10/s): an honest peer is trusted.
      const honest = session(certify(keysFor({ id: 'bb-honest' }), { roles: 'pub', topics: ['plant/#'] }));
      const later = await r.handleAnnouncement(honest.announcementTopic(), await honest.buildAnnouncement(T0 + 1000), T0 + 1000);
      assert.ok(later.ok, later.ok ? '' : later.reason);
    });

    it('forged key messages spend the publisher\'s signature budget, not other publishers\'', async () => {
      const r = await receiver('bb-rx-keys');
      const pub = mallory;
      const reasons = [];
      for (let k = 0; k < 8; k++) {
        const s = await pub.sealTopic(`plant/k/${k}`, enc('x'), T0, { kind: 'ephemeral' });
        const km = Uint8Array.from(s.keyMessage!.payload);
        km[km.length - 10] ^= 1; // inside the signature
        const res = await r.handleKeyMessage(s.keyMessage!.topic, km, T0);
        reasons.push(res.ok ? 'accepted' : res.reason);
      }
      assert.deepEqual(tally(reasons.map((x) => (x === 'accepted' ? { ok: true } : { ok: false, reason: x }))), { 'bad-signature': 4, budget: 4 });
      const l = await legit.sealTopic('plant/k/legit', enc('y'), T0);
      assert.ok((await r.handleKeyMessage(l.keyMessage!.topic, l.keyMessage!.payload, T0)).ok);
    });
  });
});
