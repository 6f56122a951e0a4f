/**
 * Compact mode through the session (docs/PROTOCOL.md §4.8): a compact envelope is released only
 * once a verified batch manifest of its sender lists its digest; attacks on manifests and compact
 * envelopes (forged, swapped, re-routed, replayed, revoked, over budget, stale key); the wire size
 * per reading on a thin link.
 */
import assert from 'node:assert/strict';
import type { SealedTopicMessage, SecureSession } from '../../../lib/session/session';
import { ManifestBatcher, resolveCompactBatchOptions, type ManifestMessage } from '../../../lib/session/compact';
import type { BatchScheduler } from '../../../lib/session/batch';
import { SoftwareProvider } from '../../../lib/session/provider';
import { EMPTY_REVOCATIONS, issueRevocation } from '../../../lib/trust/revocation';
import { decodeBatchManifest, encodeBatchManifest, manifestDigest } from '../../../lib/wire/batch-manifest';
import { publishPacketSize } from '../../../lib/io/mqtt-connection';
import type { Result } from '../../../lib/result';
import { T0, assertReason, certify, countCrypto, flipBit, keysFor, pair, session, testCa, withByte } from '../fixtures';

const TOPIC = 'plant/line-1/temperature';
const OTHER_TOPIC = 'plant/line-1/pressure';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const tick = () => new Promise<void>((r) => setImmediate(r));

interface Publisher {
  s: SecureSession;
  manifests: ManifestMessage[];
  /** Waits until `n` manifests in all have been handed to the sink. */
  manifestsSoFar(n: number): Promise<ManifestMessage[]>;
  /**
   * Waits until the manifests handed over so far list `envelopes` envelopes in all, and returns
   * them: batches close on a quiet turn too (§4.7), so a test must not assume how many there are.
   */
  covering(envelopes: number): Promise<ManifestMessage[]>;
}

function compactPublisher(id: string, opts: Parameters<typeof session>[1] = {}, sig?: 'Falcon-512'): Publisher {
  const s = session(certify(keysFor({ id, sig }), { roles: 'pub', topics: ['plant/#'] }), opts);
  const manifests: ManifestMessage[] = [];
  s.setManifestSink({ manifest: (m) => manifests.push(m), failed: (e) => assert.fail(`manifest signing failed: ${String(e)}`) });
  return {
    s,
    manifests,
    async manifestsSoFar(n) {
      for (let i = 0; i < 2000 && manifests.length < n; i++) await new Promise((r) => setTimeout(r, 2));
      assert.ok(manifests.length >= n, `expected ${n} manifests, got ${manifests.length}`);
      return manifests.slice(0, n);
    },
    async covering(envelopes) {
      const listed = () => manifests.reduce((sum, m) => sum + m.count, 0);
      for (let i = 0; i < 2000 && listed() < envelopes; i++) await new Promise((r) => setTimeout(r, 2));
      assert.equal(listed(), envelopes, 'envelopes listed by manifests');
      return [...manifests];
    },
  };
}

function subscriber(id: string, opts: Parameters<typeof session>[1] = {}): SecureSession {
  return session(certify(keysFor({ id }), { roles: 'sub', topics: ['plant/#'] }), opts);
}

/** Seals `n` compact messages at once (one manifest when maxLeaves = n) and installs the key at `sub`. */
async function sealBatch(p: Publisher, sub: SecureSession | undefined, n: number, prefix = 'r', topic = TOPIC): Promise<SealedTopicMessage[]> {
  const sealed = await Promise.all(Array.from({ length: n }, (_, i) => p.s.sealTopic(topic, enc(`${prefix}${i}`), T0, undefined, { compact: true })));
  for (const x of sealed) {
    assert.equal(x.compact, true);
    if (x.keyMessage && sub) {
      const k = await sub.handleKeyMessage(x.keyMessage.topic, x.keyMessage.payload, T0);
      assert.ok(k.ok, `key message refused: ${k.ok ? '' : k.reason}`);
    }
  }
  return sealed;
}

/** Whether a promise settled within a few turns of the event loop. */
async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 5; i++) await tick();
  return done;
}

describe('compact mode (docs/PROTOCOL.md §4.8)', function () {
  this.timeout(120_000);

  describe('release only after the manifest verified', () => {
    let pub: Publisher;
    let sub: SecureSession;

    beforeEach(async () => {
      pub = compactPublisher('cm-pub', { compactBatch: { maxLeaves: 3, maxDelayMs: 1000 } });
      sub = subscriber('cm-sub');
      await pair(pub.s, sub);
    });

    it('envelopes first, then the manifest: held, then released in full, each exactly once', async () => {
      const sealed = await sealBatch(pub, sub, 3);
      const opening = sealed.map((x) => sub.open(TOPIC, x.envelope, T0));
      for (const o of opening) assert.equal(await settled(o), false, 'released before its manifest');
      const [m] = await pub.manifestsSoFar(1);
      assert.equal(m.topic, 'pqc/batches/cm-pub');
      assert.equal(m.count, 3);
      const v = await sub.handleManifest(m.topic, m.payload, T0);
      assert.ok(v.ok, v.ok ? '' : v.reason);
      assert.deepEqual({ digests: v.value.digests, released: v.value.released }, { digests: 3, released: 3 });
      const results = await Promise.all(opening);
      assert.deepEqual(results.map((r) => (r.ok ? text(r.value.data) : r.reason)), ['r0', 'r1', 'r2']);
      for (const r of results) if (r.ok) assert.match(r.value.suite, /compact$/);
      for (const x of sealed) assertReason(await sub.open(TOPIC, x.envelope, T0), 'duplicate');
    });

    it('the manifest first, then the envelopes: accepted at once', async () => {
      const sealed = await sealBatch(pub, sub, 3);
      const [m] = await pub.manifestsSoFar(1);
      assert.ok((await sub.handleManifest(m.topic, m.payload, T0)).ok);
      for (const [i, x] of sealed.entries()) {
        const r = await sub.open(TOPIC, x.envelope, T0);
        assert.ok(r.ok && text(r.value.data) === `r${i}`);
      }
    });

    it('a lost manifest: held envelopes fail unsigned after compactWaitMs and are never released', async () => {
      const sealed = await sealBatch(pub, sub, 3);
      const opening = sealed.map((x) => sub.open(TOPIC, x.envelope, T0));
      const [m] = await pub.manifestsSoFar(1);
      assert.equal(sub.expirePending(T0 + sub.limits.compactWaitMs - 1), 0, 'not yet');
      assert.equal(sub.expirePending(T0 + sub.limits.compactWaitMs), 3);
      for (const r of await Promise.all(opening)) assertReason(r, 'unsigned');
      // The manifest arriving late releases nothing that was already refused.
      const late = await sub.handleManifest(m.topic, m.payload, T0 + sub.limits.compactWaitMs);
      assert.ok(late.ok && late.value.released === 0);
    });

    it('the hold is bounded: beyond maxCompactPending a compact envelope is refused at once', async () => {
      const small = subscriber('cm-sub-small', { limits: { maxCompactPending: 2 } });
      await pair(pub.s, small);
      const sealed = await sealBatch(pub, small, 3);
      const held = [small.open(TOPIC, sealed[0].envelope, T0), small.open(TOPIC, sealed[1].envelope, T0)];
      assertReason(await small.open(TOPIC, sealed[2].envelope, T0), 'unsigned');
      const [m] = await pub.manifestsSoFar(1);
      assert.ok((await small.handleManifest(m.topic, m.payload, T0)).ok);
      for (const r of await Promise.all(held)) assert.ok(r.ok);
      // Not held, so not released; a later copy is accepted now that its digest is signed.
      assert.ok((await small.open(TOPIC, sealed[2].envelope, T0)).ok);
    });

    it('I4 manifests checked concurrently are applied in arrival order: more than a replay window of held envelopes all released', async () => {
      const p = compactPublisher('cm-order-pub', { compactBatch: { maxLeaves: 16, maxDelayMs: 1000 } });
      const s = subscriber('cm-order-sub');
      await pair(p.s, s);
      const keyed = await p.s.sealTopic(TOPIC, enc('key'), T0);
      assert.ok((await s.handleKeyMessage(keyed.keyMessage!.topic, keyed.keyMessage!.payload, T0)).ok);
      const sealed: SealedTopicMessage[] = [];
      for (let b = 0; b < 5; b++) sealed.push(...(await sealBatch(p, s, 16, `b${b}-`)));
      assert.ok(sealed.length > s.limits.replayWindow);
      const opening = sealed.map((x) => s.open(TOPIC, x.envelope, T0));
      const manifests = await p.covering(sealed.length);
      // The first manifest's signature check is the slowest (as a busy worker thread makes it):
      // the later ones finish first and must still wait for it.
      const internals = s as unknown as { checkSignature: (...a: unknown[]) => Promise<unknown> };
      const check = internals.checkSignature.bind(s);
      let calls = 0;
      internals.checkSignature = async (...a: unknown[]) => {
        if (calls++ === 0) await new Promise((r) => setTimeout(r, 200));
        return check(...a);
      };
      // All handed over at once, as a burst from the broker: their checks overlap.
      const verdicts = await Promise.all(manifests.map((m) => s.handleManifest(m.topic, m.payload, T0)));
      assert.ok(verdicts.every((v) => v.ok));
      const results = await Promise.all(opening);
      assert.deepEqual(results.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.reason)), []);
    });

    it('an envelope that arrives before its key message is held until both key and manifest arrived', async () => {
      const sealed = await sealBatch(pub, undefined, 3);
      const opening = sealed.map((x) => sub.open(TOPIC, x.envelope, T0));
      const [m] = await pub.manifestsSoFar(1);
      assert.ok((await sub.handleManifest(m.topic, m.payload, T0)).ok);
      for (const o of opening) assert.equal(await settled(o), false, 'released without its key');
      const k = await sub.handleKeyMessage(sealed[0].keyMessage!.topic, sealed[0].keyMessage!.payload, T0);
      assert.ok(k.ok && k.value.released === 3);
      assert.deepEqual((await Promise.all(opening)).map((r) => r.ok), [true, true, true]);
    });
  });

  describe('attacks on manifests', () => {
    let pub: Publisher;
    let sub: SecureSession;
    let sealed: SealedTopicMessage[];
    let manifest: ManifestMessage;
    let keyMessage: NonNullable<SealedTopicMessage['keyMessage']>;
    const other = () => compactPublisher('cm-other', { compactBatch: { maxLeaves: 2, maxDelayMs: 1000 } });

    before(async () => {
      pub = compactPublisher('cm-apub', { compactBatch: { maxLeaves: 2, maxDelayMs: 1000 } });
      // The key is wrapped for cm-asub; each test gets a fresh session of that identity.
      await pair(pub.s, subscriber('cm-asub'));
      const keyed = await pub.s.sealTopic(TOPIC, enc('key'), T0);
      keyMessage = keyed.keyMessage!;
      sealed = await sealBatch(pub, undefined, 2);
      [manifest] = await pub.manifestsSoFar(1);
      assert.equal(manifest.count, 2);
    });

    beforeEach(async () => {
      sub = subscriber('cm-asub', { budget: false });
      await pair(pub.s, sub);
      const k = await sub.handleKeyMessage(keyMessage.topic, keyMessage.payload, T0);
      assert.ok(k.ok, k.ok ? '' : k.reason);
    });

    /** Opens the envelopes, expires the hold, and checks none was accepted. */
    async function assertNoEnvelopeAccepted(s: SecureSession, what: string): Promise<void> {
      const opening = sealed.map((x) => s.open(TOPIC, x.envelope, T0));
      s.expirePending(T0 + s.limits.compactWaitMs);
      for (const r of await Promise.all(opening)) assertReason(r, 'unsigned', what);
    }

    it('a manifest signed by another key (forged under a trusted sender id) is bad-signature; its digests are not trusted', async () => {
      const d = decodeBatchManifest(manifest.payload);
      assert.ok(d.ok);
      const forger = new SoftwareProvider(certify(keysFor({ id: 'cm-forger' })));
      const forged = encodeBatchManifest(d.value.signedBytes, await forger.sign(manifestDigest(d.value.signedBytes)));
      assertReason(await sub.handleManifest(manifest.topic, forged, T0), 'bad-signature');
      await assertNoEnvelopeAccepted(sub, 'after a forged manifest');
    });

    it('a manifest from an unknown sender is unknown-sender, before any signature check', async () => {
      const stranger = compactPublisher('cm-stranger', { compactBatch: { maxLeaves: 1 } });
      await stranger.s.handleAnnouncement(sub.announcementTopic(), await sub.buildAnnouncement(T0), T0);
      await stranger.s.sealTopic(TOPIC, enc('x'), T0, undefined, { compact: true });
      const [m] = await stranger.manifestsSoFar(1);
      const { value, counts } = await countCrypto(() => sub.handleManifest(m.topic, m.payload, T0));
      assertReason(value, 'unknown-sender');
      assert.equal(counts.verify, 0);
    });

    it('a bit flipped in every region (header, sender, epoch, key id, algorithm, timestamp, count, each digest, signature) is refused; no digest is trusted', async () => {
      const p = manifest.payload;
      const d = decodeBatchManifest(p);
      assert.ok(d.ok);
      const sigStart = p.length - d.value.signature.length - 2;
      const regions: Array<[string, number]> = [
        ['magic', 0], ['version', 2], ['type', 3], ['sender id length', 4], ['sender id', 7], ['epoch', 14 + 3],
        ['key id', 18], ['key id end', 33], ['sig alg', 34], ['timestamp', 35 + 7], ['count', 43],
        ['digest 0', 44], ['digest 0 end', 75], ['digest 1', 76], ['digest 1 end', 107],
        ['signature length', sigStart], ['signature', sigStart + 2], ['signature middle', sigStart + 300], ['signature end', p.length - 1],
      ];
      for (const [name, at] of regions) {
        for (const bit of [0, 7]) {
          const r = await sub.handleManifest(manifest.topic, flipBit(p, at, bit), T0);
          assert.equal(r.ok, false, `${name} bit ${bit} accepted`);
        }
      }
      await assertNoEnvelopeAccepted(sub, 'after tampered manifests');
      // The genuine one still works afterwards (nothing was cached from the forgeries).
      assert.ok((await sub.handleManifest(manifest.topic, p, T0)).ok);
    });

    it('the signature of one manifest attached to another manifest\'s digest list is bad-signature', async () => {
      const later = await sealBatch(pub, undefined, 2, 'later');
      const [, second] = await pub.manifestsSoFar(2);
      assert.equal(second.count, 2);
      const a = decodeBatchManifest(manifest.payload);
      const b = decodeBatchManifest(second.payload);
      assert.ok(a.ok && b.ok);
      const swapped = encodeBatchManifest(b.value.signedBytes, a.value.signature);
      assertReason(await sub.handleManifest(second.topic, swapped, T0), 'bad-signature');
      const opening = later.map((x) => sub.open(TOPIC, x.envelope, T0));
      sub.expirePending(T0 + sub.limits.compactWaitMs);
      for (const r of await Promise.all(opening)) assertReason(r, 'unsigned');
    });

    it('a valid manifest re-published under another sender\'s manifest topic is topic-mismatch', async () => {
      const o = other();
      await pair(o.s, sub);
      assertReason(await sub.handleManifest('pqc/batches/cm-other', manifest.payload, T0), 'topic-mismatch');
      assertReason(await sub.handleManifest('pqc/batches/cm-apub/x', manifest.payload, T0), 'topic-mismatch');
      assertReason(await sub.handleManifest('pqc/keys/cm-apub', manifest.payload, T0), 'topic-mismatch');
      assertReason(await sub.handleManifest('pqc/batches/bad id', manifest.payload, T0), 'bad-id');
      assertReason(await sub.handleManifest(`pqc/batches/${sub.deviceId}`, manifest.payload, T0), 'own-message');
      await assertNoEnvelopeAccepted(sub, 're-routed manifest');
    });

    it('I4 a replayed manifest changes nothing: no second acceptance and no second signature check', async () => {
      assert.ok((await sub.handleManifest(manifest.topic, manifest.payload, T0)).ok);
      for (const x of sealed) assert.ok((await sub.open(TOPIC, x.envelope, T0)).ok);
      const { value, counts } = await countCrypto(() => sub.handleManifest(manifest.topic, manifest.payload, T0));
      assert.ok(value.ok && value.value.released === 0);
      assert.equal(counts.verify, 0, 'byte-identical manifest cost a signature check');
      for (const x of sealed) assertReason(await sub.open(TOPIC, x.envelope, T0), 'duplicate');
    });

    it('I5 manifest larger than maxManifestBytes is too-large before decoding', async () => {
      const small = subscriber('cm-asub', { limits: { maxManifestBytes: 1024 }, budget: false });
      const big = new Uint8Array(1025);
      big.set(manifest.payload.subarray(0, 4));
      assertReason(await small.handleManifest(manifest.topic, big, T0), 'too-large');
    });

    it('a manifest when the verification budget is spent is refused with budget, without a check', async () => {
      const tight = subscriber('cm-asub', { budget: { verify: { perPeer: { rate: 0, burst: 1 }, global: { rate: 0, burst: 100 } } } });
      await pair(pub.s, tight);
      const d = decodeBatchManifest(manifest.payload);
      assert.ok(d.ok);
      const bad = withByte(manifest.payload, manifest.payload.length - 1, manifest.payload[manifest.payload.length - 1] ^ 1);
      assertReason(await tight.handleManifest(manifest.topic, bad, T0), 'bad-signature');
      const { value, counts } = await countCrypto(() => tight.handleManifest(manifest.topic, manifest.payload, T0));
      assertReason(value, 'budget');
      assert.equal(counts.verify, 0);
    });

    it('I7 a manifest of a revoked sender is revoked, and its held envelopes fail revoked', async () => {
      const opening = sealed.map((x) => sub.open(TOPIC, x.envelope, T0));
      const update = issueRevocation(testCa(), EMPTY_REVOCATIONS, [{ deviceId: 'cm-apub', keyId: keysFor({ id: 'cm-apub' }).keyId }], sub.revocationTopic, T0);
      assert.ok(sub.handleRevocation(sub.revocationTopic, update.bytes).ok);
      for (const r of await Promise.all(opening)) assertReason(r, 'revoked');
      assertReason(await sub.handleManifest(manifest.topic, manifest.payload, T0), 'revoked');
      for (const x of sealed) assertReason(await sub.open(TOPIC, x.envelope, T0), 'revoked');
    });

    it('I7 a manifest of the sender\'s previous key (after rotation) is stale-key', async () => {
      const rotated = session(certify(keysFor({ id: 'cm-apub', epoch: 2 }), { roles: 'pub', topics: ['plant/#'] }));
      const r = await sub.handleAnnouncement(rotated.announcementTopic(), await rotated.buildAnnouncement(T0 + 1), T0 + 1);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assertReason(await sub.handleManifest(manifest.topic, manifest.payload, T0 + 1), 'stale-key');
    });
  });

  describe('attacks on compact envelopes', () => {
    let pub: Publisher;
    let sub: SecureSession;
    let sealed: SealedTopicMessage[];

    beforeEach(async () => {
      pub = compactPublisher('cm-epub', { compactBatch: { maxLeaves: 2, maxDelayMs: 1000 } });
      sub = subscriber('cm-esub', { budget: false });
      await pair(pub.s, sub);
      // A key for the other topic too, so re-routing there meets a key and AES-GCM.
      await sealBatch(pub, sub, 2, 'p', OTHER_TOPIC);
      sealed = await sealBatch(pub, sub, 2);
      for (const m of await pub.covering(4)) assert.ok((await sub.handleManifest(m.topic, m.payload, T0)).ok);
    });

    it('I3 a compact envelope re-routed to another topic is never accepted', async () => {
      // Serials are unique per publisher, so on another topic its key serial is unknown (held)
      // or superseded (no-key); the digest (bound to the topic) is in no manifest, and the AAD
      // binds the topic as well.
      const other = await sealBatch(pub, sub, 2, 'o', OTHER_TOPIC);
      for (const m of (await pub.covering(6)).slice(-1)) await sub.handleManifest(m.topic, m.payload, T0);
      const attempts = [
        sub.open(OTHER_TOPIC, sealed[0].envelope, T0),
        sub.open('plant/line-9/x', sealed[1].envelope, T0),
        sub.open(TOPIC, other[0].envelope, T0),
      ];
      for (const a of attempts) await settled(a);
      sub.expirePending(T0 + sub.limits.compactWaitMs);
      for (const r of await Promise.all(attempts)) assertReason(r, ['unsigned', 'no-key', 'decrypt-failed']);
      // The originals still open on their own topics.
      for (const x of sealed) assert.ok((await sub.open(TOPIC, x.envelope, T0 + sub.limits.compactWaitMs)).ok);
    });

    it('a byte flipped anywhere in a compact envelope is never accepted', async () => {
      const e = sealed[0].envelope;
      const results: Array<Promise<Result<unknown>>> = [];
      for (let at = 0; at < e.length; at++) results.push(sub.open(TOPIC, flipBit(e, at, at % 8), T0));
      sub.expirePending(T0 + sub.limits.compactWaitMs);
      const outcomes = await Promise.all(results);
      const accepted = outcomes.filter((r) => r.ok).length;
      assert.equal(accepted, 0, `${accepted} tampered envelopes accepted`);
      assert.ok((await sub.open(TOPIC, e, T0)).ok, 'the genuine envelope still opens');
    });

    it('I4 a replayed compact envelope after acceptance is duplicate, and replay once the window moved on', async () => {
      assert.ok((await sub.open(TOPIC, sealed[0].envelope, T0)).ok);
      assertReason(await sub.open(TOPIC, sealed[0].envelope, T0), 'duplicate');
      // More than a replay window of newer messages, accepted.
      const newer: SealedTopicMessage[] = [];
      for (let i = 0; i < 35; i++) newer.push(...(await sealBatch(pub, sub, 2, `z${i}`)));
      const manifests = await pub.covering(4 + newer.length);
      for (const m of manifests) await sub.handleManifest(m.topic, m.payload, T0);
      for (const x of newer) assert.ok((await sub.open(TOPIC, x.envelope, T0)).ok);
      assert.ok(newer.length > sub.limits.replayWindow);
      assertReason(await sub.open(TOPIC, sealed[1].envelope, T0), 'replay');
      assertReason(await sub.open(TOPIC, sealed[0].envelope, T0), 'replay');
    });

    it('a compact envelope of an unknown sender, an unauthorized topic or its own sender is refused before any cryptography', async () => {
      const stranger = subscriber('cm-nobody');
      const { value, total } = await countCrypto(() => stranger.open(TOPIC, sealed[0].envelope, T0));
      assertReason(value, 'unknown-sender');
      assert.equal(total, 0);
      const narrow = session(certify(keysFor({ id: 'cm-narrow' }), { roles: 'sub', topics: ['plant/#'] }));
      await pair(narrow, session(certify(keysFor({ id: 'cm-epub' }), { roles: 'pub', topics: ['plant/line-2/#'] })));
      assertReason(await narrow.open(TOPIC, sealed[0].envelope, T0), 'not-authorized');
      assertReason(await pub.s.open(TOPIC, sealed[0].envelope, T0), 'own-message');
    });
  });

  it('a manifest waits for its delay, not for a quiet turn, and not by time while the previous one is being signed (defaults 255 / 1000 ms)', async () => {
    assert.deepEqual(resolveCompactBatchOptions(undefined), { maxLeaves: 255, maxDelayMs: 1000 });
    const soon: Array<() => void> = [];
    const after: Array<() => void> = [];
    const scheduler: BatchScheduler = {
      soon: (fn) => (soon.push(fn), () => soon.splice(soon.indexOf(fn) >>> 0, 1)),
      after: (_ms, fn) => (after.push(fn), () => after.splice(after.indexOf(fn) >>> 0, 1)),
    };
    const identity = keysFor({ id: 'cm-window-sender' });
    const provider = new SoftwareProvider(identity);
    const release: Array<() => void> = [];
    const out: ManifestMessage[] = [];
    const batcher = new ManifestBatcher(
      {
        senderId: identity.deviceId, keyEpoch: identity.keyEpoch, keyId: identity.keyId, sigAlgorithm: identity.sigAlgorithm,
        sign: async (d) => {
          await new Promise<void>((r) => release.push(r));
          return provider.sign(d);
        },
      },
      'pqc/batches/cm-window-sender',
      () => ({ manifest: (m) => out.push(m), failed: (e) => assert.fail(String(e)) }),
      () => T0,
      resolveCompactBatchOptions(undefined),
      scheduler,
    );
    const counts = () => out.map((m) => {
      const d = decodeBatchManifest(m.payload);
      return d.ok ? d.value.digests.length : -1;
    });
    // Signing itself may run on a worker thread: wait until the expected state, at most 5 s.
    const settle = async (until?: () => boolean) => {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      if (!until) return void (await new Promise((r) => setTimeout(r, 50)));
      for (let i = 0; i < 1000 && !until(); i++) await new Promise((r) => setTimeout(r, 5));
    };
    batcher.add(new Uint8Array(32).fill(1));
    batcher.add(new Uint8Array(32).fill(2));
    assert.equal(soon.length, 0, 'no quiet-turn rule for manifests');
    assert.equal(after.length, 1);
    after.shift()!(); // one second after the first envelope
    await settle();
    assert.equal(release.length, 1, 'the first manifest is being signed');
    batcher.add(new Uint8Array(32).fill(3));
    after.shift()!(); // its second is up, but the first manifest is still being signed
    await settle();
    assert.equal(release.length, 1, 'no second signature while the first runs');
    batcher.add(new Uint8Array(32).fill(4));
    release.shift()!();
    await settle(() => release.length === 1);
    assert.equal(release.length, 1, 'the first ended: the waiting manifest (two envelopes) is signed at once');
    release.shift()!();
    await settle(() => out.length === 2);
    assert.deepEqual(counts(), [2, 2]);
  });

  it('I4 the sender hands manifests over in batch order even when a later signature finishes first', async () => {
    const identity = keysFor({ id: 'cm-order-sender' });
    const provider = new SoftwareProvider(identity);
    let signs = 0;
    const out: ManifestMessage[] = [];
    const batcher = new ManifestBatcher(
      {
        senderId: identity.deviceId, keyEpoch: identity.keyEpoch, keyId: identity.keyId, sigAlgorithm: identity.sigAlgorithm,
        // The first batch's signature is the slowest.
        sign: async (d) => {
          const delay = signs++ === 0 ? 100 : 0;
          await new Promise((r) => setTimeout(r, delay));
          return provider.sign(d);
        },
      },
      'pqc/batches/cm-order-sender',
      () => ({ manifest: (m) => out.push(m), failed: (e) => assert.fail(String(e)) }),
      () => T0,
      { maxLeaves: 1, maxDelayMs: 0 },
    );
    const digests = [0, 1, 2].map((i) => new Uint8Array(32).fill(i + 1));
    for (const d of digests) batcher.add(d);
    for (let i = 0; i < 200 && out.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(out.map((m) => {
      const d = decodeBatchManifest(m.payload);
      return d.ok ? d.value.digests[0][0] : -1;
    }), [1, 2, 3]);
    assert.equal(batcher.stats.manifests, 3);
  });

  it('the sender refuses compact mode without a manifest sink, and a reading too large for a compact envelope', async () => {
    const s = session(certify(keysFor({ id: 'cm-nosink' }), { roles: 'pub', topics: ['plant/#'] }));
    await assert.rejects(s.sealTopic(TOPIC, enc('x'), T0, undefined, { compact: true }), /manifest sink/);
    s.setManifestSink({ manifest: () => undefined, failed: () => undefined });
    await assert.rejects(s.sealTopic(TOPIC, new Uint8Array(65520), T0, undefined, { compact: true }), /at most 65519 bytes/);
  });

  it('one manifest covers compact envelopes of several topics; normal and compact envelopes mix', async () => {
    const p = compactPublisher('cm-mix', { compactBatch: { maxLeaves: 2, maxDelayMs: 1000 } });
    const s = subscriber('cm-mix-sub');
    await pair(p.s, s);
    const normal = await p.s.sealTopic(TOPIC, enc('normal'), T0);
    const other = await p.s.sealTopic(OTHER_TOPIC, enc('other'), T0);
    for (const k of [normal.keyMessage!, other.keyMessage!]) assert.ok((await s.handleKeyMessage(k.topic, k.payload, T0)).ok);
    // Keys exist for both topics, so both seals join the batch in the same turn.
    const a = p.s.sealTopic(TOPIC, enc('a'), T0, undefined, { compact: true });
    const b = p.s.sealTopic(OTHER_TOPIC, enc('b'), T0, undefined, { compact: true });
    const [ea, eb] = await Promise.all([a, b]);
    const [m] = await p.manifestsSoFar(1);
    assert.equal(m.count, 2);
    assert.ok((await s.handleManifest(m.topic, m.payload, T0)).ok);
    assert.ok((await s.open(TOPIC, normal.envelope, T0)).ok);
    const ra = await s.open(TOPIC, ea.envelope, T0);
    const rb = await s.open(OTHER_TOPIC, eb.envelope, T0);
    assert.ok(ra.ok && text(ra.value.data) === 'a');
    assert.ok(rb.ok && text(rb.value.data) === 'b');
    assert.equal(p.s.throughputStats.manifests.manifests, 1);
  });

  it('wire size: a 100-byte reading in compact mode with Falcon-512 and a 9-character sender id, manifest share included', async () => {
    // Thin-link setting: short data topic, full manifests of 255 envelopes.
    const shortTopic = 'plant/t1';
    const rows: string[] = [];
    const perMessage = new Map<number, number>();
    for (const n of [16, 64, 128, 255]) {
      const p = compactPublisher('sensor-01', { compactBatch: { maxLeaves: n, maxDelayMs: 1000 } }, 'Falcon-512');
      const s = subscriber(`cm-wire-${n}`);
      await pair(p.s, s);
      const keyed = await p.s.sealTopic(shortTopic, new Uint8Array(100), T0);
      await s.handleKeyMessage(keyed.keyMessage!.topic, keyed.keyMessage!.payload, T0);
      const sealed = await Promise.all(Array.from({ length: n }, () => p.s.sealTopic(shortTopic, new Uint8Array(100), T0, undefined, { compact: true })));
      const [m] = await p.manifestsSoFar(1);
      assert.equal(m.count, n);
      const signature = (decodeBatchManifest(m.payload) as { ok: true; value: { signature: Uint8Array } }).value.signature.length;
      // Worst case: the longest Falcon-512 signature (666 bytes).
      const manifestPacket = publishPacketSize(m.topic, m.payload.length - signature + 666, 1, 4);
      const envelopePacket = Math.max(...sealed.map((x) => publishPacketSize(shortTopic, x.envelope.length, 0, 4)));
      assert.equal(Math.max(...sealed.map((x) => x.envelope.length)), 148, 'compact envelope of a 100-byte reading');
      const share = envelopePacket + manifestPacket / n;
      perMessage.set(n, share);
      rows.push(`batch ${n}: envelope packet ${envelopePacket} + manifest ${manifestPacket}/${n} = ${share.toFixed(1)} bytes`);
      assert.ok((await s.handleManifest(m.topic, m.payload, T0)).ok);
      for (const x of sealed.slice(0, 3)) assert.ok((await s.open(shortTopic, x.envelope, T0)).ok);
    }
    console.log(`      ${rows.join('\n      ')}`);
    assert.ok(perMessage.get(128)! <= 200, rows.join('; '));
    assert.ok(perMessage.get(255)! <= 200, rows.join('; '));
  });
});
