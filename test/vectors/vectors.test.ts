import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { createHash, hkdfSync } from 'node:crypto';
import { cryptoBackend, nobleBackend, useCryptoBackend, type CryptoBackend } from '../../lib/crypto/backend';
import { nativeBackend } from '../../lib/crypto/native';
import { aesGcmOpen } from '../../lib/crypto/symmetric';
import { createIdentity } from '../../lib/session/identity';
import { certificateDigest } from '../../lib/trust/certificates';
import { announcementDigest, decodeAnnouncement } from '../../lib/wire/announcement';
import { parseCaPublicKeyText } from '../../lib/wire/ca-key';
import { decodeCertificate } from '../../lib/wire/certificate';
import { decodeDirectEnvelope, messageDigest } from '../../lib/wire/envelope';
import { decodeTopicKey, topicKeyDigest } from '../../lib/wire/topic-key';
import { decodeTopicEnvelope, topicEnvelopeAad } from '../../lib/wire/topic-envelope';
import { batchLeaf, batchRootDigest, batchRootFromPath } from '../../lib/session/batch-tree';
import { decodeCompactEnvelope } from '../../lib/wire/compact-envelope';
import { decodeBatchManifest } from '../../lib/wire/batch-manifest';
import { VECTORS_PATH, buildCase, vectorRecipientSession, type VectorCase } from './build';

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Every backend the running Node offers; the vectors must come out the same from each. */
const BACKENDS: CryptoBackend[] = [nobleBackend, ...(nativeBackend ? [nativeBackend] : [])];

function loadVectors(): VectorCase[] {
  const file = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { cases?: VectorCase[] };
  return file.cases ?? [];
}

describe('test vectors (docs/PROTOCOL.md §9)', function () {
  this.timeout(120_000);
  const cases = loadVectors();

  it('the vector file is present and not empty', () => {
    assert.ok(cases.length >= 3, `expected at least 3 vector cases in ${VECTORS_PATH}, found ${cases.length}`);
  });

  for (const backend of BACKENDS) {
    describe(`backend ${backend.name}`, () => {
      let previous: CryptoBackend;
      before(() => {
        previous = cryptoBackend();
        useCryptoBackend(backend);
      });
      after(() => useCryptoBackend(previous));

      for (const vector of cases) {
        it(`rebuilds "${vector.name}" byte for byte`, async () => {
          const rebuilt = await buildCase(vector.name, vector.inputs);
          for (const [field, value] of Object.entries(vector.outputs)) {
            assert.equal((rebuilt.outputs as Record<string, string>)[field], value, `${vector.name}: ${field} differs`);
          }
        });

        it(`"${vector.name}" verifies independently of the builder`, async () => {
          const o = vector.outputs;
          const i = vector.inputs;
          const ca = parseCaPublicKeyText(o.caPublicKeyText);
          assert.ok(ca.ok);
          assert.equal(hex(unhex(o.caPublicKey)), o.caPublicKey);

          const cert = decodeCertificate(unhex(o.certificate));
          assert.ok(cert.ok);
          assert.equal(hex(certificateDigest(cert.value.signedBytes)), o.certificateDigest);
          assert.ok(backend.verify(i.caSigAlgorithm, cert.value.signature, unhex(o.certificateDigest), ca.value.publicKey));

          const ann = decodeAnnouncement(unhex(o.announcement));
          assert.ok(ann.ok);
          assert.equal(hex(announcementDigest(ann.value.deviceId, ann.value.signedBytes)), o.announcementDigest);
          assert.ok(backend.verify(i.sigAlgorithm, ann.value.signature, unhex(o.announcementDigest), unhex(o.senderSigPublicKey)));

          const env = decodeDirectEnvelope(unhex(o.envelope));
          assert.ok(env.ok);
          assert.equal(hex(messageDigest(env.value.senderId, i.envelope.topic, env.value.blob)), o.messageDigest);
          assert.ok(backend.verify(i.sigAlgorithm, env.value.auth.signature, unhex(o.messageDigest), unhex(o.senderSigPublicKey)));

          const recipient = createIdentity({
            deviceId: i.recipient.deviceId, keyEpoch: i.recipient.keyEpoch, kemAlgorithm: i.kemAlgorithm,
            sigAlgorithm: i.sigAlgorithm, seeds: { kem: unhex(i.recipient.kemSeed), sig: unhex(i.recipient.sigSeed) },
          });
          assert.equal(hex(backend.decapsulate(i.kemAlgorithm, env.value.capsule, recipient.kemSecretKey)), o.sharedSecret);
          const plain = aesGcmOpen(unhex(o.messageKey), env.value.nonce, env.value.ciphertext, unhex(o.aad));
          assert.ok(plain);
          assert.equal(hex(plain), i.envelope.data);
        });

        it(`"${vector.name}" is accepted by a strict receiver session`, async () => {
          const i = vector.inputs;
          const o = vector.outputs;
          const session = vectorRecipientSession(vector);
          const now = i.envelope.timestamp;
          const trusted = await session.handleAnnouncement(`pqc/keys/${i.sender.deviceId}`, unhex(o.announcement), now);
          assert.ok(trusted.ok, trusted.ok ? '' : trusted.reason);
          const opened = await session.open(i.envelope.topic, unhex(o.envelope), now);
          assert.ok(opened.ok, opened.ok ? '' : opened.reason);
          assert.equal(hex(opened.value.data), i.envelope.data);
          assert.equal(opened.value.seq, BigInt(i.envelope.seq));

          // Topic mode: the key message installs the topic key, then the envelope opens under it.
          const keyed = await session.handleKeyMessage(o.topicKeyMessageTopic, unhex(o.topicKeyMessage), now);
          assert.ok(keyed.ok, keyed.ok ? '' : keyed.reason);
          assert.equal(keyed.value.serial, BigInt(i.topic.keySerial));
          const topicOpened = await session.open(i.topic.topic, unhex(o.topicEnvelope), now);
          assert.ok(topicOpened.ok, topicOpened.ok ? '' : topicOpened.reason);
          assert.equal(hex(topicOpened.value.data), i.topic.data);
          assert.equal(topicOpened.value.seq, BigInt(i.topic.seq));
        });

        it(`"${vector.name}" topic mode: digests and keys check independently of the builder`, () => {
          const i = vector.inputs;
          const o = vector.outputs;
          const k = decodeTopicKey(unhex(o.topicKeyMessage));
          assert.ok(k.ok);
          assert.equal(hex(topicKeyDigest(k.value.publisherId, o.topicKeyMessageTopic, k.value.signedBytes)), o.topicKeyDigest);
          assert.ok(backend.verify(i.sigAlgorithm, k.value.signature, unhex(o.topicKeyDigest), unhex(o.senderSigPublicKey)));
          const e = decodeTopicEnvelope(unhex(o.topicEnvelope));
          assert.ok(e.ok);
          // The data key straight from node:crypto's HKDF, not through the library (§4.5).
          const dataKey = new Uint8Array(hkdfSync('sha256', unhex(i.topic.topicKey), new Uint8Array(0), 'pqc-iiot:topic-data:v1', 32));
          assert.equal(hex(dataKey), o.topicDataKey);
          assert.equal(hex(topicEnvelopeAad(i.topic.topic, e.value.headerBytes)), o.topicAad);
          assert.equal(hex(messageDigest(e.value.senderId, i.topic.topic, e.value.blob)), o.topicMessageDigest);
          assert.ok(backend.verify(i.sigAlgorithm, e.value.auth.signature, unhex(o.topicMessageDigest), unhex(o.senderSigPublicKey)));
          const plain = aesGcmOpen(unhex(o.topicDataKey), e.value.nonce, e.value.ciphertext, unhex(o.topicAad));
          assert.ok(plain);
          assert.equal(hex(plain), i.topic.data);
        });

        it(`"${vector.name}" compact mode: nonces, AAD, digests and the manifest check independently of the builder (§4.8)`, () => {
          const i = vector.inputs;
          const o = vector.outputs;
          // framed() of §4.1 written out again with node:crypto, not through the library.
          const framed = (label: string, ...parts: Uint8Array[]): string => {
            const h = createHash('sha256');
            const l = Buffer.from(label, 'ascii');
            h.update(Buffer.from([l.length >> 8, l.length & 0xff])).update(l);
            for (const p of parts) {
              const n = Buffer.alloc(4);
              n.writeUInt32BE(p.length);
              h.update(n).update(p);
            }
            return h.digest('hex');
          };
          const keyMessage = decodeTopicKey(unhex(o.compactKeyMessage));
          assert.ok(keyMessage.ok);
          assert.ok(backend.verify(i.sigAlgorithm, keyMessage.value.signature, topicKeyDigest(keyMessage.value.publisherId, o.compactKeyMessageTopic, keyMessage.value.signedBytes), unhex(o.senderSigPublicKey)));
          const topicKeys = [i.topic.topicKey, i.compact.secondTopicKey];
          const envelopes = [o.compactEnvelope0, o.compactEnvelope1];
          const nonces = [o.compactNonce0, o.compactNonce1];
          const aads = [o.compactAad0, o.compactAad1];
          const digests: string[] = [];
          envelopes.forEach((envHex, k) => {
            const bytes = unhex(envHex);
            const e = decodeCompactEnvelope(bytes);
            assert.ok(e.ok, `compact envelope ${k}`);
            assert.equal(e.value.seq, BigInt(i.compact.items[k].seq));
            assert.equal(nonces[k], '00000001' + BigInt(i.compact.items[k].seq).toString(16).padStart(16, '0'));
            assert.equal(framed('pqc-iiot:topic-aad:v1', Buffer.from(i.compact.items[k].topic, 'utf8'), e.value.headerBytes), aads[k]);
            const dataKey = new Uint8Array(hkdfSync('sha256', unhex(topicKeys[k]), new Uint8Array(0), 'pqc-iiot:topic-data:v1', 32));
            const plain = aesGcmOpen(dataKey, unhex(nonces[k]), e.value.ciphertext, unhex(aads[k]));
            assert.ok(plain, `compact envelope ${k} decrypts`);
            assert.equal(hex(plain), i.compact.items[k].data);
            digests.push(framed('pqc-iiot:mqtt-msg:v1', Buffer.from(e.value.senderId, 'ascii'), Buffer.from(i.compact.items[k].topic, 'utf8'), bytes));
          });
          assert.equal(digests.join(''), o.compactMessageDigests);
          const m = decodeBatchManifest(unhex(o.compactManifest));
          assert.ok(m.ok);
          assert.deepEqual(m.value.digests.map(hex), digests);
          assert.equal(framed('pqc-iiot:batch-manifest:v1', m.value.signedBytes), o.compactManifestDigest);
          assert.ok(backend.verify(i.sigAlgorithm, m.value.signature, unhex(o.compactManifestDigest), unhex(o.senderSigPublicKey)));
        });

        it(`"${vector.name}" compact mode is accepted by a strict receiver: held until the manifest, then released once`, async () => {
          const i = vector.inputs;
          const o = vector.outputs;
          const session = vectorRecipientSession(vector);
          const now = i.compact.manifestTimestamp;
          assert.ok((await session.handleAnnouncement(`pqc/keys/${i.sender.deviceId}`, unhex(o.announcement), now)).ok);
          assert.ok((await session.handleKeyMessage(o.topicKeyMessageTopic, unhex(o.topicKeyMessage), now)).ok);
          assert.ok((await session.handleKeyMessage(o.compactKeyMessageTopic, unhex(o.compactKeyMessage), now)).ok);
          const first = session.open(i.compact.items[0].topic, unhex(o.compactEnvelope0), now);
          const manifest = await session.handleManifest(o.compactManifestTopic, unhex(o.compactManifest), now);
          assert.ok(manifest.ok, manifest.ok ? '' : manifest.reason);
          assert.equal(manifest.value.released, 1);
          const opened = [await first, await session.open(i.compact.items[1].topic, unhex(o.compactEnvelope1), now)];
          opened.forEach((r, k) => {
            assert.ok(r.ok, r.ok ? '' : r.reason);
            assert.equal(hex(r.value.data), i.compact.items[k].data);
            assert.equal(r.value.timestamp, now);
          });
        });

        it(`"${vector.name}" batch: each envelope verifies alone through its own path (§4.7)`, () => {
          const o = vector.outputs;
          const i = vector.inputs;
          const chunks = (h: string): string[] => h.match(/.{64}/g) ?? [];
          const digests = chunks(o.batchMessageDigests);
          const leaves = chunks(o.batchLeaves);
          assert.equal(digests.length, 3);
          const envelopes = [o.batchEnvelope0, o.batchEnvelope1, o.batchEnvelope2];
          const paths = [o.batchPath0, o.batchPath1, o.batchPath2];
          envelopes.forEach((envHex, k) => {
            const env = decodeDirectEnvelope(unhex(envHex));
            assert.ok(env.ok, `batch envelope ${k}`);
            const auth = env.value.auth;
            assert.equal(auth.kind, 'batch');
            if (auth.kind !== 'batch') return;
            assert.equal(auth.leafIndex, k);
            assert.equal(auth.leafCount, 3);
            assert.equal(auth.path.map(hex).join(''), paths[k]);
            const digest = messageDigest(env.value.senderId, i.batch.items[k].topic, env.value.blob);
            assert.equal(hex(digest), digests[k]);
            assert.equal(hex(batchLeaf(k, digest)), leaves[k]);
            const root = batchRootFromPath(digest, auth.leafIndex, auth.leafCount, auth.path);
            assert.ok(root);
            assert.equal(hex(root), o.batchRoot);
            assert.equal(hex(batchRootDigest(env.value.senderId, root, 3)), o.batchRootDigest);
            assert.ok(backend.verify(i.sigAlgorithm, auth.signature, unhex(o.batchRootDigest), unhex(o.senderSigPublicKey)));
            // Another topic gives another root: the signature does not cover it (I3).
            const moved = batchRootFromPath(messageDigest(env.value.senderId, 'plant/other', env.value.blob), k, 3, auth.path);
            assert.notEqual(hex(moved!), o.batchRoot);
          });
        });

        it(`"${vector.name}" batch is accepted by a strict receiver, in reverse order`, async () => {
          const i = vector.inputs;
          const o = vector.outputs;
          const session = vectorRecipientSession(vector);
          const now = i.batch.items[2].timestamp;
          assert.ok((await session.handleAnnouncement(`pqc/keys/${i.sender.deviceId}`, unhex(o.announcement), now)).ok);
          for (const k of [2, 1, 0]) {
            const opened = await session.open(i.batch.items[k].topic, unhex([o.batchEnvelope0, o.batchEnvelope1, o.batchEnvelope2][k]), now);
            assert.ok(opened.ok, opened.ok ? '' : opened.reason);
            assert.equal(hex(opened.value.data), i.batch.items[k].data);
          }
          // One signature check for the three envelopes.
          assert.equal(session.throughputStats.verifications, 1);
        });
      }
    });
  }
});
