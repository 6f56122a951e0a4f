/**
 * Amortized signing (docs/PROTOCOL.md §2.7 kind 0x02, §4.7): the Merkle tree, the trailer codec,
 * the batch signer's closing rules, and attacks on batch envelopes through the session — path
 * swapped, index lied, root reused on another topic, signature of one batch on another,
 * truncated path, cache poisoning.
 */
import assert from 'node:assert/strict';
import type { SecureSession } from '../../../lib/session/session';
import { BatchSigner, VerifiedRoots, resolveBatchOptions, type BatchScheduler } from '../../../lib/session/batch';
import { batchLeaf, batchNode, batchRootDigest, batchRootFromPath, buildBatchTree, climbBatchPath, type NodeRange } from '../../../lib/session/batch-tree';
import { ok, fail } from '../../../lib/result';
import { AUTH_KINDS, MAX_BATCH_LEAVES, authBytes, batchPathLength, envelopeAuth, type EnvelopeAuth } from '../../../lib/wire/auth';
import { decodeAll, encode } from '../../../lib/wire/fields';
import { decodeDirectEnvelope, encodeEnvelope } from '../../../lib/wire/envelope';
import { decodeTopicEnvelope } from '../../../lib/wire/topic-envelope';
import { sha256 } from '../../../lib/crypto/symmetric';
import { T0, assertReason, assertRejected, certify, countCrypto, device, flipBit, introduce, keysFor, pair, session } from '../fixtures';

const TOPIC = 'plant/line-1/temperature';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const digest = (i: number): Uint8Array => sha256(enc(`message ${i}`));

/** Timers that fire only when the test says so. */
function manualScheduler() {
  const soon: Array<() => void> = [];
  const after: Array<() => void> = [];
  const scheduler: BatchScheduler = {
    soon(fn) {
      soon.push(fn);
      return () => {
        const i = soon.indexOf(fn);
        if (i >= 0) soon.splice(i, 1);
      };
    },
    after(_ms, fn) {
      after.push(fn);
      return () => {
        const i = after.indexOf(fn);
        if (i >= 0) after.splice(i, 1);
      };
    },
  };
  return {
    scheduler,
    turn(): void {
      for (const fn of soon.splice(0)) fn();
    },
    deadline(): void {
      for (const fn of after.splice(0)) fn();
    },
    get pending() {
      return soon.length + after.length;
    },
  };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Auth trailer of an envelope (direct or topic), decoded. */
function authOf(envelope: Uint8Array): EnvelopeAuth {
  const d = decodeTopicEnvelope(envelope);
  if (d.ok) return d.value.auth;
  const e = decodeDirectEnvelope(envelope);
  assert.ok(e.ok, 'envelope decodes');
  return e.value.auth;
}

/** The same envelope with another auth trailer. */
function withAuth(envelope: Uint8Array, auth: EnvelopeAuth): Uint8Array {
  const current = authOf(envelope);
  return encodeEnvelope(envelope.subarray(0, envelope.length - authBytes(current)), auth);
}

function batchAuth(envelope: Uint8Array): Extract<EnvelopeAuth, { kind: 'batch' }> {
  const a = authOf(envelope);
  assert.equal(a.kind, 'batch', 'batch-signed envelope');
  return a as Extract<EnvelopeAuth, { kind: 'batch' }>;
}

describe('batch authentication (docs/PROTOCOL.md §4.7)', function () {
  this.timeout(120_000);

  describe('the tree', () => {
    it('every leaf of every batch size 1..40 leads back to the root, through a path of the computed length', () => {
      for (let n = 1; n <= 40; n++) {
        const digests = Array.from({ length: n }, (_, i) => digest(i));
        const tree = buildBatchTree(digests);
        for (let i = 0; i < n; i++) {
          assert.equal(tree.paths[i].length, batchPathLength(i, n), `path length ${i}/${n}`);
          const root = batchRootFromPath(digests[i], i, n, tree.paths[i]);
          assert.deepEqual(root, tree.root, `leaf ${i} of ${n}`);
        }
      }
    });

    it('has the RFC 6962 shape with separate leaf and node hashing (n = 3 and n = 5 by hand)', () => {
      const d = [0, 1, 2, 3, 4].map(digest);
      const l = d.map((x, i) => batchLeaf(i, x));
      assert.deepEqual(buildBatchTree(d.slice(0, 3)).root, batchNode(batchNode(l[0], l[1]), l[2]));
      assert.deepEqual(buildBatchTree(d).root, batchNode(batchNode(batchNode(l[0], l[1]), batchNode(l[2], l[3])), l[4]));
      assert.deepEqual(buildBatchTree(d.slice(0, 1)).root, l[0]);
      assert.deepEqual(buildBatchTree(d.slice(0, 3)).paths[2], [batchNode(l[0], l[1])]);
      // A leaf is not a node over the same bytes: domain separation.
      assert.notDeepEqual(batchLeaf(0, d[0]), batchNode(d[0], d[0]));
      assert.equal(batchPathLength(0, 16), 4);
      assert.equal(batchPathLength(4, 5), 1);
      assert.equal(batchPathLength(0, 255), 8);
    });

    it('a wrong digest, index, count, sibling order or path length does not lead to the root', () => {
      const d = Array.from({ length: 16 }, (_, i) => digest(i));
      const tree = buildBatchTree(d);
      assert.notDeepEqual(batchRootFromPath(d[4], 5, 16, tree.paths[4]), tree.root, 'index lied');
      assert.notDeepEqual(batchRootFromPath(d[4], 4, 16, tree.paths[5]), tree.root, 'path of another leaf');
      assert.notDeepEqual(batchRootFromPath(d[5], 4, 16, tree.paths[4]), tree.root, 'digest of another leaf');
      assert.notDeepEqual(batchRootFromPath(d[4], 4, 16, [...tree.paths[4]].reverse()), tree.root, 'path reversed');
      assert.equal(batchRootFromPath(d[4], 4, 16, tree.paths[4].slice(1)), undefined, 'short path');
      assert.equal(batchRootFromPath(d[4], 4, 0, []), undefined);
      assert.equal(batchRootFromPath(d[4], 16, 16, tree.paths[4]), undefined);
      // Truncated path with a count that fits it: an inner node is not a leaf.
      const inner = batchNode(batchLeaf(4, d[4]), batchLeaf(5, d[5]));
      assert.notDeepEqual(batchRootFromPath(inner, 2, 8, tree.paths[4].slice(1)), tree.root);
    });

    it('a climb that meets the known tree stops there; any changed path hash or digest climbs on to another root', () => {
      for (const n of [2, 3, 5, 8, 13, 16, 100, 255]) {
        const d = Array.from({ length: n }, (_, i) => digest(1000 * n + i));
        const tree = buildBatchTree(d);
        const known = new Map<NodeRange, Uint8Array>();
        const learn = (nodes: Array<[NodeRange, Uint8Array]>) => nodes.forEach(([r, h]) => known.set(r, h));
        const first = climbBatchPath(d[0], 0, n, tree.paths[0], known);
        assert.ok(first?.root, 'nothing known yet: a full climb');
        assert.deepEqual(first.root, tree.root);
        learn(first.nodes);
        let steps = 0;
        for (let i = 1; i < n; i++) {
          // Tampered copies first, while leaf i is still unknown, then the genuine one.
          for (let j = 0; j < tree.paths[i].length; j++) {
            const path = tree.paths[i].map((h, k) => (k === j ? digest(-1 - k) : h));
            const c = climbBatchPath(d[i], i, n, path, known);
            assert.ok(c?.root, `n ${n} leaf ${i}: path hash ${j} replaced must not stop early`);
            assert.notDeepEqual(c.root, tree.root);
          }
          const other = climbBatchPath(digest(-7), i, n, tree.paths[i], known);
          assert.ok(other?.root, `n ${n} leaf ${i}: another digest must not stop early`);
          assert.notDeepEqual(other.root, tree.root);
          const c = climbBatchPath(d[i], i, n, tree.paths[i], known);
          assert.ok(c && c.root === undefined, `n ${n} leaf ${i}: the genuine climb meets the known tree`);
          steps += c.nodes.length / 2;
          learn(c.nodes);
        }
        // Each inner node is computed once, by the first climb through it: under two hashes a leaf.
        assert.ok(steps <= n, `n ${n}: ${steps} node hashes for ${n - 1} leaves`);
      }
    });

    it('root digest binds sender id, root and count', () => {
      const root = buildBatchTree([digest(0), digest(1)]).root;
      const base = batchRootDigest('a', root, 2);
      assert.notDeepEqual(batchRootDigest('b', root, 2), base);
      assert.notDeepEqual(batchRootDigest('a', root, 3), base);
      assert.notDeepEqual(batchRootDigest('a', sha256(root), 2), base);
    });
  });

  describe('the trailer codec (§2.7)', () => {
    const sig = new Uint8Array(655).fill(7);
    it('round-trips kind 0x02 and computes its size', () => {
      const tree = buildBatchTree(Array.from({ length: 5 }, (_, i) => digest(i)));
      for (let i = 0; i < 5; i++) {
        const auth: EnvelopeAuth = { kind: 'batch', leafIndex: i, leafCount: 5, path: tree.paths[i], signature: sig };
        const bytes = encode(envelopeAuth, auth);
        assert.equal(bytes[0], AUTH_KINDS.batch);
        assert.equal(bytes.length, authBytes(auth));
        const back = decodeAll(envelopeAuth, bytes, 10_000);
        assert.ok(back.ok);
        assert.deepEqual(back.value, auth);
      }
    });

    it('refuses count 0 and index ≥ count (bad-field), a short path (truncated), and encodes nothing inconsistent', () => {
      const tree = buildBatchTree([digest(0), digest(1), digest(2), digest(3)]);
      const good = encode(envelopeAuth, { kind: 'batch', leafIndex: 1, leafCount: 4, path: tree.paths[1], signature: sig });
      const with2 = (i: number, v: number) => { const b = Uint8Array.from(good); b[i] = v; return b; };
      assertReason(decodeAll(envelopeAuth, with2(2, 0), 10_000), 'bad-field', 'count 0');
      assertReason(decodeAll(envelopeAuth, with2(1, 4), 10_000), 'bad-field', 'index = count');
      assertReason(decodeAll(envelopeAuth, with2(1, 255), 10_000), 'bad-field', 'index 255');
      assertReason(decodeAll(envelopeAuth, good.subarray(0, 3 + 32), 10_000), 'truncated', 'path cut');
      // A larger count makes the decoder read signature bytes as path: never accepted as it was.
      const bigger = decodeAll(envelopeAuth, with2(2, 255), 10_000);
      assert.ok(!bigger.ok || (bigger.value.kind === 'batch' && bigger.value.signature.length !== sig.length));
      assert.throws(() => encode(envelopeAuth, { kind: 'batch', leafIndex: 1, leafCount: 4, path: tree.paths[1].slice(1), signature: sig }));
      assert.throws(() => encode(envelopeAuth, { kind: 'batch', leafIndex: 4, leafCount: 4, path: [], signature: sig }));
      assert.throws(() => encode(envelopeAuth, { kind: 'batch', leafIndex: 0, leafCount: MAX_BATCH_LEAVES + 1, path: [], signature: sig }));
    });
  });

  describe('the batch signer', () => {
    function signer(maxLeaves: number, maxDelayMs = 2) {
      const timers = manualScheduler();
      const signed: Uint8Array[] = [];
      const s = new BatchSigner('dev', async (d) => {
        signed.push(d);
        return sha256(d);
      }, { maxLeaves, maxDelayMs }, timers.scheduler);
      return { s, timers, signed };
    }

    it('closes by size: the 16th envelope closes the batch at once, without a timer', async () => {
      const { s, timers, signed } = signer(16);
      const auths = Promise.all(Array.from({ length: 16 }, (_, i) => s.authenticate(digest(i))));
      assert.equal(timers.pending, 0, 'timers cancelled');
      const got = await auths;
      assert.equal(signed.length, 1);
      got.forEach((a, i) => {
        assert.equal(a.kind, 'batch');
        if (a.kind !== 'batch') return;
        assert.equal(a.leafIndex, i);
        assert.equal(a.leafCount, 16);
        assert.deepEqual(batchRootDigest('dev', batchRootFromPath(digest(i), i, 16, a.path)!, 16), signed[0]);
      });
      assert.deepEqual(s.stats, { signatures: 1, envelopes: 16, largest: 16 });
    });

    it('a lone envelope waits for no timer: one quiet turn of the event loop closes it, signed alone (kind 0x01)', async () => {
      const { s, timers, signed } = signer(16, 1000);
      const auth = s.authenticate(digest(0));
      timers.turn(); // nothing joined during this turn
      const a = await auth;
      assert.equal(a.kind, 'signature');
      assert.deepEqual(signed, [digest(0)]);
      assert.equal(timers.pending, 0, 'deadline cancelled');
    });

    it('envelopes that keep joining keep the batch open for another turn, until the deadline', async () => {
      const { s, timers, signed } = signer(16, 2);
      const all: Array<Promise<EnvelopeAuth>> = [s.authenticate(digest(0))];
      all.push(s.authenticate(digest(1)));
      timers.turn(); // two arrived since the batch opened: one more turn
      all.push(s.authenticate(digest(2)));
      timers.turn(); // one more joined
      assert.equal(signed.length, 0);
      timers.deadline(); // 2 ms after the first
      const got = await Promise.all(all);
      assert.equal(signed.length, 1);
      assert.deepEqual(got.map((a) => (a.kind === 'batch' ? a.leafCount : 0)), [3, 3, 3]);
      // The next envelope opens a new batch.
      const next = s.authenticate(digest(3));
      timers.turn();
      assert.equal((await next).kind, 'signature');
    });

    it('while a signature is in progress, a batch due by turn or deadline keeps collecting and closes when it ends; size still closes at once', async () => {
      const timers = manualScheduler();
      const pending: Array<() => void> = [];
      const signed: Uint8Array[] = [];
      const s = new BatchSigner('dev', (d) => new Promise((resolve) => {
        signed.push(d);
        pending.push(() => resolve(sha256(d)));
      }), { maxLeaves: 4, maxDelayMs: 2 }, timers.scheduler);
      const first = s.authenticate(digest(0));
      timers.turn();
      assert.equal(signed.length, 1, 'idle signer: the lone envelope is signed after one quiet turn');
      const waiting = [s.authenticate(digest(1))];
      timers.turn();
      timers.deadline();
      waiting.push(s.authenticate(digest(2)));
      timers.turn();
      assert.equal(signed.length, 1, 'busy signer: the due batch waits instead of queueing a second signature');
      pending.shift()!();
      assert.equal((await first).kind, 'signature');
      await tick();
      assert.equal(signed.length, 2, 'the first signature ended: the waiting batch closed at once');
      pending.shift()!();
      assert.deepEqual((await Promise.all(waiting)).map((a) => (a.kind === 'batch' ? a.leafCount : 0)), [2, 2]);
      // Busy again: four envelopes fill the batch and close it by size without waiting.
      const third = s.authenticate(digest(3));
      timers.turn();
      const full = [4, 5, 6, 7].map((i) => s.authenticate(digest(i)));
      assert.equal(signed.length, 4, 'size closes even while a signature is in progress');
      pending.splice(0).forEach((f) => f());
      await Promise.all([third, ...full]);
      assert.deepEqual(s.stats, { signatures: 4, envelopes: 8, largest: 4 });
    });

    it('an envelope announced while still being prepared (reserve) joins the batch it was sent with; a released one holds nothing', async () => {
      const { s, timers, signed } = signer(16, 2);
      const first = s.authenticate(digest(0));
      const onItsWay = s.reserve(); // e.g. its ML-KEM encapsulation runs on a worker
      timers.turn();
      timers.deadline();
      assert.equal(signed.length, 0, 'due by turn and deadline, but a reserved envelope is on its way');
      const second = s.authenticate(digest(1), onItsWay);
      await tick();
      assert.equal(signed.length, 1, 'closed as soon as the reserved envelope joined');
      assert.deepEqual((await Promise.all([first, second])).map((a) => (a.kind === 'batch' ? a.leafCount : 0)), [2, 2]);
      onItsWay.release(); // already used: nothing happens

      // A reservation given up (its preparation failed) lets the due batch close.
      const lone = s.authenticate(digest(2));
      const failed = s.reserve();
      timers.turn();
      assert.equal(signed.length, 1);
      failed.release();
      failed.release(); // once only
      assert.equal((await lone).kind, 'signature');
      assert.equal(signed.length, 2);

      // The size rule does not wait for reservations.
      const pending = s.reserve();
      const full = Array.from({ length: 16 }, (_, i) => s.authenticate(digest(10 + i)));
      assert.equal(signed.length, 3, 'size closes at once');
      await Promise.all(full);
      pending.release();
      assert.equal(timers.pending, 0);
    });

    it('a reservation made before batching was reconfigured is given back to the signer it came from', async () => {
      const a = signer(16, 2);
      const b = signer(16, 2);
      const held = a.s.authenticate(digest(0));
      const stale = a.s.reserve();
      a.timers.turn();
      assert.equal(a.signed.length, 0);
      const other = b.s.authenticate(digest(1), stale); // the session now uses signer b
      b.timers.turn();
      assert.equal((await other).kind, 'signature', 'joins b as an ordinary envelope');
      assert.equal((await held).kind, 'signature', "a's due batch closed when the reservation came back");
      assert.equal(a.signed.length, 1);
    });

    it('a signing failure rejects every envelope of the batch, and the next batch still works', async () => {
      const timers = manualScheduler();
      let fail = true;
      const s = new BatchSigner('dev', async (d) => {
        if (fail) throw new Error('provider unavailable');
        return d;
      }, { maxLeaves: 2, maxDelayMs: 2 }, timers.scheduler);
      const r = await Promise.allSettled([s.authenticate(digest(0)), s.authenticate(digest(1))]);
      assert.deepEqual(r.map((x) => x.status), ['rejected', 'rejected']);
      fail = false;
      const ok2 = await Promise.all([s.authenticate(digest(2)), s.authenticate(digest(3))]);
      assert.equal(ok2[0].kind, 'batch');
    });

    it('options: defaults 16 / 2 ms; false or 1 leaf is off; nonsense throws', () => {
      assert.deepEqual(resolveBatchOptions(undefined), { maxLeaves: 16, maxDelayMs: 2 });
      assert.equal(resolveBatchOptions(false), undefined);
      assert.equal(resolveBatchOptions({ maxLeaves: 1 }), undefined);
      assert.deepEqual(resolveBatchOptions({ maxLeaves: 8 }), { maxLeaves: 8, maxDelayMs: 2 });
      for (const bad of [{ maxLeaves: 0 }, { maxLeaves: 256 }, { maxLeaves: 2.5 }, { maxDelayMs: -1 }, { maxDelayMs: Number.NaN }]) {
        assert.throws(() => resolveBatchOptions(bad), JSON.stringify(bad));
      }
    });
  });

  describe('the verified-roots cache', () => {
    const key = new Uint8Array(16).fill(1);
    it('only a verified signature enters; a hit needs the same key, root digest and signature; bounded, LRU', async () => {
      const roots = new VerifiedRoots(2);
      let calls = 0;
      const good = async () => (calls++, ok(true as const));
      const bad = async () => (calls++, fail<true>('bad-signature'));
      const r1 = sha256(enc('r1'));
      const r2 = sha256(enc('r2'));
      const r3 = sha256(enc('r3'));
      const s = enc('sig');
      assert.equal((await roots.check(key, r1, s, bad)).ok, false);
      assert.equal((await roots.check(key, r1, s, bad)).ok, false, 'a failed root is not remembered');
      assert.equal(calls, 2);
      assert.ok((await roots.check(key, r1, s, good)).ok);
      assert.ok((await roots.check(key, r1, s, bad)).ok, 'hit: the check does not run');
      assert.equal(calls, 3);
      assert.equal((await roots.check(key, r1, enc('other sig'), bad)).ok, false, 'another signature is not a hit');
      assert.equal((await roots.check(new Uint8Array(16), r1, s, bad)).ok, false, 'another key is not a hit');
      await roots.check(key, r2, s, good);
      await roots.check(key, r1, s, bad); // r1 becomes most recent
      await roots.check(key, r3, s, good); // evicts r2
      assert.equal(roots.size, 2);
      const before = calls;
      assert.ok((await roots.check(key, r1, s, bad)).ok);
      assert.equal((await roots.check(key, r2, s, bad)).ok, false, 'r2 was evicted');
      assert.equal(calls, before + 1);
    });

    it('concurrent envelopes of one batch share a single verification', async () => {
      const roots = new VerifiedRoots();
      let calls = 0;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow = async () => {
        calls++;
        await gate;
        return ok(true as const);
      };
      const root = sha256(enc('shared'));
      const all = Promise.all(Array.from({ length: 8 }, () => roots.check(key, root, enc('s'), slow)));
      release();
      assert.ok((await all).every((r) => r.ok));
      assert.equal(calls, 1);
    });
  });

  describe('through the session', () => {
    let pub: SecureSession;
    let sub: SecureSession;
    let other: SecureSession;

    before(async () => {
      pub = session(certify(keysFor({ id: 'bt-pub' }), { roles: 'pub', topics: ['plant/#'] }));
      sub = session(certify(keysFor({ id: 'bt-sub' }), { roles: 'both', topics: ['plant/#'] }));
      other = session(certify(keysFor({ id: 'bt-sub2' }), { roles: 'sub', topics: ['plant/#'] }));
      await pair(pub, sub);
      await pair(pub, other);
    });

    /** n topic messages sealed at once; the key message (if any) delivered to the receivers. */
    async function sealBatch(n: number, topic = TOPIC, from = pub, receivers: SecureSession[] = [sub, other], label = 'm') {
      const sealed = await Promise.all(Array.from({ length: n }, (_, i) => from.sealTopic(topic, enc(`${label}${i}`), T0)));
      for (const s of sealed) {
        if (!s.keyMessage) continue;
        for (const r of receivers) await r.handleKeyMessage(s.keyMessage.topic, s.keyMessage.payload, T0);
      }
      return sealed.map((s) => s.envelope);
    }

    it('16 messages sealed together cost one signature; the receiver checks one signature for all 16', async () => {
      const fresh = session(certify(keysFor({ id: 'bt-pub-count' }), { roles: 'pub', topics: ['plant/#'] }));
      const r = session(certify(keysFor({ id: 'bt-sub-count' }), { roles: 'sub', topics: ['plant/#'] }));
      await pair(fresh, r);
      const first = await fresh.sealTopic(TOPIC, enc('key'), T0); // creates the key (key message signed)
      await r.handleKeyMessage(first.keyMessage!.topic, first.keyMessage!.payload, T0);
      assert.ok((await r.open(TOPIC, first.envelope, T0)).ok);
      const { value: envelopes, counts } = await countCrypto(() => Promise.all(
        Array.from({ length: 16 }, (_, i) => fresh.sealTopic(TOPIC, enc(`c${i}`), T0).then((s) => s.envelope)),
      ));
      assert.equal(counts.sign, 1, 'one signature for 16 envelopes');
      envelopes.forEach((e, i) => assert.equal(batchAuth(e).leafIndex, i));
      const { value: opened, counts: rc } = await countCrypto(async () => {
        const out = [];
        for (const e of envelopes) out.push(await r.open(TOPIC, e, T0));
        return out;
      });
      assert.deepEqual(opened.map((o) => (o.ok ? dec(o.value.data) : o.reason)), envelopes.map((_, i) => `c${i}`));
      assert.equal(rc.verify, 1, 'one verification for the batch');
      assert.ok(fresh.throughputStats.batching!.largest >= 16);
      assert.ok(r.throughputStats.rootHits >= 15);
    });

    it('every envelope verifies on its own: any subset, in any order (QoS 0 loss, reordering)', async () => {
      const envelopes = await sealBatch(8);
      for (const i of [7, 5, 3, 1]) {
        const o = await sub.open(TOPIC, envelopes[i], T0);
        assert.ok(o.ok, o.ok ? '' : o.reason);
        assert.equal(dec(o.value.data), `m${i}`);
      }
      // A receiver that lost every other envelope of the batch still accepts one alone.
      const o = await other.open(TOPIC, envelopes[6], T0);
      assert.ok(o.ok, o.ok ? '' : o.reason);
    });

    it('a replayed batch envelope is a duplicate; the batch root cache does not reopen it', async () => {
      const envelopes = await sealBatch(4);
      assert.ok((await sub.open(TOPIC, envelopes[2], T0)).ok);
      assertReason(await sub.open(TOPIC, envelopes[2], T0), 'duplicate');
    });

    it('attack: path swapped between two messages of one batch is refused', async () => {
      const envelopes = await sealBatch(8);
      const a = batchAuth(envelopes[2]);
      const b = batchAuth(envelopes[5]);
      assertReason(await sub.open(TOPIC, withAuth(envelopes[2], { ...a, path: b.path }), T0), 'bad-signature', 'path of #5 on #2');
      assertReason(await sub.open(TOPIC, withAuth(envelopes[2], { ...b }), T0), 'bad-signature', 'index and path of #5 on #2');
      // The originals are untouched by those attempts.
      assert.ok((await sub.open(TOPIC, envelopes[2], T0)).ok);
      assert.ok((await sub.open(TOPIC, envelopes[5], T0)).ok);
    });

    it('attack: a lied leaf index (same path length) or leaf count is refused', async () => {
      const envelopes = await sealBatch(16);
      const a = batchAuth(envelopes[9]);
      for (const leafIndex of [8, 10, 1, 15]) {
        assertReason(await sub.open(TOPIC, withAuth(envelopes[9], { ...a, leafIndex }), T0), 'bad-signature', `index ${leafIndex}`);
      }
      // Counts 13..15 keep leaf 9's path length at 4 (same bytes on the wire): another root digest.
      for (const leafCount of [13, 14, 15]) {
        assert.equal(batchPathLength(9, leafCount), 4);
        assertReason(await sub.open(TOPIC, withAuth(envelopes[9], { ...a, leafCount }), T0), 'bad-signature', `count ${leafCount}`);
      }
      assert.ok((await sub.open(TOPIC, envelopes[9], T0)).ok);
    });

    it('attack: a batch envelope re-published on another topic is refused (I3: the leaf binds the topic)', async () => {
      const envelopes = await sealBatch(4);
      // sub holds no key for the other topic: the envelope is verified before it could wait for one.
      assertReason(await sub.open('plant/line-1/pressure', envelopes[1], T0), 'bad-signature');
      // Direct mode: the same with a root that is already verified on its own topic.
      const direct = await Promise.all([0, 1, 2].map((i) => pub.sealDirect(TOPIC, enc(`d${i}`), 'bt-sub', T0)));
      assert.ok((await sub.open(TOPIC, direct[0], T0)).ok, 'root verified and cached');
      assertReason(await sub.open('plant/line-1/pressure', direct[1], T0), 'bad-signature');
      assert.ok((await sub.open(TOPIC, direct[1], T0)).ok);
    });

    it('attack: the signature of one batch attached to another batch is refused, even with the first root cached', async () => {
      const first = await sealBatch(4, TOPIC, pub, [sub, other], 'x');
      const second = await sealBatch(4, TOPIC, pub, [sub, other], 'y');
      assert.ok((await sub.open(TOPIC, first[0], T0)).ok, 'first root verified and cached');
      const stolen = batchAuth(first[0]).signature;
      assertReason(await sub.open(TOPIC, withAuth(second[1], { ...batchAuth(second[1]), signature: stolen }), T0), 'bad-signature');
      // And the other way round: a cached root does not make a garbage signature acceptable.
      const garbage = Uint8Array.from(stolen).reverse();
      assertReason(await sub.open(TOPIC, withAuth(first[1], { ...batchAuth(first[1]), signature: garbage }), T0), 'bad-signature');
      assert.ok((await sub.open(TOPIC, first[1], T0)).ok);
      assert.ok((await sub.open(TOPIC, second[1], T0)).ok);
    });

    it('attack: a truncated path is refused, whether the count is left or lowered to fit', async () => {
      const envelopes = await sealBatch(16);
      const a = batchAuth(envelopes[4]);
      const blob = envelopes[4].subarray(0, envelopes[4].length - authBytes(a));
      // Drop the top hash but keep the count: the trailer no longer parses as it should.
      const raw = encode(envelopeAuth, a);
      const cut = new Uint8Array(blob.length + raw.length - 32);
      cut.set(blob, 0);
      cut.set(raw.subarray(0, 3 + 32 * 3), blob.length);
      cut.set(raw.subarray(3 + 32 * 4), blob.length + 3 + 32 * 3);
      assertRejected(await sub.open(TOPIC, cut, T0), 'path cut, count 16');
      // Lower the count to 8 so three hashes fit: leaf 4 of 8 has another root (and root digest).
      assertReason(await sub.open(TOPIC, withAuth(envelopes[4], { ...a, leafCount: 8, path: a.path.slice(0, 3) }), T0), 'bad-signature');
      assert.ok((await sub.open(TOPIC, envelopes[4], T0)).ok);
    });

    it('attack: cache poisoning — a forged tree with a plausible path never enters the cache, and costs a check every time', async () => {
      const envelopes = await sealBatch(4, TOPIC, pub, [sub, other], 'p');
      assert.ok((await sub.open(TOPIC, envelopes[0], T0)).ok);
      const real = batchAuth(envelopes[0]);
      // The attacker builds its own tree whose leaf 1 is the real envelope #1 (its real message
      // digest), with invented siblings, and attaches the sender's real batch signature.
      const forgedPath = real.path.map((h) => sha256(h));
      const forged = withAuth(envelopes[1], { kind: 'batch', leafIndex: 1, leafCount: 4, path: forgedPath, signature: real.signature });
      const before = sub.throughputStats.verifications;
      for (let i = 0; i < 3; i++) assertReason(await sub.open(TOPIC, forged, T0), 'bad-signature', `attempt ${i}`);
      assert.equal(sub.throughputStats.verifications, before + 3, 'each attempt is checked: nothing was cached');
      // The genuine envelope #1 is still accepted, from the genuine root.
      assert.ok((await sub.open(TOPIC, envelopes[1], T0)).ok);
    });

    it('the verdict never depends on the cache: a fresh receiver and a warm one agree on every tampered trailer byte', async () => {
      const envelopes = await sealBatch(8, TOPIC, pub, [sub, other], 't');
      assert.ok((await sub.open(TOPIC, envelopes[0], T0)).ok); // warm: root cached
      const a = batchAuth(envelopes[3]);
      const start = envelopes[3].length - authBytes(a);
      for (let o = start; o < envelopes[3].length; o += 11) {
        const t = flipBit(envelopes[3], o, o % 8);
        const warm = await sub.open(TOPIC, t, T0);
        const cold = await other.open(TOPIC, t, T0);
        assert.equal(warm.ok, false, `offset ${o} accepted`);
        assert.equal(cold.ok, false, `offset ${o} accepted by the fresh receiver`);
        if (!warm.ok && !cold.ok) assert.equal(warm.reason, cold.reason, `offset ${o}`);
      }
      assert.ok((await sub.open(TOPIC, envelopes[3], T0)).ok);
    });

    it('attack: with the batch tree known, every bit of an unseen envelope\'s trailer and blob is still refused, as without any cache', async () => {
      const warmSub = session(certify(keysFor({ id: 'bt-warm' }), { roles: 'sub', topics: ['plant/#'] }));
      // Same messages seen (same replay window), but no verified roots and no trees kept.
      const coldSub = session(certify(keysFor({ id: 'bt-cold' }), { roles: 'sub', topics: ['plant/#'] }), { verifiedRoots: 0 });
      await pair(pub, warmSub);
      await pair(pub, coldSub);
      const envelopes = await sealBatch(16, TOPIC, pub, [warmSub, coldSub], 'w');
      for (const i of [0, 1, 2, 4, 8]) {
        assert.ok((await warmSub.open(TOPIC, envelopes[i], T0)).ok, `warm-up ${i}`);
        assert.ok((await coldSub.open(TOPIC, envelopes[i], T0)).ok, `same messages for the uncached receiver ${i}`);
      }
      const target = envelopes[13];
      const checksBefore = warmSub.throughputStats.verifications;
      for (let o = 0; o < target.length; o++) {
        const t = flipBit(target, o, (o * 5) % 8);
        const warm = await warmSub.open(TOPIC, t, T0);
        const cold = await coldSub.open(TOPIC, t, T0);
        assert.equal(warm.ok, false, `offset ${o} accepted by the warm receiver`);
        assert.equal(cold.ok, false, `offset ${o} accepted by the fresh receiver`);
        if (!warm.ok && !cold.ok) assert.equal(warm.reason, cold.reason, `offset ${o}`);
      }
      assert.ok(warmSub.throughputStats.verifications > checksBefore, 'tampered trailers were checked, not taken from the tree');
      for (const i of [13, 3, 15]) assert.ok((await warmSub.open(TOPIC, envelopes[i], T0)).ok, `genuine ${i} still accepted`);
    });

    it('one batch can mix topics and direct envelopes; each verifies on its own topic only', async () => {
      const s = session(certify(keysFor({ id: 'bt-mix' }), { roles: 'pub', topics: ['plant/#'] }));
      await pair(s, sub);
      // Topic keys first (each key message has its own signature).
      for (const t of ['plant/a', 'plant/b']) {
        const k = await s.sealTopic(t, enc('key'), T0);
        await sub.handleKeyMessage(k.keyMessage!.topic, k.keyMessage!.payload, T0);
      }
      const [t1, t2, d1] = await Promise.all([
        s.sealTopic('plant/a', enc('a'), T0),
        s.sealTopic('plant/b', enc('b'), T0),
        s.sealDirect('plant/c', enc('c'), 'bt-sub', T0),
      ]);
      assert.equal(batchAuth(t1.envelope).leafCount, 3);
      assert.deepEqual(batchAuth(t2.envelope).signature, batchAuth(d1).signature);
      assertReason(await sub.open('plant/b', d1, T0), 'bad-signature');
      assert.equal(dec((await sub.open('plant/c', d1, T0) as { value: { data: Uint8Array } }).value.data), 'c');
      assert.ok((await sub.open('plant/a', t1.envelope, T0)).ok);
      assert.ok((await sub.open('plant/b', t2.envelope, T0)).ok);
    });

    it('rotating keys delivered all at once after their envelopes: keys install in arrival order, no held message is lost', async () => {
      const p = session(certify(keysFor({ id: 'bt-rot' }), { roles: 'pub', topics: ['plant/#'] }));
      const r = session(certify(keysFor({ id: 'bt-rot-sub' }), { roles: 'sub', topics: ['plant/#'] }));
      await pair(p, r);
      const sealed = await Promise.all(Array.from({ length: 6 }, (_, i) => p.sealTopic(TOPIC, enc(`r${i}`), T0, { kind: 'packets', count: 2 })));
      assert.equal(sealed.filter((x) => x.keyMessage).length, 3);
      // The broker delivers the envelopes first (held: no key yet), then the three keys together;
      // their checks may finish in any order on the worker pool.
      const opened = sealed.map((x) => r.open(TOPIC, x.envelope, T0));
      const keys = await Promise.all(sealed.filter((x) => x.keyMessage).map((x) => r.handleKeyMessage(x.keyMessage!.topic, x.keyMessage!.payload, T0)));
      assert.deepEqual(keys.map((k) => (k.ok ? 'ok' : k.reason)), ['ok', 'ok', 'ok']);
      const results = await Promise.all(opened);
      assert.deepEqual(results.map((o) => (o.ok ? dec(o.value.data) : o.reason)), ['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
      // The same key message again (retained copy) changes nothing.
      const again = sealed.find((x) => x.keyMessage)!.keyMessage!;
      assertRejected(await r.handleKeyMessage(again.topic, again.payload, T0));
    });

    it('direct mode: one message to several recipients is one batch; each recipient accepts its own envelope', async () => {
      const envs = await Promise.all(['bt-sub', 'bt-sub2'].map((r) => pub.sealDirect(TOPIC, enc('both'), r, T0)));
      assert.deepEqual(batchAuth(envs[0]).signature, batchAuth(envs[1]).signature);
      assert.ok((await sub.open(TOPIC, envs[0], T0)).ok);
      assert.ok((await other.open(TOPIC, envs[1], T0)).ok);
      assertReason(await sub.open(TOPIC, envs[1], T0), 'not-for-me');
    });

    it('batching off (batch: false): every envelope carries its own signature (kind 0x01), and receivers accept both kinds', async () => {
      const plain = session(certify(keysFor({ id: 'bt-plain' }), { roles: 'pub', topics: ['plant/#'] }), { batch: false });
      await pair(plain, sub);
      assert.equal(plain.batching, undefined);
      const sealed = await Promise.all([0, 1, 2].map((i) => plain.sealTopic(TOPIC, enc(`q${i}`), T0)));
      await sub.handleKeyMessage(sealed[0].keyMessage!.topic, sealed[0].keyMessage!.payload, T0);
      for (const s of sealed) {
        assert.equal(authOf(s.envelope).kind, 'signature');
        assert.ok((await sub.open(TOPIC, s.envelope, T0)).ok);
      }
      plain.setBatching({ maxLeaves: 4 });
      const again = await Promise.all([0, 1].map((i) => plain.sealTopic(TOPIC, enc(`r${i}`), T0)));
      assert.equal(authOf(again[0].envelope).kind, 'batch');
      for (const s of again) assert.ok((await sub.open(TOPIC, s.envelope, T0)).ok);
    });

    it('a lone message is signed alone (kind 0x01) and waits for no batch timer', async () => {
      const s = session(certify(keysFor({ id: 'bt-lone' }), { roles: 'pub', topics: ['plant/#'] }), { batch: { maxLeaves: 16, maxDelayMs: 1000 } });
      await pair(s, sub);
      const first = await s.sealTopic(TOPIC, enc('k'), T0);
      await sub.handleKeyMessage(first.keyMessage!.topic, first.keyMessage!.payload, T0);
      const started = Date.now();
      const lone = await s.sealTopic(TOPIC, enc('lone'), T0);
      assert.ok(Date.now() - started < 900, 'closed on the quiet turn, not on the 1 s deadline');
      assert.equal(authOf(lone.envelope).kind, 'signature');
      assert.ok((await sub.open(TOPIC, lone.envelope, T0)).ok);
      await tick();
    });

    it('wire size: topic mode, Falcon-512, 100-byte payload stays ≤ 1,000 bytes per envelope in batches of 8 and 16', async () => {
      const falcon = session(certify(keysFor({ id: 'bt-falcon', sig: 'Falcon-512' }), { roles: 'pub', topics: ['plant/#'] }));
      await pair(falcon, sub);
      const k = await falcon.sealTopic(TOPIC, new Uint8Array(100), T0);
      await sub.handleKeyMessage(k.keyMessage!.topic, k.keyMessage!.payload, T0);
      for (const n of [8, 16]) {
        falcon.setBatching({ maxLeaves: n });
        const sealed = await Promise.all(Array.from({ length: n }, () => falcon.sealTopic(TOPIC, new Uint8Array(100), T0)));
        const sizes = sealed.map((s) => s.envelope.length);
        assert.equal(batchAuth(sealed[0].envelope).leafCount, n);
        // Falcon signatures vary (≤ 666); the longest possible one still fits.
        const worst = Math.max(...sizes) - batchAuth(sealed[0].envelope).signature.length + 666;
        assert.ok(worst <= 1000, `batch ${n}: ${Math.max(...sizes)} bytes (${worst} with a 666-byte signature)`);
        for (const s of sealed) assert.ok((await sub.open(TOPIC, s.envelope, T0)).ok);
      }
    });
  });

  it('the receiver checks signatures of both kinds from a peer it met through a plain session (introduce)', async () => {
    const a = session(device({ id: 'bt-alice' }));
    const b = session(device({ id: 'bt-bob' }));
    await introduce(b, a);
    await introduce(a, b);
    const envs = await Promise.all([0, 1].map((i) => a.sealDirect('plant/x', enc(`${i}`), 'bt-bob', T0)));
    for (const e of envs) assert.ok((await b.open('plant/x', e, T0)).ok);
  });
});
