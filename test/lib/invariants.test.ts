/**
 * Regression tests for the security invariants I0–I5 of seed 004 (docs/PROTOCOL.md §6–7), run
 * against the sans-I/O SecureSession. Every test name carries its invariant id. I6/I7 come with
 * the trust-lifecycle issue.
 */
import assert from 'node:assert/strict';
import {
  SecureSession, SoftwareProvider, cryptoBackend, createIdentity, decodeDirectEnvelope, type IdentityBundle,
} from '../../lib';
import { openDirectCiphertext, sealDirectEnvelope } from '../../lib/session/direct';
import { announcementDigest, decodeAnnouncement, encodeAnnouncement } from '../../lib/wire/announcement';
import { messageDigest } from '../../lib/wire/envelope';
import {
  T0, announcementOf, assertReason, certify, concat, countCrypto, device, flipBit, introduce, keysFor, otherCa,
  pair, regionsOf, senderAt, session, testCa, withByte,
} from './fixtures';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const TOPIC = 'plant/line1/temp';

/** A non-strict session only used to build the announcement of an arbitrary bundle. */
async function announce(bundle: IdentityBundle, now = T0): Promise<Uint8Array> {
  return session(bundle, { strict: false }).buildAnnouncement(now);
}

describe('security invariants I0–I5', () => {
  let alice: IdentityBundle;
  let bob: IdentityBundle;
  let carol: IdentityBundle;
  let mallory: IdentityBundle;

  before(() => {
    alice = device({ id: 'alice' });
    bob = device({ id: 'bob' });
    carol = device({ id: 'carol' });
    mallory = device({ id: 'mallory' });
  });

  describe('I0 peer identifiers are bounded and sanitized', () => {
    const badIds = ['', 'x'.repeat(129), 'dévice', 'ü', 'a b', 'a+b', 'a#b', 'a\u0000b', 'tab\t', 'semi;colon', '$SYS'];

    it('I0 invalid ids in announcement topics are bad-id, dropped before any crypto, no peer added', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      for (const id of badIds) {
        const { value, total } = await countCrypto(() => receiver.handleAnnouncement(`pqc/keys/${id}`, payload, T0));
        assertReason(value, 'bad-id', JSON.stringify(id));
        assert.equal(total, 0, `crypto ran for ${JSON.stringify(id)}`);
      }
      // A '/' in the suffix is not a keys topic at all.
      assertReason(await receiver.handleAnnouncement('pqc/keys/a/b', payload, T0), 'topic-mismatch');
      assert.deepEqual(receiver.listPeers(), [], 'no state inserted');
      // The same receiver still accepts the genuine announcement on the genuine topic.
      assert.ok((await receiver.handleAnnouncement('pqc/keys/alice', payload, T0)).ok);
      assert.equal(receiver.listPeers().length, 1);
    });

    it('I0 a 128-character id is accepted and a 129-character one is refused', async () => {
      const longId = 'L'.repeat(128);
      const longDev = certify(keysFor({ id: longId }));
      const receiver = session(bob);
      const payload = await announce(longDev);
      assert.ok((await receiver.handleAnnouncement(`pqc/keys/${longId}`, payload, T0)).ok);
      assert.deepEqual(receiver.listPeers().map((p) => p.deviceId), [longId]);
      assert.throws(() => createIdentity({ deviceId: 'L'.repeat(129), sigAlgorithm: 'ML-DSA-44' }), /device id/);
    });

    it('I0 invalid ids inside an announcement are bad-id before any crypto', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const g = regionsOf('announcement', payload);
      for (const [what, bytes] of [
        ['length 0', withByte(payload, g.deviceId.prefix!, 0)],
        ['length 129', withByte(payload, g.deviceId.prefix!, 129)],
        ['space', withByte(payload, g.deviceId.content, 0x20)],
        ['non-ASCII', withByte(payload, g.deviceId.content, 0xc3)],
        ['slash', withByte(payload, g.deviceId.content + 1, 0x2f)],
      ] as const) {
        const { value, total } = await countCrypto(() => receiver.handleAnnouncement('pqc/keys/alice', bytes, T0));
        assertReason(value, 'bad-id', what);
        assert.equal(total, 0, what);
      }
      assert.deepEqual(receiver.listPeers(), []);
    });

    it('I0 invalid sender and recipient ids in an envelope are bad-id before any crypto, and consume nothing', async () => {
      const a = session(alice);
      const b = session(bob);
      await pair(a, b);
      const env = await a.sealDirect(TOPIC, enc('x'), 'bob', T0);
      const g = regionsOf('envelope', env);
      // A 129-character sender id spliced in place of "alice".
      const long = concat(env.subarray(0, g.senderId.start), Uint8Array.of(129), enc('a'.repeat(129)), env.subarray(g.senderId.end));
      const cases: [string, Uint8Array][] = [
        ['sender 129 characters', long],
        ['sender length 0', withByte(env, g.senderId.prefix!, 0)],
        ['sender length 255', withByte(env, g.senderId.prefix!, 255)],
        ['sender non-ASCII', withByte(env, g.senderId.content, 0xc3)],
        ['sender space', withByte(env, g.senderId.content + 2, 0x20)],
        ['sender slash', withByte(env, g.senderId.content, 0x2f)],
        ['recipient length 0', withByte(env, g.recipientId.prefix!, 0)],
        ['recipient non-ASCII', withByte(env, g.recipientId.content, 0xff)],
        ['recipient wildcard', withByte(env, g.recipientId.content, 0x23)],
      ];
      const peersBefore = JSON.stringify(b.listPeers());
      for (const [what, bytes] of cases) {
        const { value, total } = await countCrypto(() => b.open(TOPIC, bytes, T0));
        assertReason(value, 'bad-id', what);
        assert.equal(total, 0, `crypto ran for ${what}`);
      }
      assert.equal(JSON.stringify(b.listPeers()), peersBefore, 'peer table unchanged');
      const r = await b.open(TOPIC, env, T0);
      assert.ok(r.ok, 'the untouched envelope still opens: nothing was consumed');
      assert.equal(dec(r.value.data), 'x');
    });
  });

  describe('I1 strict mode eliminates TOFU', () => {
    it('I1 an announcement without certificate is no-certificate in strict mode', async () => {
      const receiver = session(bob);
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(keysFor({ id: 'alice' })), T0), 'no-certificate');
      assert.deepEqual(receiver.listPeers(), []);
    });

    it('I1 a certificate from another CA is bad-certificate', async () => {
      const receiver = session(bob);
      const foreign = certify(keysFor({ id: 'alice' }), { ca: otherCa() });
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(foreign), T0), 'bad-certificate');
      assert.deepEqual(receiver.listPeers(), []);
    });

    it('I1 a certificate whose subject is another device is certificate-subject', async () => {
      // Mallory announces as "alice" with her own keys and her own genuine certificate.
      const m = keysFor({ id: 'mallory' });
      const posing: IdentityBundle = { ...m, deviceId: 'alice', certificate: mallory.certificate };
      const receiver = session(bob);
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(posing), T0), 'certificate-subject');
      assert.deepEqual(receiver.listPeers(), []);
    });

    it('I1 announced keys that differ from the certificate keys are certificate-key-mismatch', async () => {
      const receiver = session(bob);
      // Alice's genuine certificate, announced with another key pair of the same id and epoch.
      const other = keysFor({ id: 'alice', variant: 'b' });
      const mixed: IdentityBundle = { ...other, certificate: alice.certificate };
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(mixed), T0), 'certificate-key-mismatch');
      // And a certificate for epoch 2 keys on the epoch 1 keys.
      const wrongEpoch: IdentityBundle = { ...keysFor({ id: 'alice' }), certificate: device({ id: 'alice', epoch: 2 }).certificate };
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(wrongEpoch), T0), 'certificate-key-mismatch');
      assert.deepEqual(receiver.listPeers(), []);
    });

    it('I1 a valid certificate from the pinned CA makes the peer trusted with its certificate rights', async () => {
      const receiver = session(bob);
      const r = await receiver.handleAnnouncement('pqc/keys/alice', await announcementOf(alice), T0);
      assert.ok(r.ok);
      assert.deepEqual(r.value, { deviceId: 'alice', keyId: Buffer.from(alice.keyId).toString('hex'), keyEpoch: 1, changed: true });
      assert.deepEqual(receiver.listPeers(), [{
        deviceId: 'alice', keyId: Buffer.from(alice.keyId).toString('hex'), keyEpoch: 1, role: 'both', topics: ['plant/#'], certified: true,
      }]);
    });

    it('I1 strict mode without a CA public key is refused by the constructor; so is strict without own certificate', () => {
      assert.throws(() => new SecureSession({ provider: new SoftwareProvider(bob) }), /CA public key/);
      assert.throws(() => new SecureSession({ provider: new SoftwareProvider(bob), strict: true }), /CA public key/);
      assert.throws(
        () => new SecureSession({ provider: new SoftwareProvider(keysFor({ id: 'bob' })), caPublicKey: testCa().publicKey }),
        /certificate/,
      );
      assert.equal(new SecureSession({ provider: new SoftwareProvider(bob), caPublicKey: testCa().publicKey }).strict, true, 'strict is the default');
    });

    it('I1 contrast: outside strict mode, without a CA, an uncertified peer is trusted on first use and marked uncertified', async () => {
      const receiver = session(keysFor({ id: 'bob' }), { strict: false });
      assert.ok((await receiver.handleAnnouncement('pqc/keys/alice', await announce(keysFor({ id: 'alice' })), T0)).ok);
      assert.equal(receiver.listPeers()[0].certified, false);
    });

    it('I1 outside strict mode with a CA, a certificate that is present is still checked', async () => {
      const receiver = session(bob, { strict: false, caPublicKey: testCa().publicKey });
      const foreign = certify(keysFor({ id: 'alice' }), { ca: otherCa() });
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(foreign), T0), 'bad-certificate');
    });
  });

  describe('I2 key announcements are identity-bound and non-malleable', () => {
    it('I2 the announcement signature binds the device id (a signature over another id does not verify)', async () => {
      const d = decodeAnnouncement(await announcementOf(alice));
      assert.ok(d.ok);
      const body = d.value.signedBytes;
      assert.notDeepEqual(announcementDigest('alice', body), announcementDigest('alice2', body));
      // Alice's own key signs the right body, but bound to another id: refused.
      const wrongBinding = encodeAnnouncement(body, cryptoBackend().sign('ML-DSA-44', announcementDigest('mallory', body), alice.sigSecretKey));
      const receiver = session(bob);
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', wrongBinding, T0), 'bad-signature');
      const rightBinding = encodeAnnouncement(body, cryptoBackend().sign('ML-DSA-44', announcementDigest('alice', body), alice.sigSecretKey));
      assert.ok((await receiver.handleAnnouncement('pqc/keys/alice', rightBinding, T0)).ok);
    });

    it("I2 an announcement re-published under another device's topic is topic-mismatch, before any crypto", async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const { value, total } = await countCrypto(() => receiver.handleAnnouncement('pqc/keys/carol', payload, T0));
      assertReason(value, 'topic-mismatch');
      assert.equal(total, 0);
      assert.deepEqual(receiver.listPeers(), []);
      // Also when carol is already trusted: her record is untouched.
      await introduce(receiver, session(carol));
      assertReason(await receiver.handleAnnouncement('pqc/keys/carol', payload, T0), 'topic-mismatch');
      assert.deepEqual(receiver.listPeers().map((p) => [p.deviceId, p.keyId]), [['carol', Buffer.from(carol.keyId).toString('hex')]]);
    });

    it('I2 a lower key epoch than the trusted one is epoch-rollback; the trusted record stays', async () => {
      const receiver = session(bob);
      const a2 = device({ id: 'alice', epoch: 2 });
      assert.ok((await receiver.handleAnnouncement('pqc/keys/alice', await announce(a2), T0)).ok);
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announcementOf(alice), T0), 'epoch-rollback');
      assert.equal(receiver.listPeers()[0].keyEpoch, 2);
      assert.equal(receiver.listPeers()[0].keyId, Buffer.from(a2.keyId).toString('hex'));
    });

    it('I2 the same epoch with a different key id is epoch-collision, even with a valid certificate', async () => {
      const receiver = session(bob);
      await introduce(receiver, session(alice));
      const twin = device({ id: 'alice', variant: 'b' });
      assert.equal(twin.keyEpoch, alice.keyEpoch);
      assertReason(await receiver.handleAnnouncement('pqc/keys/alice', await announce(twin), T0), 'epoch-collision');
      assert.equal(receiver.listPeers()[0].keyId, Buffer.from(alice.keyId).toString('hex'));
    });

    it('I2 a higher epoch replaces the key; envelopes under the old key are then stale-key', async () => {
      const receiver = session(bob);
      const oldSender = session(alice);
      await pair(receiver, oldSender);
      const old = await oldSender.sealDirect(TOPIC, enc('old'), 'bob', T0);
      const r = await receiver.handleAnnouncement('pqc/keys/alice', await announce(device({ id: 'alice', epoch: 2 })), T0);
      assert.ok(r.ok && r.value.changed && r.value.keyEpoch === 2);
      assertReason(await receiver.open(TOPIC, old, T0), 'stale-key');
    });

    it('I2 a tampered announcement is refused and installs nothing', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const g = regionsOf('announcement', payload);
      for (const field of ['keyEpoch', 'keyId', 'kemPublicKey', 'sigPublicKey', 'issuedAt', 'certificate', 'signature'] as const) {
        const at = Math.floor((g[field].content + g[field].end) / 2);
        const r = await receiver.handleAnnouncement('pqc/keys/alice', flipBit(payload, at), T0);
        assert.equal(r.ok, false, `tampered ${field} accepted`);
      }
      assert.deepEqual(receiver.listPeers(), []);
    });
  });

  describe('I3 envelopes are bound to sender and topic', () => {
    let a: SecureSession;
    let b: SecureSession;

    beforeEach(async () => {
      a = session(alice);
      b = session(bob);
      await pair(a, b);
      await introduce(b, session(carol));
    });

    it('I3 an envelope re-routed to another topic (delivered there FIRST) is refused; it still opens on its real topic', async () => {
      const env = await a.sealDirect(TOPIC, enc('21.5'), 'bob', T0);
      // Alice may publish on plant/line2/temp too: only the topic binding can stop this.
      assertReason(await b.open('plant/line2/temp', env, T0), 'bad-signature');
      assertReason(await b.open('plant/line1/temp/x', env, T0), 'bad-signature');
      // Outside her rights the rights check stops it first.
      assertReason(await b.open('other/line1/temp', env, T0), 'not-authorized');
      const r = await b.open(TOPIC, env, T0);
      assert.ok(r.ok, 're-routed copies consumed nothing');
      assert.equal(dec(r.value.data), '21.5');
      assert.equal(r.value.sender, 'alice');
    });

    it('I3 the signed digest and the AES-GCM associated data both cover the topic', async () => {
      const env = await a.sealDirect(TOPIC, enc('aad'), 'bob', T0);
      const d = decodeDirectEnvelope(env);
      assert.ok(d.ok);
      assert.notDeepEqual(messageDigest('alice', TOPIC, d.value.blob), messageDigest('alice', 'plant/line2/temp', d.value.blob));
      assert.notDeepEqual(messageDigest('alice', TOPIC, d.value.blob), messageDigest('carol', TOPIC, d.value.blob));
      const provider = new SoftwareProvider(bob);
      const decap = (c: Uint8Array): Promise<Uint8Array> => provider.decapsulate(c);
      assert.equal(await openDirectCiphertext(d.value, 'plant/line2/temp', decap), undefined, 'AAD refuses another topic');
      assert.equal(dec((await openDirectCiphertext(d.value, TOPIC, decap))!), 'aad');
    });

    it('I3 a swapped sender id is refused (stale-key with the original key id, bad-signature with the other key id)', async () => {
      const env = await a.sealDirect(TOPIC, enc('swap'), 'bob', T0);
      const g = regionsOf('envelope', env);
      assert.equal('alice'.length, 'carol'.length);
      const swapped = Uint8Array.from(env);
      swapped.set(enc('carol'), g.senderId.content);
      assertReason(await b.open(TOPIC, swapped, T0), 'stale-key');
      // Also swap in carol's key id: the signature (over sender id, topic and blob) fails.
      swapped.set(carol.keyId, g.senderKeyId.start);
      assertReason(await b.open(TOPIC, swapped, T0), 'bad-signature');
      assert.ok((await b.open(TOPIC, env, T0)).ok);
    });
  });

  describe('I4 replay protection is bounded and supports limited reordering', () => {
    it('I4 out-of-order delivery within the window is accepted exactly once; exact copies are duplicate', async () => {
      const b = session(bob);
      const a = await senderAt(alice, b, 5000n);
      await introduce(b, a);
      const envs: Uint8Array[] = [];
      for (let i = 0; i < 5; i++) envs.push(await a.sealDirect(TOPIC, enc(`m${i}`), 'bob', T0 + i));
      for (const i of [4, 1, 3, 0, 2]) {
        const r = await b.open(TOPIC, envs[i], T0 + 10);
        assert.ok(r.ok, `m${i}`);
        assert.equal(r.value.seq, 5000n + BigInt(i));
        assert.equal(dec(r.value.data), `m${i}`);
      }
      for (const i of [0, 1, 2, 3, 4]) assertReason(await b.open(TOPIC, envs[i], T0 + 10), 'duplicate', `copy of m${i}`);
    });

    for (const width of [8, 128]) {
      it(`I4 window ${width}: the oldest number in the window is accepted once, one older is replay, deterministically`, async () => {
        const b = session(bob, { limits: { replayWindow: width } });
        assert.equal(b.limits.replayWindow, width);
        await introduce(b, session(alice));
        const top = 1_000_000n;
        const W = BigInt(width);
        const at = async (seq: bigint): Promise<Uint8Array> => (await senderAt(alice, b, seq)).sealDirect(TOPIC, enc(`s${seq}`), 'bob', T0);
        const newest = await at(top);
        const oldestInside = await at(top - W + 1n);
        const justOutside = await at(top - W);
        assert.ok((await b.open(TOPIC, newest, T0)).ok);
        for (let i = 0; i < 3; i++) assertReason(await b.open(TOPIC, justOutside, T0), 'replay', `attempt ${i}`);
        assert.ok((await b.open(TOPIC, oldestInside, T0)).ok);
        assertReason(await b.open(TOPIC, oldestInside, T0), 'duplicate');
        // After a jump the same message falls out of the window: replay from then on.
        assert.ok((await b.open(TOPIC, await at(top + 1n), T0)).ok);
        assertReason(await b.open(TOPIC, oldestInside, T0), 'replay');
      });
    }

    it('I4 only authenticated envelopes move the window: a forged huge sequence number does not lock the sender out', async () => {
      const b = session(bob, { limits: { replayWindow: 8 } });
      const a = await senderAt(alice, b, 100n);
      await introduce(b, a);
      const env = await a.sealDirect(TOPIC, enc('ok'), 'bob', T0);
      const g = regionsOf('envelope', env);
      const huge = withByte(env, g.seq.start, 0x7f);
      assertReason(await b.open(TOPIC, huge, T0), 'bad-signature');
      assert.ok((await b.open(TOPIC, env, T0)).ok, 'seq 100 is still fresh');
    });

    it('I4 an envelope that fails to decrypt (valid signature) does not consume its sequence number', async () => {
      const b = session(bob);
      await introduce(b, session(alice));
      // Signed by alice, addressed to bob's key id, but encapsulated to carol's KEM key.
      const bad = await sealDirectEnvelope({
        topic: TOPIC, data: enc('x'), seq: 777n, timestamp: T0,
        sender: alice, recipient: { deviceId: 'bob', keyId: bob.keyId, kemAlgorithm: 'ML-KEM-768', kemPublicKey: carol.kemPublicKey },
        sign: async (digest) => cryptoBackend().sign('ML-DSA-44', digest, alice.sigSecretKey),
      });
      assertReason(await b.open(TOPIC, bad, T0), 'decrypt-failed');
      const good = await (await senderAt(alice, b, 777n)).sealDirect(TOPIC, enc('y'), 'bob', T0);
      const r = await b.open(TOPIC, good, T0);
      assert.ok(r.ok && r.value.seq === 777n);
    });

    it('I4 the window is per sender: the same sequence number from two senders is accepted for each', async () => {
      const b = session(bob);
      const a = await senderAt(alice, b, 42n);
      const c = await senderAt(carol, b, 42n);
      await introduce(b, a);
      await introduce(b, c);
      assert.ok((await b.open(TOPIC, await a.sealDirect(TOPIC, enc('a'), 'bob', T0), T0)).ok);
      assert.ok((await b.open(TOPIC, await c.sealDirect(TOPIC, enc('c'), 'bob', T0), T0)).ok);
    });
  });

  describe('I5 input size limits exist before parsing and crypto', () => {
    it('I5 (sanity for the zero counts) the counting backend does see the crypto of accepted inputs', async () => {
      const a = session(alice);
      const b = session(bob);
      const payload = await announcementOf(alice);
      const ann = await countCrypto(() => b.handleAnnouncement('pqc/keys/alice', payload, T0));
      assert.ok(ann.value.ok);
      assert.equal(ann.counts.verify, 2, 'CA signature and device signature');
      await introduce(a, b);
      const env = await a.sealDirect(TOPIC, enc('count me'), 'bob', T0);
      const opened = await countCrypto(() => b.open(TOPIC, env, T0));
      assert.ok(opened.value.ok);
      assert.deepEqual([opened.counts.verify, opened.counts.decapsulate], [1, 1]);
    });

    it('I5 an oversized announcement is too-large with no crypto and no peer (default and configured limit)', async () => {
      const receiver = session(bob);
      const payload = await announcementOf(alice);
      const over = concat(payload, new Uint8Array(32 * 1024 + 1 - payload.length));
      for (const [what, s, bytes] of [
        ['default limit, valid prefix', receiver, over],
        ['default limit, garbage', receiver, new Uint8Array(32 * 1024 + 1).fill(0xff)],
        ['configured limit', session(bob, { limits: { maxAnnouncementBytes: payload.length - 1 } }), payload],
      ] as const) {
        const { value, total } = await countCrypto(() => s.handleAnnouncement('pqc/keys/alice', bytes, T0));
        assertReason(value, 'too-large', what);
        assert.equal(total, 0, what);
        assert.deepEqual(s.listPeers(), [], what);
      }
      // Even an invalid topic is not looked at before the size.
      assertReason(await receiver.handleAnnouncement('pqc/keys/bad id', over, T0), 'too-large');
    });

    it('I5 an announcement carrying a certificate over maxCertificateBytes is too-large with no crypto', async () => {
      const receiver = session(bob, { limits: { maxCertificateBytes: 1024 } });
      const payload = await announcementOf(alice);
      const { value, total } = await countCrypto(() => receiver.handleAnnouncement('pqc/keys/alice', payload, T0));
      assertReason(value, 'too-large');
      assert.equal(total, 0);
    });

    it('I5 an oversized envelope is too-large with no crypto and consumes nothing', async () => {
      const a = session(alice);
      const b = session(bob, { limits: { maxEnvelopeBytes: 1024 } });
      await pair(a, b);
      const env = await a.sealDirect(TOPIC, enc('big'), 'bob', T0);
      assert.ok(env.length > 1024);
      const small = await countCrypto(() => b.open(TOPIC, env, T0));
      assertReason(small.value, 'too-large');
      assert.equal(small.total, 0);
      const b2 = session(bob);
      await introduce(b2, a);
      const huge = await countCrypto(() => b2.open(TOPIC, concat(env, new Uint8Array(1024 * 1024)), T0));
      assertReason(huge.value, 'too-large', 'over the 1 MiB default');
      assert.equal(huge.total, 0);
      assert.ok((await b2.open(TOPIC, env, T0)).ok);
    });

    it('I5 limits are configurable through SessionOptions.limits and out-of-range values are refused', () => {
      const s = session(bob, { limits: { maxEnvelopeBytes: 4096, replayWindow: 128, maxPeers: 3 } });
      assert.equal(s.limits.maxEnvelopeBytes, 4096);
      assert.equal(s.limits.replayWindow, 128);
      assert.equal(s.limits.maxPeers, 3);
      assert.equal(s.limits.maxAnnouncementBytes, 32 * 1024, 'others keep their defaults');
      assert.throws(() => session(bob, { limits: { maxEnvelopeBytes: 10 } }), /maxEnvelopeBytes/);
      assert.throws(() => session(bob, { limits: { replayWindow: 0 } }), /replayWindow/);
      assert.throws(() => session(bob, { limits: { replayWindow: 4097 } }), /replayWindow/);
    });

    it('I5 a sender refuses to produce an envelope over its own limit (local error)', async () => {
      const a = session(alice, { limits: { maxEnvelopeBytes: 4096 } });
      const b = session(bob);
      await pair(a, b);
      await assert.rejects(a.sealDirect(TOPIC, new Uint8Array(4096), 'bob', T0), /exceeds the limit/);
    });

    it('I5 the maxPeers bound refuses new peers (peer-limit) without crypto, while known peers still update', async () => {
      const receiver = session(bob, { limits: { maxPeers: 1 } });
      await introduce(receiver, session(alice));
      const payload = await announcementOf(carol);
      const { value, total } = await countCrypto(() => receiver.handleAnnouncement('pqc/keys/carol', payload, T0));
      assertReason(value, 'peer-limit');
      assert.equal(total, 0);
      const again = await receiver.handleAnnouncement('pqc/keys/alice', await announce(device({ id: 'alice', epoch: 2 })), T0);
      assert.ok(again.ok && again.value.keyEpoch === 2);
      assert.equal(receiver.listPeers().length, 1);
    });
  });
});
