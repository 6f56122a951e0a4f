/**
 * Builds the deterministic test vectors (docs/PROTOCOL.md §9) from fixed seeds and randomness,
 * so another implementation (device firmware in C or Rust) can be checked byte for byte.
 * `node dist/test/vectors/build.js --write` rewrites test/vectors/vectors.json; the vectors
 * test rebuilds them with every available crypto backend and compares.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KEM_ALGORITHMS, type KemAlgorithm, type SigAlgorithm } from '../../lib/crypto/algorithms';
import { cryptoBackend } from '../../lib/crypto/backend';
import { sha256 } from '../../lib/crypto/symmetric';
import { buildAnnouncement } from '../../lib/session/announce';
import { deriveMessageKey, sealDirectEnvelope } from '../../lib/session/direct';
import { createCa, createIdentity, issueCertificate, type IdentityBundle } from '../../lib/session/identity';
import { certificateDigest } from '../../lib/trust/certificates';
import { caPublicKeyToText, encodeCaPublicKey } from '../../lib/wire/ca-key';
import { announcementDigest, decodeAnnouncement } from '../../lib/wire/announcement';
import { decodeCertificate } from '../../lib/wire/certificate';
import { toHex } from '../../lib/wire/common';
import { decodeDirectEnvelope, encodeEnvelope, encodeEnvelopeBlob, envelopeAad, messageDigest } from '../../lib/wire/envelope';
import { BatchSigner, type BatchScheduler } from '../../lib/session/batch';
import { batchLeaf, batchRootDigest, buildBatchTree } from '../../lib/session/batch-tree';
import { deriveTopicDataKey, wrapTopicKey } from '../../lib/session/topic-keys';
import { aesGcmSeal } from '../../lib/crypto/symmetric';
import { encodeTopicKey, encodeTopicKeyBody, topicKeyDigest } from '../../lib/wire/topic-key';
import { encodeTopicEnvelopeHeader, topicEnvelopeAad } from '../../lib/wire/topic-envelope';
import { encodeCompactEnvelope, encodeCompactEnvelopeHeader } from '../../lib/wire/compact-envelope';
import { encodeBatchManifest, encodeBatchManifestBody, manifestDigest } from '../../lib/wire/batch-manifest';
import { compactNonce } from '../../lib/session/topic-keys';
import { SoftwareProvider } from '../../lib/session/provider';
import { SecureSession } from '../../lib/session/session';

export interface VectorCase {
  name: string;
  inputs: {
    caSigAlgorithm: SigAlgorithm;
    caSeed: string;
    kemAlgorithm: KemAlgorithm;
    sigAlgorithm: SigAlgorithm;
    sender: { deviceId: string; keyEpoch: number; kemSeed: string; sigSeed: string };
    recipient: { deviceId: string; keyEpoch: number; kemSeed: string; sigSeed: string };
    certificate: { roles: 'pub' | 'sub' | 'both'; topics: string[]; notBefore: number; notAfter: number; signingRandom: string };
    recipientCertificate: { roles: 'pub' | 'sub' | 'both'; topics: string[]; notBefore: number; notAfter: number; signingRandom: string };
    announcement: { issuedAt: number; signingRandom: string };
    envelope: { topic: string; data: string; seq: string; timestamp: number; encapsulationRandom: string; nonce: string; signingRandom: string };
    /** Topic mode (§2.8–2.9, §4.5): one key message for the recipient, one envelope under it. */
    topic: {
      topic: string; data: string; topicKey: string; keySerial: string; notAfter: number; issuedAt: number;
      wrapEncapsulationRandom: string; keySigningRandom: string; seq: string; timestamp: number; nonce: string; signingRandom: string;
    };
    /**
     * Compact mode (§2.10–2.11, §4.8): two compact envelopes on two topics and one manifest over
     * both. The first is under the topic-mode key above; the second topic gets its own key message.
     */
    compact: {
      items: Array<{ topic: string; data: string; seq: string }>;
      secondTopicKey: string; secondKeySerial: string; secondWrapEncapsulationRandom: string; secondKeySigningRandom: string;
      manifestTimestamp: number; signingRandom: string;
    };
    /** Three direct envelopes sealed together under one batch signature (§4.7). */
    batch: {
      items: Array<{ topic: string; data: string; seq: string; timestamp: number; encapsulationRandom: string; nonce: string }>;
      signingRandom: string;
    };
  };
  outputs: {
    caPublicKey: string;
    caPublicKeyText: string;
    senderKemPublicKey: string;
    senderSigPublicKey: string;
    senderKeyId: string;
    recipientKemPublicKey: string;
    recipientKeyId: string;
    certificateDigest: string;
    certificate: string;
    announcementDigest: string;
    announcement: string;
    capsule: string;
    sharedSecret: string;
    messageKey: string;
    aad: string;
    messageDigest: string;
    envelope: string;
    topicKeyMessageTopic: string;
    topicKeyDigest: string;
    topicKeyMessage: string;
    topicDataKey: string;
    topicAad: string;
    topicMessageDigest: string;
    topicEnvelope: string;
    compactKeyMessageTopic: string;
    compactKeyMessage: string;
    compactNonce0: string;
    compactNonce1: string;
    compactAad0: string;
    compactAad1: string;
    compactEnvelope0: string;
    compactEnvelope1: string;
    compactMessageDigests: string;
    compactManifestTopic: string;
    compactManifestDigest: string;
    compactManifest: string;
    batchMessageDigests: string;
    batchLeaves: string;
    batchRoot: string;
    batchRootDigest: string;
    batchPath0: string;
    batchPath1: string;
    batchPath2: string;
    batchEnvelope0: string;
    batchEnvelope1: string;
    batchEnvelope2: string;
  };
}

const hex = (b: Uint8Array): string => toHex(b);
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
/** Fixed "random" bytes: SHA-256 of a label, repeated to length. */
function fixedBytes(label: string, n: number): string {
  const out = new Uint8Array(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = sha256(new TextEncoder().encode(`${label}#${block}`));
    for (let j = 0; j < h.length && i < n; j++) out[i++] = h[j];
  }
  return hex(out);
}

export function vectorInputs(): VectorCase['inputs'][] {
  const t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
  const day = 86_400_000;
  const make = (name: string, ca: SigAlgorithm, kem: KemAlgorithm, sig: SigAlgorithm, kemSeedLen = 64): VectorCase['inputs'] => {
    const sigSeedLen = sig === 'Falcon-512' ? 48 : 32;
    const caSeedLen = ca === 'Falcon-512' ? 48 : 32;
    return {
      caSigAlgorithm: ca,
      caSeed: fixedBytes(`${name}/ca`, caSeedLen),
      kemAlgorithm: kem,
      sigAlgorithm: sig,
      sender: { deviceId: 'sensor-01', keyEpoch: 1, kemSeed: fixedBytes(`${name}/s/kem`, kemSeedLen), sigSeed: fixedBytes(`${name}/s/sig`, sigSeedLen) },
      recipient: { deviceId: 'flow.controller_1', keyEpoch: 3, kemSeed: fixedBytes(`${name}/r/kem`, kemSeedLen), sigSeed: fixedBytes(`${name}/r/sig`, sigSeedLen) },
      certificate: { roles: 'pub', topics: ['plant/+/temperature', 'plant/line-1/#'], notBefore: t0, notAfter: t0 + 365 * day, signingRandom: fixedBytes(`${name}/cert`, 48) },
      recipientCertificate: { roles: 'sub', topics: ['plant/#'], notBefore: t0, notAfter: t0 + 365 * day, signingRandom: fixedBytes(`${name}/rcert`, 48) },
      announcement: { issuedAt: t0 + day, signingRandom: fixedBytes(`${name}/ann`, 48) },
      envelope: {
        topic: 'plant/line-1/temperature',
        data: hex(new TextEncoder().encode('{"temp":25.5,"unit":"C"}')),
        seq: ((BigInt(t0 + day) << 20n) + 7n).toString(),
        timestamp: t0 + day + 1234,
        encapsulationRandom: fixedBytes(`${name}/encaps`, 32),
        nonce: fixedBytes(`${name}/nonce`, 12),
        signingRandom: fixedBytes(`${name}/msg`, 48),
      },
      topic: {
        topic: 'plant/line-1/temperature',
        data: hex(new TextEncoder().encode('{"temp":21.0,"unit":"C"}')),
        topicKey: fixedBytes(`${name}/topic/key`, 32),
        keySerial: ((BigInt(t0 + day) << 20n) + 50n).toString(),
        notAfter: 0,
        issuedAt: t0 + day + 500,
        wrapEncapsulationRandom: fixedBytes(`${name}/topic/wrap`, 32),
        keySigningRandom: fixedBytes(`${name}/topic/keysig`, 48),
        seq: ((BigInt(t0 + day) << 20n) + 51n).toString(),
        timestamp: t0 + day + 600,
        nonce: fixedBytes(`${name}/topic/nonce`, 12),
        signingRandom: fixedBytes(`${name}/topic/msg`, 48),
      },
      compact: {
        items: ['plant/line-1/temperature', 'plant/line-1/pressure'].map((topic, i) => ({
          topic,
          data: hex(new TextEncoder().encode(`{"compact":${i},"value":${30 + i}.5}`)),
          seq: ((BigInt(t0 + day) << 20n) + 61n + BigInt(i)).toString(),
        })),
        secondTopicKey: fixedBytes(`${name}/compact/key`, 32),
        secondKeySerial: ((BigInt(t0 + day) << 20n) + 60n).toString(),
        secondWrapEncapsulationRandom: fixedBytes(`${name}/compact/wrap`, 32),
        secondKeySigningRandom: fixedBytes(`${name}/compact/keysig`, 48),
        manifestTimestamp: t0 + day + 700,
        signingRandom: fixedBytes(`${name}/compact/manifest`, 48),
      },
      batch: {
        items: ['plant/line-1/temperature', 'plant/line-2/temperature', 'plant/line-1/pressure'].map((topic, i) => ({
          topic,
          data: hex(new TextEncoder().encode(`{"reading":${i},"value":${20 + i}.5}`)),
          seq: ((BigInt(t0 + day) << 20n) + 100n + BigInt(i)).toString(),
          timestamp: t0 + day + 2000 + i,
          encapsulationRandom: fixedBytes(`${name}/batch/${i}/encaps`, 32),
          nonce: fixedBytes(`${name}/batch/${i}/nonce`, 12),
        })),
        signingRandom: fixedBytes(`${name}/batch/sig`, 48),
      },
    };
  };
  return [
    make('default', 'ML-DSA-44', 'ML-KEM-768', 'Falcon-512'),
    make('high', 'ML-DSA-65', 'ML-KEM-1024', 'ML-DSA-65'),
    make('falcon-ca', 'Falcon-512', 'ML-KEM-768', 'ML-DSA-44'),
  ];
}

function identityOf(inputs: VectorCase['inputs'], who: 'sender' | 'recipient'): IdentityBundle {
  const p = inputs[who];
  return createIdentity({
    deviceId: p.deviceId, keyEpoch: p.keyEpoch, kemAlgorithm: inputs.kemAlgorithm, sigAlgorithm: inputs.sigAlgorithm,
    seeds: { kem: unhex(p.kemSeed), sig: unhex(p.sigSeed) },
  });
}

export async function buildCase(name: string, inputs: VectorCase['inputs']): Promise<VectorCase> {
  const backend = cryptoBackend();
  const ca = createCa({ sigAlgorithm: inputs.caSigAlgorithm, seed: unhex(inputs.caSeed) });
  const certOpts = (c: VectorCase['inputs']['certificate']) => ({
    roles: c.roles, topics: c.topics, notBefore: c.notBefore, notAfter: c.notAfter, random: unhex(c.signingRandom),
  });
  const sender = issueCertificate(ca, identityOf(inputs, 'sender'), certOpts(inputs.certificate));
  const recipient = issueCertificate(ca, identityOf(inputs, 'recipient'), certOpts(inputs.recipientCertificate));
  const certificate = sender.certificate!;
  const cert = decodeCertificate(certificate);
  if (!cert.ok) throw new Error(`vector certificate does not decode: ${cert.reason}`);

  const announcement = await buildAnnouncement(
    { ...sender, certificate },
    inputs.announcement.issuedAt,
    async (d) => backend.sign(inputs.sigAlgorithm, d, sender.sigSecretKey, unhex(inputs.announcement.signingRandom)),
  );
  const ann = decodeAnnouncement(announcement);
  if (!ann.ok) throw new Error(`vector announcement does not decode: ${ann.reason}`);

  const e = inputs.envelope;
  const { capsule, sharedSecret } = backend.encapsulate(inputs.kemAlgorithm, recipient.kemPublicKey, unhex(e.encapsulationRandom));
  const envelope = await sealDirectEnvelope({
    topic: e.topic,
    data: unhex(e.data),
    sender,
    recipient,
    seq: BigInt(e.seq),
    timestamp: e.timestamp,
    sign: async (d) => backend.sign(inputs.sigAlgorithm, d, sender.sigSecretKey, unhex(e.signingRandom)),
    random: { encapsulation: unhex(e.encapsulationRandom), nonce: unhex(e.nonce) },
  });
  const env = decodeDirectEnvelope(envelope);
  if (!env.ok) throw new Error(`vector envelope does not decode: ${env.reason}`);
  if (hex(env.value.capsule) !== hex(capsule)) throw new Error('capsule differs from a separate encapsulation');
  if (KEM_ALGORITHMS[inputs.kemAlgorithm].cipherText !== capsule.length) throw new Error('capsule length');


  const batch = await buildBatchVector(inputs, sender, recipient);
  const topicMode = await buildTopicVector(inputs, sender, recipient);
  const compact = await buildCompactVector(inputs, sender, recipient);

  return {
    name,
    inputs,
    outputs: {
      caPublicKey: hex(encodeCaPublicKey(ca.publicKey.sigAlgorithm, ca.publicKey.publicKey)),
      caPublicKeyText: caPublicKeyToText(ca.publicKey),
      senderKemPublicKey: hex(sender.kemPublicKey),
      senderSigPublicKey: hex(sender.sigPublicKey),
      senderKeyId: hex(sender.keyId),
      recipientKemPublicKey: hex(recipient.kemPublicKey),
      recipientKeyId: hex(recipient.keyId),
      certificateDigest: hex(certificateDigest(cert.value.signedBytes)),
      certificate: hex(certificate),
      announcementDigest: hex(announcementDigest(sender.deviceId, ann.value.signedBytes)),
      announcement: hex(announcement),
      capsule: hex(capsule),
      sharedSecret: hex(sharedSecret),
      messageKey: hex(deriveMessageKey(sharedSecret)),
      aad: hex(envelopeAad(e.topic, env.value.headerBytes)),
      messageDigest: hex(messageDigest(sender.deviceId, e.topic, env.value.blob)),
      envelope: hex(envelope),
      ...topicMode,
      ...compact,
      ...batch,
    },
  };
}

/** Topic mode, built from the same public functions the session uses, with fixed randomness. */
async function buildTopicVector(inputs: VectorCase['inputs'], sender: IdentityBundle, recipient: IdentityBundle) {
  const backend = cryptoBackend();
  const t = inputs.topic;
  const serial = BigInt(t.keySerial);
  const mek = unhex(t.topicKey);
  const wrap = await wrapTopicKey(mek, recipient, sender.deviceId, t.topic, serial, unhex(t.wrapEncapsulationRandom));
  const body = encodeTopicKeyBody({
    publisherId: sender.deviceId, publisherKeyEpoch: sender.keyEpoch, publisherKeyId: sender.keyId, sigAlgorithm: sender.sigAlgorithm,
    topic: t.topic, keySerial: serial, notAfter: BigInt(t.notAfter), issuedAt: BigInt(t.issuedAt), wraps: [wrap],
  });
  const keyTopic = `pqc/topic-keys/${sender.deviceId}/${t.topic}`;
  const keyDigest = topicKeyDigest(sender.deviceId, keyTopic, body);
  const keyMessage = encodeTopicKey(body, backend.sign(sender.sigAlgorithm, keyDigest, sender.sigSecretKey, unhex(t.keySigningRandom)));
  const seq = BigInt(t.seq);
  const headerBytes = encodeTopicEnvelopeHeader({
    senderId: sender.deviceId, senderKeyEpoch: sender.keyEpoch, senderKeyId: sender.keyId, sigAlgorithm: sender.sigAlgorithm,
    keySerial: serial, seq, timestamp: BigInt(t.timestamp),
  });
  const dataKey = deriveTopicDataKey(mek);
  const aad = topicEnvelopeAad(t.topic, headerBytes);
  const blob = encodeEnvelopeBlob(headerBytes, unhex(t.nonce), aesGcmSeal(dataKey, unhex(t.nonce), unhex(t.data), aad));
  const digest = messageDigest(sender.deviceId, t.topic, blob);
  const signature = backend.sign(sender.sigAlgorithm, digest, sender.sigSecretKey, unhex(t.signingRandom));
  return {
    topicKeyMessageTopic: keyTopic,
    topicKeyDigest: hex(keyDigest),
    topicKeyMessage: hex(keyMessage),
    topicDataKey: hex(dataKey),
    topicAad: hex(aad),
    topicMessageDigest: hex(digest),
    topicEnvelope: hex(encodeEnvelope(blob, { kind: 'signature', signature })),
  };
}

/** Compact mode (§4.8): two compact envelopes on two topics, one manifest listing both digests. */
async function buildCompactVector(
  inputs: VectorCase['inputs'], sender: IdentityBundle, recipient: IdentityBundle,
): Promise<Pick<VectorCase['outputs'], `compact${string}` & keyof VectorCase['outputs']>> {
  const backend = cryptoBackend();
  const c = inputs.compact;
  // Item 0 is under the topic-mode key of inputs.topic (same topic); item 1 under a key of its own.
  if (c.items[0].topic !== inputs.topic.topic) throw new Error('compact item 0 must use the topic-mode topic');
  const secondSerial = BigInt(c.secondKeySerial);
  const secondKey = unhex(c.secondTopicKey);
  const wrap = await wrapTopicKey(secondKey, recipient, sender.deviceId, c.items[1].topic, secondSerial, unhex(c.secondWrapEncapsulationRandom));
  const keyBody = encodeTopicKeyBody({
    publisherId: sender.deviceId, publisherKeyEpoch: sender.keyEpoch, publisherKeyId: sender.keyId, sigAlgorithm: sender.sigAlgorithm,
    topic: c.items[1].topic, keySerial: secondSerial, notAfter: 0n, issuedAt: BigInt(c.manifestTimestamp - 100), wraps: [wrap],
  });
  const keyTopic = `pqc/topic-keys/${sender.deviceId}/${c.items[1].topic}`;
  const keyMessage = encodeTopicKey(keyBody, backend.sign(sender.sigAlgorithm, topicKeyDigest(sender.deviceId, keyTopic, keyBody), sender.sigSecretKey, unhex(c.secondKeySigningRandom)));
  const keys = [
    { serial: BigInt(inputs.topic.keySerial), dataKey: deriveTopicDataKey(unhex(inputs.topic.topicKey)) },
    { serial: secondSerial, dataKey: deriveTopicDataKey(secondKey) },
  ];
  const sealed = c.items.map((item, i) => {
    const seq = BigInt(item.seq);
    const headerBytes = encodeCompactEnvelopeHeader({ senderId: sender.deviceId, keySerial: keys[i].serial, seq });
    const nonce = compactNonce(seq);
    const aad = topicEnvelopeAad(item.topic, headerBytes);
    const envelope = encodeCompactEnvelope(headerBytes, aesGcmSeal(keys[i].dataKey, nonce, unhex(item.data), aad));
    return { nonce, aad, envelope, digest: messageDigest(sender.deviceId, item.topic, envelope) };
  });
  const body = encodeBatchManifestBody({
    senderId: sender.deviceId, senderKeyEpoch: sender.keyEpoch, senderKeyId: sender.keyId, sigAlgorithm: sender.sigAlgorithm,
    timestamp: BigInt(c.manifestTimestamp), digests: sealed.map((x) => x.digest),
  });
  const digest = manifestDigest(body);
  const manifest = encodeBatchManifest(body, backend.sign(sender.sigAlgorithm, digest, sender.sigSecretKey, unhex(c.signingRandom)));
  return {
    compactKeyMessageTopic: keyTopic,
    compactKeyMessage: hex(keyMessage),
    compactNonce0: hex(sealed[0].nonce),
    compactNonce1: hex(sealed[1].nonce),
    compactAad0: hex(sealed[0].aad),
    compactAad1: hex(sealed[1].aad),
    compactEnvelope0: hex(sealed[0].envelope),
    compactEnvelope1: hex(sealed[1].envelope),
    compactMessageDigests: sealed.map((x) => hex(x.digest)).join(''),
    compactManifestTopic: `pqc/batches/${sender.deviceId}`,
    compactManifestDigest: hex(digest),
    compactManifest: hex(manifest),
  };
}

/** Never fires: the vector batch closes by size (3 of 3), not by time. */
const NO_TIMERS: BatchScheduler = { soon: () => () => undefined, after: () => () => undefined };

async function buildBatchVector(
  inputs: VectorCase['inputs'], sender: IdentityBundle, recipient: IdentityBundle,
): Promise<Pick<VectorCase['outputs'], `batch${string}` & keyof VectorCase['outputs']>> {
  const backend = cryptoBackend();
  const b = inputs.batch;
  const signer = new BatchSigner(
    sender.deviceId,
    async (d) => backend.sign(inputs.sigAlgorithm, d, sender.sigSecretKey, unhex(b.signingRandom)),
    { maxLeaves: b.items.length, maxDelayMs: 0 },
    NO_TIMERS,
  );
  const digests: Uint8Array[] = [];
  const envelopes = await Promise.all(b.items.map((item) => sealDirectEnvelope({
    topic: item.topic,
    data: unhex(item.data),
    sender,
    recipient,
    seq: BigInt(item.seq),
    timestamp: item.timestamp,
    sign: () => Promise.reject(new Error('batch vectors sign through the batch signer')),
    authenticate: (d) => {
      digests.push(d);
      return signer.authenticate(d);
    },
    random: { encapsulation: unhex(item.encapsulationRandom), nonce: unhex(item.nonce) },
  })));
  const tree = buildBatchTree(digests);
  const cat = (parts: readonly Uint8Array[]): string => parts.map(hex).join('');
  return {
    batchMessageDigests: cat(digests),
    batchLeaves: cat(digests.map((d, i) => batchLeaf(i, d))),
    batchRoot: hex(tree.root),
    batchRootDigest: hex(batchRootDigest(sender.deviceId, tree.root, digests.length)),
    batchPath0: cat(tree.paths[0]),
    batchPath1: cat(tree.paths[1]),
    batchPath2: cat(tree.paths[2]),
    batchEnvelope0: hex(envelopes[0]),
    batchEnvelope1: hex(envelopes[1]),
    batchEnvelope2: hex(envelopes[2]),
  };
}

export async function buildVectors(): Promise<VectorCase[]> {
  const names = ['default', 'high', 'falcon-ca'];
  const inputs = vectorInputs();
  const out: VectorCase[] = [];
  for (let i = 0; i < inputs.length; i++) out.push(await buildCase(names[i], inputs[i]));
  return out;
}

/** A strict receiver session of the vector's recipient, the vector's CA pinned (keys rebuilt from the seeds). */
export function vectorRecipientSession(v: VectorCase): SecureSession {
  const i = v.inputs;
  const ca = createCa({ sigAlgorithm: i.caSigAlgorithm, seed: unhex(i.caSeed) });
  const recipient = issueCertificate(ca, createIdentity({
    deviceId: i.recipient.deviceId, keyEpoch: i.recipient.keyEpoch, kemAlgorithm: i.kemAlgorithm,
    sigAlgorithm: i.sigAlgorithm, seeds: { kem: unhex(i.recipient.kemSeed), sig: unhex(i.recipient.sigSeed) },
  }), { ...i.recipientCertificate, random: unhex(i.recipientCertificate.signingRandom) });
  return new SecureSession({ provider: new SoftwareProvider(recipient), caPublicKey: ca.publicKey });
}

export const VECTORS_PATH = join(__dirname, '..', '..', '..', 'test', 'vectors', 'vectors.json');

if (require.main === module && process.argv.includes('--write')) {
  buildVectors().then((v) => {
    writeFileSync(VECTORS_PATH, JSON.stringify({ description: 'pqc-iiot protocol v1 test vectors (docs/PROTOCOL.md §9); all byte strings hex', cases: v }, null, 2) + '\n');
    console.log(`wrote ${v.length} vector cases to ${VECTORS_PATH}`);
  });
}
