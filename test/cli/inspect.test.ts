/**
 * `pqc-iiot inspect` on the topic-mode and compact-mode structures (docs/PROTOCOL.md §2.7–2.11):
 * topic key messages (0x06), topic envelopes (0x07, auth kinds 0x01 and 0x02), compact topic
 * envelopes (0x08) and batch manifests (0x09), taken from test/vectors/vectors.json (every case)
 * and from live sessions; printed fields are checked against the vector inputs and outputs, and
 * bad input of each type must end in the receiver's reason code and exit 1, never a stack trace.
 * Neither key material nor plaintext may appear in what is printed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { REASON_CODES, type Reason } from '../../lib/index';
import { EXIT } from '../../lib/cli/main';
import { KEM_ALGORITHMS, SIG_ALGORITHMS } from '../../lib/crypto/algorithms';
import { sha256 } from '../../lib/crypto/symmetric';
import { decodeDirectEnvelope, encodeEnvelope } from '../../lib/wire/envelope';
import { decodeTopicEnvelope } from '../../lib/wire/topic-envelope';
import { HOUR, T0, certify, concat, keysFor, pair, prng, randomBytes, session, withByte } from '../lib/fixtures';
import { VECTORS_PATH, type VectorCase } from '../vectors/build';
import { CliSandbox, fails, ok, type CliResult } from './cli-harness';

interface Inspected {
  type: string;
  [field: string]: unknown;
}
interface Summary {
  length: number;
  sha256: string;
}
interface Wrap {
  recipientId: string;
  recipientKeyId: string;
  kemAlgorithm: string;
  capsule: Summary | string;
  wrappedKey: Summary | string;
}
interface Auth {
  kind: string;
  kindByte: string;
  leafIndex?: number;
  leafCount?: number;
  pathLength?: number;
  path?: string[];
  signature: Summary | string;
}

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const json = (r: CliResult): Inspected => JSON.parse(r.stdout) as Inspected;
const iso = (ms: number): string => `${new Date(ms).toISOString()} (${ms})`;
/** What a byte field longer than 32 bytes prints as without --full. */
const summary = (b: Uint8Array): Summary => ({ length: b.length, sha256: hex(sha256(b)) });
/** The 32-byte digests of a vector output, in order. */
const chunks = (s: string, bytes: number): string[] => s.match(new RegExp(`.{${bytes * 2}}`, 'g')) ?? [];

function loadVectors(): VectorCase[] {
  return (JSON.parse(fs.readFileSync(VECTORS_PATH, 'utf8')) as { cases?: VectorCase[] }).cases ?? [];
}

/** The signature printed for an algorithm: its exact length for ML-DSA, 1..666 for Falcon. */
function assertSignature(printed: unknown, alg: keyof typeof SIG_ALGORITHMS, what: string): void {
  const s = printed as Summary;
  assert.match(s.sha256, /^[0-9a-f]{64}$/, `${what}: signature summarised`);
  if (alg === 'Falcon-512') assert.ok(s.length >= 1 && s.length <= SIG_ALGORITHMS[alg].maxSignature, `${what}: ${s.length}`);
  else assert.equal(s.length, SIG_ALGORITHMS[alg].maxSignature, what);
}

describe('pqc-iiot inspect: topic keys, topic and compact envelopes, batch manifests', function () {
  this.timeout(120_000);
  const box = new CliSandbox(T0);
  const cases = loadVectors();
  /** Every stdout of this suite, checked at the end for keys and plaintext. */
  const printed: string[] = [];
  const inspect = async (argv: string[], stdin?: Uint8Array | string): Promise<Inspected> => {
    const r = ok(await box.run(['inspect', ...argv], stdin === undefined ? {} : { stdin }));
    printed.push(r.stdout, r.stderr);
    return json(r);
  };

  after(() => box.finish(() => {
    // The topic keys, data keys and plaintexts of the vectors are never printed, whole or in part.
    const needles = cases.flatMap((c) => [
      c.inputs.topic.topicKey, c.outputs.topicDataKey, c.inputs.compact.secondTopicKey,
      c.inputs.topic.data, ...c.inputs.compact.items.map((i) => i.data), ...c.inputs.batch.items.map((i) => i.data),
    ]).flatMap((h) => [h, h.slice(0, 32), Buffer.from(h, 'hex').toString('utf8'), Buffer.from(h, 'hex').toString('base64')]);
    assert.ok(printed.length > 0);
    const leaks = printed.filter((out) => needles.some((n) => out.includes(n)));
    assert.equal(leaks.length, 0, 'a topic key or a plaintext appeared in inspect output');
  }));

  it('the vector file holds the three cases', () => {
    assert.ok(cases.length >= 3, `expected at least 3 vector cases in ${VECTORS_PATH}, found ${cases.length}`);
  });

  for (const c of cases) {
    describe(`vector case "${c.name}" (${c.inputs.kemAlgorithm} + ${c.inputs.sigAlgorithm})`, () => {
      const i = c.inputs;
      const o = c.outputs;
      const sender = i.sender.deviceId;
      const capsuleBytes = KEM_ALGORITHMS[i.kemAlgorithm].cipherText;

      it('topic key message (0x06): publisher, key, topic, serial, times, wraps; no key material', async () => {
        const bytes = unhex(o.topicKeyMessage);
        fs.writeFileSync(box.path(`${c.name}.topic-key.bin`), bytes);
        const k = await inspect([`${c.name}.topic-key.bin`]);
        assert.equal(k.type, 'topicKey');
        assert.equal(k.size, bytes.length);
        assert.equal(k.version, 1);
        assert.equal(k.encoding, undefined, 'raw bytes');
        assert.equal(k.publisherId, sender);
        assert.equal(k.publisherKeyEpoch, i.sender.keyEpoch);
        assert.equal(k.publisherKeyId, o.senderKeyId);
        assert.equal(k.sigAlgorithm, i.sigAlgorithm);
        assert.equal(k.topic, i.topic.topic);
        assert.equal(`${sender}/${String(k.topic)}`, o.topicKeyMessageTopic.replace(/^pqc\/topic-keys\//, ''));
        assert.equal(k.keySerial, i.topic.keySerial, 'u64 beyond 2^53 printed exactly, as a string');
        assert.equal(k.notAfter, 'none (0)', 'no fixed end is not shown as 1970');
        assert.equal(k.issuedAt, iso(i.topic.issuedAt));
        assert.equal(k.wrapCount, 1);
        const wraps = k.wraps as Wrap[];
        assert.equal(wraps.length, 1);
        assert.equal(wraps[0].recipientId, i.recipient.deviceId);
        assert.equal(wraps[0].recipientKeyId, o.recipientKeyId);
        assert.equal(wraps[0].kemAlgorithm, i.kemAlgorithm);
        assert.equal((wraps[0].capsule as Summary).length, capsuleBytes);
        assert.equal((wraps[0].wrappedKey as Summary).length, 48);
        assertSignature(k.signature, i.sigAlgorithm, 'key message');
        // Nothing that only repeats other bytes (what the signature covers).
        assert.equal(k.signedBytes, undefined);
        // The same message as hex text, as `mosquitto_sub -F %x` prints it.
        assert.deepEqual(await inspect(['-'], o.topicKeyMessage + '\n'), { encoding: 'hex', ...k });

        // --full prints the capsule and the wrapped key as they are on the wire (both public).
        const full = await inspect(['--full', `${c.name}.topic-key.bin`]);
        const fullWrap = (full.wraps as Wrap[])[0];
        assert.match(String(fullWrap.capsule), new RegExp(`^[0-9a-f]{${capsuleBytes * 2}}$`));
        assert.ok(o.topicKeyMessage.includes(String(fullWrap.capsule)) && o.topicKeyMessage.includes(String(fullWrap.wrappedKey)));
        assert.equal(String(fullWrap.wrappedKey).length, 96);
        assert.ok(o.topicKeyMessage.endsWith(String(full.signature)));

        // The compact section's key message: another topic and serial, raw bytes on stdin.
        const second = await inspect(['-'], unhex(o.compactKeyMessage));
        assert.equal(second.type, 'topicKey');
        assert.equal(second.topic, i.compact.items[1].topic);
        assert.equal(second.keySerial, i.compact.secondKeySerial);
        assert.equal((second.wraps as Wrap[])[0].recipientId, i.recipient.deviceId);
      });

      it('topic envelope (0x07): sender, key, serial, seq, time, nonce, sizes, auth kind 0x01', async () => {
        const bytes = unhex(o.topicEnvelope);
        fs.writeFileSync(box.path(`${c.name}.topic-envelope.bin`), bytes);
        const e = await inspect([`${c.name}.topic-envelope.bin`]);
        assert.equal(e.type, 'topicEnvelope');
        assert.equal(e.size, bytes.length);
        assert.equal(e.senderId, sender);
        assert.equal(e.senderKeyEpoch, i.sender.keyEpoch);
        assert.equal(e.senderKeyId, o.senderKeyId);
        assert.equal(e.sigAlgorithm, i.sigAlgorithm);
        assert.equal(e.keySerial, i.topic.keySerial);
        assert.equal(e.seq, i.topic.seq);
        assert.equal(e.timestamp, iso(i.topic.timestamp));
        assert.equal(e.nonce, i.topic.nonce);
        assert.equal((e.ciphertext as Summary).length, i.topic.data.length / 2 + 16, 'data + GCM tag');
        const auth = e.auth as Auth;
        assert.equal(auth.kind, 'signature');
        assert.equal(auth.kindByte, '0x01');
        assert.equal(auth.leafIndex, undefined);
        assertSignature(auth.signature, i.sigAlgorithm, 'envelope');
        assert.equal(e.blob, undefined);
        assert.equal(e.headerBytes, undefined);
        // base64 text, as some MQTT tools print payloads.
        assert.deepEqual(await inspect(['-'], Buffer.from(bytes).toString('base64')), { encoding: 'base64', ...e });
      });

      it('topic envelope (0x07) with a batch trailer (auth kind 0x02): leaf index, leaf count, path length', async () => {
        // The vector's topic envelope, its trailer replaced by the real kind-0x02 trailer of the
        // vector's third batch envelope (leaf 2 of 3: one hash).
        const topic = decodeTopicEnvelope(unhex(o.topicEnvelope));
        const batch = decodeDirectEnvelope(unhex(o.batchEnvelope2));
        assert.ok(topic.ok && batch.ok);
        const bytes = encodeEnvelope(topic.value.blob, batch.value.auth);
        const e = await inspect(['-'], bytes);
        assert.equal(e.type, 'topicEnvelope');
        assert.equal(e.size, bytes.length);
        assert.equal(e.seq, i.topic.seq);
        const auth = e.auth as Auth;
        assert.deepEqual({ ...auth, signature: undefined }, {
          kind: 'batch', kindByte: '0x02', leafIndex: 2, leafCount: 3, pathLength: 1, path: [o.batchPath2], signature: undefined,
        });
        assertSignature(auth.signature, i.sigAlgorithm, 'batch root signature');
      });

      it('direct envelope (0x03) with a batch trailer: the trailer prints the same way', async () => {
        const e = await inspect(['-'], unhex(o.batchEnvelope1));
        assert.equal(e.type, 'directEnvelope');
        assert.equal(e.seq, i.batch.items[1].seq);
        const auth = e.auth as Auth;
        assert.equal(auth.kind, 'batch');
        assert.equal(auth.kindByte, '0x02');
        assert.equal(auth.leafIndex, 1);
        assert.equal(auth.leafCount, 3);
        assert.equal(auth.pathLength, 2);
        assert.deepEqual(auth.path, chunks(o.batchPath1, 32));
        assertSignature(auth.signature, i.sigAlgorithm, 'batch root signature');
        const plain = await inspect(['-'], unhex(o.envelope));
        assert.equal((plain.auth as Auth).kind, 'signature');
        assert.equal((plain.auth as Auth).kindByte, '0x01');
      });

      it('compact topic envelopes (0x08): sender, serial, seq, ciphertext size; authenticated by the manifest', async () => {
        const serials = [i.topic.keySerial, i.compact.secondKeySerial];
        for (const n of [0, 1]) {
          const bytes = unhex(n === 0 ? o.compactEnvelope0 : o.compactEnvelope1);
          const e = await inspect(['-'], bytes);
          assert.equal(e.type, 'compactEnvelope');
          assert.equal(e.size, bytes.length);
          assert.equal(e.senderId, sender);
          assert.equal(e.keySerial, serials[n]);
          assert.equal(e.seq, i.compact.items[n].seq);
          const ctBytes = i.compact.items[n].data.length / 2 + 16;
          // The ciphertext ends the envelope: the summary is of exactly those bytes.
          assert.deepEqual(e.ciphertext, summary(bytes.subarray(bytes.length - ctBytes)));
          assert.equal(bytes.length, 4 + 1 + sender.length + 8 + 8 + 2 + ctBytes);
          assert.match(String(e.auth), /batch manifest/);
          for (const absent of ['senderKeyId', 'timestamp', 'nonce', 'headerBytes']) assert.equal(e[absent], undefined, absent);
        }
      });

      it('batch manifest (0x09): sender, key, time, digest count and digests', async () => {
        const bytes = unhex(o.compactManifest);
        fs.writeFileSync(box.path(`${c.name}.manifest.hex`), o.compactManifest.replace(/(.{64})/g, '$1\n'));
        const m = await inspect([`${c.name}.manifest.hex`]);
        assert.equal(m.encoding, 'hex');
        assert.equal(m.type, 'batchManifest');
        assert.equal(m.size, bytes.length);
        assert.equal(m.senderId, sender);
        assert.equal(o.compactManifestTopic, `pqc/batches/${String(m.senderId)}`);
        assert.equal(m.senderKeyEpoch, i.sender.keyEpoch);
        assert.equal(m.senderKeyId, o.senderKeyId);
        assert.equal(m.sigAlgorithm, i.sigAlgorithm);
        assert.equal(m.timestamp, iso(i.compact.manifestTimestamp));
        assert.equal(m.digestCount, 2);
        assert.deepEqual(m.digests, chunks(o.compactMessageDigests, 32));
        assertSignature(m.signature, i.sigAlgorithm, 'manifest');
        assert.equal(m.signedBytes, undefined);
      });

      it('with --ca, says a CA cannot verify these (sender keys do) and exits 0', async () => {
        const ca = o.caPublicKeyText;
        for (const [name, bytes] of [
          ['topicKey', o.topicKeyMessage], ['topicEnvelope', o.topicEnvelope],
          ['compactEnvelope', o.compactEnvelope0], ['batchManifest', o.compactManifest],
        ]) {
          const r = await inspect(['-', '--ca', ca], unhex(bytes));
          assert.equal(r.type, name);
          const v = r.verification as { ok: boolean; note: string };
          assert.equal(v.ok, true, name);
          assert.match(v.note, /^not applicable: /, name);
        }
      });
    });
  }

  it('a live topic key for two subscribers with a schedule end, and batch-signed topic envelopes', async () => {
    const ids = ['insp-pub', 'insp-sub-1', 'insp-sub-2'].map((id) => keysFor({ id }));
    // The suite's final check then also proves these secret keys were never printed.
    for (const id of ids) for (const sk of [id.kemSecretKey, id.sigSecretKey]) box.secrets.add(Buffer.from(sk).toString('base64'));
    const pub = session(certify(ids[0], { roles: 'pub', topics: ['plant/#'] }));
    const subs = ids.slice(1).map((id) => session(certify(id, { roles: 'sub', topics: ['plant/#'] })));
    for (const s of subs) await pair(pub, s);
    const topic = 'plant/line-9/flow';
    const now = T0 + 10 * 60_000;
    const strategy = { kind: 'schedule', epochMs: T0, intervalMs: HOUR } as const;
    const first = await pub.sealTopic(topic, Buffer.from('first'), now, strategy);
    assert.ok(first.keyMessage, 'the first message creates the key');

    const k = await inspect(['-'], first.keyMessage.payload);
    assert.equal(k.type, 'topicKey');
    assert.equal(k.publisherId, 'insp-pub');
    assert.equal(k.topic, topic);
    assert.equal(String(k.keySerial), first.keySerial.toString());
    assert.equal(k.notAfter, iso(T0 + HOUR), 'the schedule end');
    assert.equal(k.issuedAt, iso(now));
    assert.equal(k.wrapCount, 2);
    assert.deepEqual((k.wraps as Wrap[]).map((w) => w.recipientId).sort(), ['insp-sub-1', 'insp-sub-2']);
    assert.deepEqual(
      (k.wraps as Wrap[]).map((w) => w.recipientKeyId).sort(),
      ids.slice(1).map((id) => hex(id.keyId)).sort(),
    );

    // Sealed together: one batch of three, each envelope carrying its leaf and path.
    const sealed = await Promise.all([0, 1, 2].map((n) => pub.sealTopic(topic, Buffer.from(`reading ${n}`), now, strategy)));
    for (const [n, s] of sealed.entries()) {
      assert.equal(s.keyMessage, undefined, 'same key');
      const e = await inspect(['-'], s.envelope);
      assert.equal(e.type, 'topicEnvelope');
      assert.equal(e.senderId, 'insp-pub');
      assert.equal(e.keySerial, k.keySerial);
      assert.equal(e.timestamp, iso(now));
      const auth = e.auth as Auth;
      assert.equal(auth.kind, 'batch');
      assert.equal(auth.leafIndex, n);
      assert.equal(auth.leafCount, 3);
      assert.equal(auth.pathLength, n === 2 ? 1 : 2);
      assert.equal(auth.path?.length, auth.pathLength);
    }
  });

  describe('bad input: the reason code a receiver would give, exit 1, nothing on stdout', () => {
    const v = cases[0]?.outputs;
    const sender = cases[0]?.inputs.sender.deviceId ?? '';
    /** Offset of the first byte after the header and sender id. */
    const afterId = 4 + 1 + sender.length;

    async function rejects(what: string, bytes: Uint8Array | string, reason: Reason): Promise<void> {
      const r = await box.run(['inspect', '-'], { stdin: bytes });
      printed.push(r.stdout, r.stderr);
      fails(r, EXIT.failure, new RegExp(`rejected: ${reason}: `));
      assert.equal(r.stdout, '', `${what}: nothing on stdout`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
    }

    function structures(): Array<[string, Uint8Array]> {
      return [
        ['topic key message', unhex(v.topicKeyMessage)],
        ['topic envelope', unhex(v.topicEnvelope)],
        ['compact envelope', unhex(v.compactEnvelope0)],
        ['batch manifest', unhex(v.compactManifest)],
      ];
    }

    it('truncated, cut after the header, trailing bytes, wrong version — raw and as hex', async () => {
      for (const [what, bytes] of structures()) {
        await rejects(`${what} cut by one byte`, bytes.subarray(0, bytes.length - 1), 'truncated');
        await rejects(`${what} cut in half`, bytes.subarray(0, bytes.length >> 1), 'truncated');
        await rejects(`${what} header only`, bytes.subarray(0, 4), 'truncated');
        await rejects(`${what} shorter than the header`, bytes.subarray(0, 3), 'truncated');
        await rejects(`${what} with a trailing byte`, concat(bytes, Uint8Array.of(0)), 'trailing-data');
        await rejects(`${what} version 2`, withByte(bytes, 2, 0x02), 'bad-version');
        await rejects(`${what} version 0`, withByte(bytes, 2, 0x00), 'bad-version');
        await rejects(`${what} truncated, as hex`, hex(bytes.subarray(0, bytes.length - 1)), 'truncated');
        await rejects(`${what} wrong version, as base64`, Buffer.from(withByte(bytes, 2, 0x07)).toString('base64'), 'bad-version');
      }
    });

    it('bad fields: algorithm, sender id, auth kind, leaf index, manifest count, ciphertext length', async () => {
      const key = unhex(v.topicKeyMessage);
      // publisher id, epoch (4), key id (16), then the signature algorithm.
      await rejects('topic key with an unknown signature algorithm', withByte(key, afterId + 4 + 16, 0x7e), 'unknown-algorithm');
      await rejects('topic key with an empty publisher id', withByte(key, 4, 0), 'bad-id');
      await rejects('topic key with a bad character in the id', withByte(key, 5, 0x2f), 'bad-id');

      const env = unhex(v.topicEnvelope);
      const decoded = decodeTopicEnvelope(env);
      assert.ok(decoded.ok);
      const trailer = decoded.value.blob.length;
      await rejects('topic envelope with auth kind 0x03', withByte(env, trailer, 0x03), 'bad-field');
      await rejects('topic envelope with auth kind 0x00', withByte(env, trailer, 0x00), 'bad-field');
      const batch = decodeDirectEnvelope(unhex(v.batchEnvelope2));
      assert.ok(batch.ok);
      const batched = encodeEnvelope(decoded.value.blob, batch.value.auth);
      await rejects('batch trailer with leaf index = leaf count', withByte(batched, trailer + 1, 3), 'bad-field');
      await rejects('batch trailer with leaf count 0', withByte(batched, trailer + 2, 0), 'bad-field');
      await rejects('batch trailer without its path', concat(batched.subarray(0, trailer + 3), batched.subarray(trailer + 3 + 32)), 'bad-length');

      const compact = unhex(v.compactEnvelope0);
      // header, id, key serial (8), seq (8), then the u16 ciphertext length.
      const lengthAt = afterId + 16;
      await rejects('compact envelope with a ciphertext shorter than a tag', concat(compact.subarray(0, lengthAt), Uint8Array.of(0, 15), new Uint8Array(15)), 'bad-length');
      await rejects('compact envelope with a sender id too long', withByte(compact, 4, 200), 'bad-id');

      const manifest = unhex(v.compactManifest);
      // id, epoch (4), key id (16), sig alg (1), timestamp (8), then the u8 count.
      const countAt = afterId + 4 + 16 + 1 + 8;
      assert.equal(manifest[countAt], 2);
      await rejects('manifest listing 0 digests', withByte(manifest, countAt, 0), 'bad-field');
      await rejects('manifest claiming more digests than it holds', withByte(manifest, countAt, 200), 'truncated');
      await rejects('manifest with an unknown algorithm', withByte(manifest, countAt - 9, 0x00), 'unknown-algorithm');
    });

    it('random bytes, with and without a valid header of each type: a reason code, never a crash', async () => {
      const rand = prng(0x1b5);
      await rejects('random bytes', Uint8Array.of(0x13, 0x37, 0xc0, 0xde, 0x00, 0xff), 'bad-magic');
      const seen = new Set<string>();
      for (const type of [0x06, 0x07, 0x08, 0x09]) {
        for (let n = 0; n < 25; n++) {
          const bytes = concat(Uint8Array.of(0x50, 0x51, 0x01, type), randomBytes(rand, 1 + Math.floor(rand() * 600)));
          const r = await box.run(['inspect', '-'], { stdin: bytes });
          printed.push(r.stdout, r.stderr);
          assert.equal(r.code, EXIT.failure, `type 0x0${type}, try ${n}: ${r.stderr}`);
          assert.equal(r.stdout, '');
          const m = /^pqc-iiot inspect: rejected: ([a-z-]+): [^\n]+\n$/.exec(r.stderr);
          assert.ok(m, `type 0x0${type}, try ${n}: ${r.stderr}`);
          assert.ok(REASON_CODES.includes(m[1] as Reason), m[1]);
          seen.add(m[1]);
        }
      }
      // Random ids are mostly invalid; some get further.
      assert.ok(seen.has('bad-id'), [...seen].join(', '));
    });
  });
});
