/**
 * Cross-check of the node:crypto backend against noble, meant to run under a Node that has
 * ML-KEM/ML-DSA (native.test.ts spawns the Node 24 devDependency on the compiled file):
 * identical keys from the same seeds, capsules and signatures accepted across backends,
 * identical implicit rejection, malformed input handled alike, and test/vectors/vectors.json
 * rebuilt byte for byte with the native backend active. Prints one JSON report on stdout.
 *
 *   node dist/test/lib/crypto/cross-check.js [--timings N]   (N runs per operation, median)
 */
import * as nodeCrypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KEM_ALGORITHMS, SIG_ALGORITHMS, type KemAlgorithm, type SigAlgorithm } from '../../../lib/crypto/algorithms';
import { cryptoBackend, cryptoBackendName, nobleBackend, useCryptoBackend, type CryptoBackend } from '../../../lib/crypto/backend';
import { nativeBackend, probeNativeBackend, type NativeCryptoApi } from '../../../lib/crypto/native';
import { aesGcmOpen, sha256 } from '../../../lib/crypto/symmetric';
import { createIdentity } from '../../../lib/session/identity';
import { decodeAnnouncement } from '../../../lib/wire/announcement';
import { parseCaPublicKeyText } from '../../../lib/wire/ca-key';
import { decodeCertificate } from '../../../lib/wire/certificate';
import { decodeDirectEnvelope } from '../../../lib/wire/envelope';
import { VECTORS_PATH, buildCase, vectorRecipientSession, type VectorCase } from '../../vectors/build';

export interface CrossCheckReport {
  node: string;
  openssl: string;
  nativeAvailable: boolean;
  backendName: string;
  checks: { name: string; ok: boolean; detail?: string }[];
  timings?: { algorithm: string; operation: string; nobleMs: number; nativeMs: number; ratio: number }[];
}

type MlDsa = Exclude<SigAlgorithm, 'Falcon-512'>;
const KEMS = Object.keys(KEM_ALGORITHMS) as KemAlgorithm[];
const DSAS: MlDsa[] = ['ML-DSA-44', 'ML-DSA-65'];

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
/** Fixed test bytes: SHA-256 of a label, repeated to length. */
function fixed(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = sha256(new TextEncoder().encode(`${label}#${block}`));
    for (let j = 0; j < h.length && i < n; j++) out[i++] = h[j];
  }
  return out;
}
function flip(b: Uint8Array, at: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[at] ^= 0x01;
  return c;
}
function throws(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch {
    return true;
  }
}

/** Only the functions the backend uses (spreading the module would touch deprecated getters). */
export function nodeCryptoApi(): NativeCryptoApi {
  const c = nodeCrypto as unknown as NativeCryptoApi;
  return {
    createPrivateKey: c.createPrivateKey, createPublicKey: c.createPublicKey, sign: c.sign, verify: c.verify,
    randomBytes: c.randomBytes, createHash: c.createHash, encapsulate: c.encapsulate, decapsulate: c.decapsulate,
  };
}

const checks: CrossCheckReport['checks'] = [];
function check(name: string, f: () => boolean | string): void {
  try {
    const r = f();
    checks.push(r === true ? { name, ok: true } : { name, ok: false, detail: r === false ? 'false' : r });
  } catch (e) {
    checks.push({ name, ok: false, detail: `threw: ${(e as Error).stack ?? String(e)}` });
  }
}
async function checkAsync(name: string, f: () => Promise<boolean | string>): Promise<void> {
  try {
    const r = await f();
    checks.push(r === true ? { name, ok: true } : { name, ok: false, detail: r === false ? 'false' : r });
  } catch (e) {
    checks.push({ name, ok: false, detail: `threw: ${(e as Error).stack ?? String(e)}` });
  }
}

function kemChecks(native: CryptoBackend, noble: CryptoBackend, alg: KemAlgorithm): void {
  const size = KEM_ALGORITHMS[alg];
  const seeds = [new Uint8Array(size.seed), new Uint8Array(size.seed).fill(0xff), fixed(`${alg}/seed/1`, size.seed), fixed(`${alg}/seed/2`, size.seed)];
  for (const [i, seed] of seeds.entries()) {
    check(`${alg} keygen from seed ${i}: identical public and secret key`, () => {
      const a = native.kemKeygen(alg, seed);
      const b = noble.kemKeygen(alg, seed);
      if (a.publicKey.length !== size.publicKey || a.secretKey.length !== size.secretKey) return `lengths ${a.publicKey.length}/${a.secretKey.length}`;
      return same(a.publicKey, b.publicKey) && same(a.secretKey, b.secretKey);
    });
  }
  const nob = noble.kemKeygen(alg, seeds[2]);
  const fresh = native.kemKeygen(alg); // random seed inside the native backend
  check(`${alg} native random keygen: noble encapsulates to it and decapsulates with its secret key`, () => {
    const e = noble.encapsulate(alg, fresh.publicKey);
    return same(noble.decapsulate(alg, e.capsule, fresh.secretKey), e.sharedSecret)
      && same(native.decapsulate(alg, e.capsule, fresh.secretKey), e.sharedSecret)
      && same(noble.kemKeygen(alg, seeds[3]).publicKey, native.kemKeygen(alg, seeds[3]).publicKey);
  });
  check(`${alg} native encapsulate → noble decapsulate agree`, () => {
    for (let i = 0; i < 4; i++) {
      const e = native.encapsulate(alg, nob.publicKey);
      if (e.capsule.length !== size.cipherText || e.sharedSecret.length !== 32) return 'lengths';
      if (!same(noble.decapsulate(alg, e.capsule, nob.secretKey), e.sharedSecret)) return `round ${i}`;
      if (!same(native.decapsulate(alg, e.capsule, nob.secretKey), e.sharedSecret)) return `native round ${i}`;
    }
    return true;
  });
  check(`${alg} noble encapsulate → native decapsulate agree`, () => {
    for (let i = 0; i < 4; i++) {
      const e = noble.encapsulate(alg, nob.publicKey);
      if (!same(native.decapsulate(alg, e.capsule, nob.secretKey), e.sharedSecret)) return `round ${i}`;
    }
    return true;
  });
  check(`${alg} encapsulation with a given message m: identical capsule and shared secret`, () => {
    const m = fixed(`${alg}/m`, 32);
    const a = native.encapsulate(alg, nob.publicKey, m);
    const b = noble.encapsulate(alg, nob.publicKey, m);
    return same(a.capsule, b.capsule) && same(a.sharedSecret, b.sharedSecret);
  });
  check(`${alg} tampered capsule: identical implicit-rejection secret on both`, () => {
    const e = noble.encapsulate(alg, nob.publicKey, fixed(`${alg}/m2`, 32));
    for (const at of [0, 500, size.cipherText - 1]) {
      const bad = flip(e.capsule, at);
      const a = native.decapsulate(alg, bad, nob.secretKey);
      const b = noble.decapsulate(alg, bad, nob.secretKey);
      if (!same(a, b)) return `differs at ${at}`;
      if (same(a, e.sharedSecret)) return `tampered capsule accepted at ${at}`;
    }
    return true;
  });
  check(`${alg} wrong-length capsule, secret key or public key: both backends throw`, () => {
    const e = noble.encapsulate(alg, nob.publicKey);
    const cases: [string, (b: CryptoBackend) => unknown][] = [
      ['short capsule', (b) => b.decapsulate(alg, e.capsule.subarray(1), nob.secretKey)],
      ['long capsule', (b) => b.decapsulate(alg, new Uint8Array(size.cipherText + 1), nob.secretKey)],
      ['empty capsule', (b) => b.decapsulate(alg, new Uint8Array(0), nob.secretKey)],
      ['short secret key', (b) => b.decapsulate(alg, e.capsule, nob.secretKey.subarray(1))],
      ['short public key', (b) => b.encapsulate(alg, nob.publicKey.subarray(1))],
      ['long public key', (b) => b.encapsulate(alg, new Uint8Array(size.publicKey + 1))],
    ];
    for (const [what, f] of cases) {
      if (!throws(() => f(native)) || !throws(() => f(noble))) return `${what}: native threw ${throws(() => f(native))}, noble threw ${throws(() => f(noble))}`;
    }
    return true;
  });
  check(`${alg} public key failing the FIPS 203 modulus check: both backends throw`, () => {
    const bad = Uint8Array.from(nob.publicKey);
    bad[0] = 0xff;
    bad[1] |= 0x0f; // first 12-bit coefficient = 4095 ≥ q
    return throws(() => native.encapsulate(alg, bad)) && throws(() => noble.encapsulate(alg, bad));
  });
}

function dsaChecks(native: CryptoBackend, noble: CryptoBackend, alg: MlDsa): void {
  const size = SIG_ALGORITHMS[alg];
  const seeds = [new Uint8Array(size.seed), new Uint8Array(size.seed).fill(0xff), fixed(`${alg}/seed/1`, size.seed), fixed(`${alg}/seed/2`, size.seed)];
  for (const [i, seed] of seeds.entries()) {
    check(`${alg} keygen from seed ${i}: identical public and secret key`, () => {
      const a = native.sigKeygen(alg, seed);
      const b = noble.sigKeygen(alg, seed);
      if (a.publicKey.length !== size.publicKey || a.secretKey.length !== size.secretKey) return `lengths ${a.publicKey.length}/${a.secretKey.length}`;
      return same(a.publicKey, b.publicKey) && same(a.secretKey, b.secretKey);
    });
  }
  const kp = noble.sigKeygen(alg, seeds[2]);
  const other = noble.sigKeygen(alg, seeds[3]);
  const messages = [new Uint8Array(0), fixed(`${alg}/msg`, 32), fixed(`${alg}/long`, 65_536)];
  check(`${alg} native sign → noble and native verify`, () => {
    for (const [i, m] of messages.entries()) {
      const sig = native.sign(alg, m, kp.secretKey);
      if (sig.length !== size.maxSignature) return `length ${sig.length}`;
      if (!noble.verify(alg, sig, m, kp.publicKey)) return `noble rejects message ${i}`;
      if (!native.verify(alg, sig, m, kp.publicKey)) return `native rejects message ${i}`;
    }
    return true;
  });
  check(`${alg} noble sign → native verify`, () => {
    for (const [i, m] of messages.entries()) {
      if (!native.verify(alg, noble.sign(alg, m, kp.secretKey), m, kp.publicKey)) return `message ${i}`;
    }
    return true;
  });
  check(`${alg} native random keygen: noble signs with its secret key, native verifies, and back`, () => {
    const fresh = native.sigKeygen(alg);
    const m = messages[1];
    return native.verify(alg, noble.sign(alg, m, fresh.secretKey), m, fresh.publicKey)
      && noble.verify(alg, native.sign(alg, m, fresh.secretKey), m, fresh.publicKey);
  });
  check(`${alg} signing with given randomness: identical signature bytes`, () => {
    const r = fixed(`${alg}/rnd`, 48);
    return same(native.sign(alg, messages[1], kp.secretKey, r), noble.sign(alg, messages[1], kp.secretKey, r));
  });
  check(`${alg} tampered signature, message or key: both reject`, () => {
    const m = messages[1];
    for (const [origin, sig] of [['native', native.sign(alg, m, kp.secretKey)], ['noble', noble.sign(alg, m, kp.secretKey)]] as const) {
      const bad: [string, Uint8Array, Uint8Array, Uint8Array][] = [
        ['first byte', flip(sig, 0), m, kp.publicKey],
        ['middle byte', flip(sig, sig.length >> 1), m, kp.publicKey],
        ['hint byte', flip(sig, sig.length - 2), m, kp.publicKey],
        ['last byte', flip(sig, sig.length - 1), m, kp.publicKey],
        ['message', sig, flip(m, 3), kp.publicKey],
        ['other key', sig, m, other.publicKey],
        ['public key byte', sig, m, flip(kp.publicKey, 40)],
      ];
      for (const [what, s, msg, pk] of bad) {
        if (native.verify(alg, s, msg, pk)) return `native accepts ${origin} signature with tampered ${what}`;
        if (noble.verify(alg, s, msg, pk)) return `noble accepts ${origin} signature with tampered ${what}`;
      }
    }
    return true;
  });
  check(`${alg} malformed inputs: verify returns false and never throws`, () => {
    const m = messages[1];
    const sig = noble.sign(alg, m, kp.secretKey);
    const junk = null as unknown as Uint8Array;
    const bad: [string, Uint8Array, Uint8Array, Uint8Array][] = [
      ['short signature', sig.subarray(1), m, kp.publicKey],
      ['long signature', Uint8Array.from([...sig, 0]), m, kp.publicKey],
      ['empty signature', new Uint8Array(0), m, kp.publicKey],
      ['zero signature', new Uint8Array(sig.length), m, kp.publicKey],
      ['0xff signature', new Uint8Array(sig.length).fill(0xff), m, kp.publicKey],
      ['short public key', sig, m, kp.publicKey.subarray(1)],
      ['long public key', sig, m, Uint8Array.from([...kp.publicKey, 0])],
      ['empty public key', sig, m, new Uint8Array(0)],
      ['signature of another algorithm', new Uint8Array(alg === 'ML-DSA-44' ? 3309 : 2420), m, kp.publicKey],
      ['null signature', junk, m, kp.publicKey],
      ['null message', sig, junk, kp.publicKey],
      ['null public key', sig, m, junk],
    ];
    for (const [what, s, msg, pk] of bad) {
      for (const [name, b] of [['native', native], ['noble', noble]] as const) {
        let r: boolean;
        try {
          r = b.verify(alg, s, msg, pk);
        } catch (e) {
          return `${name} verify threw on ${what}: ${(e as Error).message}`;
        }
        if (r !== false) return `${name} verify returned ${String(r)} on ${what}`;
      }
    }
    return true;
  });
  check(`${alg} wrong-length secret key: both backends throw on sign`, () => {
    const m = messages[1];
    return throws(() => native.sign(alg, m, kp.secretKey.subarray(1))) && throws(() => noble.sign(alg, m, kp.secretKey.subarray(1)));
  });
  check(`${alg} a wiped secret-key array is not served from the key cache`, () => {
    const sk = Uint8Array.from(kp.secretKey);
    const m = messages[1];
    if (!noble.verify(alg, native.sign(alg, m, sk), m, kp.publicKey)) return 'first signature';
    sk.set(other.secretKey);
    return noble.verify(alg, native.sign(alg, m, sk), m, other.publicKey);
  });
}

function falconChecks(native: CryptoBackend, noble: CryptoBackend): void {
  check('Falcon-512 is delegated to noble: same keys, signatures accepted both ways', () => {
    const seed = fixed('falcon/seed', SIG_ALGORITHMS['Falcon-512'].seed);
    const a = native.sigKeygen('Falcon-512', seed);
    const b = noble.sigKeygen('Falcon-512', seed);
    const m = fixed('falcon/msg', 32);
    const r = fixed('falcon/rnd', 48);
    return same(a.publicKey, b.publicKey) && same(a.secretKey, b.secretKey)
      && same(native.sign('Falcon-512', m, a.secretKey, r), noble.sign('Falcon-512', m, a.secretKey, r))
      && noble.verify('Falcon-512', native.sign('Falcon-512', m, a.secretKey), m, a.publicKey)
      && native.verify('Falcon-512', noble.sign('Falcon-512', m, a.secretKey), m, a.publicKey)
      && !native.verify('Falcon-512', new Uint8Array(10), m, a.publicKey);
  });
}

/** The vector file, rebuilt and checked with the native backend as the active one. */
async function vectorChecks(native: CryptoBackend): Promise<void> {
  const file = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { cases?: VectorCase[] };
  const cases = file.cases ?? [];
  check('vector file is present and holds at least 3 cases', () => cases.length >= 3 || `found ${cases.length}`);
  const previous = cryptoBackend();
  useCryptoBackend(native);
  try {
    for (const v of cases) {
      await checkAsync(`vectors "${v.name}" rebuild byte for byte with the native backend`, async () => {
        const rebuilt = await buildCase(v.name, v.inputs);
        const differ = Object.entries(v.outputs).filter(([k, val]) => (rebuilt.outputs as Record<string, string>)[k] !== val).map(([k]) => k);
        return differ.length === 0 || `differs: ${differ.join(', ')}`;
      });
      await checkAsync(`vectors "${v.name}" signatures verify and capsule decapsulates natively`, async () => {
        const i = v.inputs;
        const o = v.outputs;
        const ca = parseCaPublicKeyText(o.caPublicKeyText);
        const cert = decodeCertificate(unhex(o.certificate));
        const ann = decodeAnnouncement(unhex(o.announcement));
        const env = decodeDirectEnvelope(unhex(o.envelope));
        if (!ca.ok || !cert.ok || !ann.ok || !env.ok) return 'does not decode';
        if (!native.verify(i.caSigAlgorithm, cert.value.signature, unhex(o.certificateDigest), ca.value.publicKey)) return 'certificate signature';
        if (!native.verify(i.sigAlgorithm, ann.value.signature, unhex(o.announcementDigest), unhex(o.senderSigPublicKey))) return 'announcement signature';
        if (!native.verify(i.sigAlgorithm, env.value.auth.signature, unhex(o.messageDigest), unhex(o.senderSigPublicKey))) return 'envelope signature';
        const recipient = createIdentity({
          deviceId: i.recipient.deviceId, keyEpoch: i.recipient.keyEpoch, kemAlgorithm: i.kemAlgorithm,
          sigAlgorithm: i.sigAlgorithm, seeds: { kem: unhex(i.recipient.kemSeed), sig: unhex(i.recipient.sigSeed) },
        });
        if (hex(native.decapsulate(i.kemAlgorithm, env.value.capsule, recipient.kemSecretKey)) !== o.sharedSecret) return 'shared secret';
        const plain = aesGcmOpen(unhex(o.messageKey), env.value.nonce, env.value.ciphertext, unhex(o.aad));
        return plain !== undefined && hex(plain) === i.envelope.data;
      });
      await checkAsync(`vectors "${v.name}" accepted by a strict receiver session on the native backend`, async () => {
        const i = v.inputs;
        const o = v.outputs;
        const session = vectorRecipientSession(v);
        const now = i.envelope.timestamp;
        const trusted = await session.handleAnnouncement(`pqc/keys/${i.sender.deviceId}`, unhex(o.announcement), now);
        if (!trusted.ok) return `announcement: ${trusted.reason}`;
        const opened = await session.open(i.envelope.topic, unhex(o.envelope), now);
        if (!opened.ok) return `envelope: ${opened.reason}`;
        return hex(opened.value.data) === i.envelope.data;
      });
    }
  } finally {
    useCryptoBackend(previous);
  }
}

function median(f: () => unknown, runs: number): number {
  f(); // warm-up, and fills the native key caches as a long-running node would
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    f();
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

function timings(native: CryptoBackend, noble: CryptoBackend, runs: number): NonNullable<CrossCheckReport['timings']> {
  const rows: NonNullable<CrossCheckReport['timings']> = [];
  const row = (algorithm: string, operation: string, f: (b: CryptoBackend) => unknown): void => {
    const nobleMs = median(() => f(noble), runs);
    const nativeMs = median(() => f(native), runs);
    rows.push({ algorithm, operation, nobleMs, nativeMs, ratio: nobleMs / nativeMs });
  };
  for (const alg of KEMS) {
    const kp = noble.kemKeygen(alg, fixed(`${alg}/bench`, 64));
    const { capsule } = noble.encapsulate(alg, kp.publicKey);
    row(alg, 'keygen', (b) => b.kemKeygen(alg));
    row(alg, 'encaps', (b) => b.encapsulate(alg, kp.publicKey));
    row(alg, 'decaps', (b) => b.decapsulate(alg, capsule, kp.secretKey));
    row(alg, 'decaps, new key array each call', (b) => b.decapsulate(alg, capsule, Uint8Array.from(kp.secretKey)));
  }
  for (const alg of DSAS) {
    const kp = noble.sigKeygen(alg, fixed(`${alg}/bench`, 32));
    const m = fixed('bench/msg', 32);
    const sig = noble.sign(alg, m, kp.secretKey);
    row(alg, 'keygen', (b) => b.sigKeygen(alg));
    row(alg, 'sign', (b) => b.sign(alg, m, kp.secretKey));
    row(alg, 'sign, new key array each call', (b) => b.sign(alg, m, Uint8Array.from(kp.secretKey)));
    row(alg, 'verify', (b) => b.verify(alg, sig, m, kp.publicKey));
  }
  return rows;
}

export async function crossCheck(runs: number): Promise<CrossCheckReport> {
  const report: CrossCheckReport = {
    node: process.version,
    openssl: process.versions.openssl ?? '',
    nativeAvailable: nativeBackend !== undefined,
    backendName: cryptoBackendName(),
    checks,
  };
  const native = nativeBackend;
  if (!native) return report;
  check('the default backend is the native one', () => cryptoBackend() === native || cryptoBackend().name);
  check('the feature test refuses a node:crypto whose round trip comes out wrong, and accepts the real one', () => {
    const api = nodeCryptoApi() as Required<NativeCryptoApi>;
    const wrong: NativeCryptoApi = { ...api, decapsulate: (k, c) => api.decapsulate(k, c).fill(1) };
    return probeNativeBackend(wrong) === undefined && probeNativeBackend(api) !== undefined;
  });
  for (const alg of KEMS) kemChecks(native, nobleBackend, alg);
  for (const alg of DSAS) dsaChecks(native, nobleBackend, alg);
  falconChecks(native, nobleBackend);
  await vectorChecks(native);
  if (runs > 0) report.timings = timings(native, nobleBackend, runs);
  return report;
}

if (require.main === module) {
  const at = process.argv.indexOf('--timings');
  const runs = at > 0 ? Number(process.argv[at + 1] ?? 21) : 0;
  crossCheck(runs).then(
    (report) => process.stdout.write(JSON.stringify(report) + '\n'),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
