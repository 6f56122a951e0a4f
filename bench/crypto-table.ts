/**
 * Crypto table of the benchmark: milliseconds per operation for each suite with the backend the
 * running Node uses, and whether the worker pool pays (signature checks per second on the main
 * thread versus on the pool). Every measurement is bounded in time.
 */
import { performance } from 'node:perf_hooks';
import { KEM_ALGORITHMS, SIG_ALGORITHMS, type KemAlgorithm, type SigAlgorithm } from '../lib/crypto/algorithms';
import { cryptoBackend } from '../lib/crypto/backend';
import { aesGcmOpen, aesGcmSeal, prepareAesKey, randomKey, randomNonce, sha256 } from '../lib/crypto/symmetric';
import { CryptoWorkerPool } from '../lib/crypto/worker-pool';
import { messageDigest } from '../lib/wire/envelope';
import { median, round } from './stats';

export interface CryptoRow {
  suite: string;
  operation: string;
  /** Median milliseconds per operation. */
  ms: number;
  samples: number;
}

export interface PoolRow {
  algorithm: SigAlgorithm;
  operation: 'verify' | 'sign';
  /** Operations per second computed on the main thread (blocking it the whole time). */
  inlinePerSec: number;
  /** Operations per second on the worker pool (main thread free). */
  poolPerSec: number;
  workers: number;
}

/** Runs `fn` until `budgetMs` passed or `max` samples, at least `min`; median ms. */
function timeOp(fn: () => void, budgetMs: number, min = 3, max = 200): { ms: number; samples: number } {
  // Untimed warm-up first (JIT): a third of the budget, and at least one run.
  const warmUntil = performance.now() + budgetMs / 3;
  do fn(); while (performance.now() < warmUntil);
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < max && (samples.length < min || performance.now() - started < budgetMs)) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  return { ms: round(median(samples)), samples: samples.length };
}

export const SUITES: ReadonlyArray<{ name: string; kem: KemAlgorithm; sig: SigAlgorithm }> = [
  { name: 'ML-KEM-768 + Falcon-512 (default)', kem: 'ML-KEM-768', sig: 'Falcon-512' },
  { name: 'ML-KEM-768 + ML-DSA-44', kem: 'ML-KEM-768', sig: 'ML-DSA-44' },
  { name: 'ML-KEM-1024 + ML-DSA-65', kem: 'ML-KEM-1024', sig: 'ML-DSA-65' },
];

/** Row names the throughput ceiling (bench/ceiling.ts) reads. */
export const AES_SEAL_OPEN = 'AES-256-GCM 100 B seal+open (prepared key)';
export const SHA256_MESSAGE_DIGEST = 'SHA-256 framed message digest (≈ 200 B)';

export function cryptoTable(budgetMs = 250): CryptoRow[] {
  const b = cryptoBackend();
  const rows: CryptoRow[] = [];
  const msg = sha256(new TextEncoder().encode('bench'));
  for (const s of SUITES) {
    const kem = b.kemKeygen(s.kem);
    const sig = b.sigKeygen(s.sig);
    const { capsule } = b.encapsulate(s.kem, kem.publicKey);
    const signature = b.sign(s.sig, msg, sig.secretKey);
    const add = (operation: string, r: { ms: number; samples: number }) => rows.push({ suite: s.name, operation, ...r });
    add(`${s.kem} keygen`, timeOp(() => b.kemKeygen(s.kem), budgetMs));
    add(`${s.kem} encaps`, timeOp(() => b.encapsulate(s.kem, kem.publicKey), budgetMs));
    add(`${s.kem} decaps`, timeOp(() => b.decapsulate(s.kem, capsule, kem.secretKey), budgetMs));
    add(`${s.sig} keygen`, timeOp(() => b.sigKeygen(s.sig), s.sig === 'Falcon-512' ? 600 : budgetMs, s.sig === 'Falcon-512' ? 2 : 3, 50));
    add(`${s.sig} sign`, timeOp(() => b.sign(s.sig, msg, sig.secretKey), budgetMs));
    add(`${s.sig} verify`, timeOp(() => b.verify(s.sig, signature, msg, sig.publicKey), budgetMs));
  }
  // Prepared once, as topic mode prepares each topic key (docs/PROTOCOL.md §4.5): with OpenSSL 3.5
  // (Node 24) a raw key costs about four times as much per message to set up.
  const key = prepareAesKey(randomKey());
  const data = new Uint8Array(100);
  rows.push({
    suite: 'symmetric',
    operation: AES_SEAL_OPEN,
    ...timeOp(() => {
      const n = randomNonce();
      aesGcmOpen(key, n, aesGcmSeal(key, n, data, msg), msg);
    }, budgetMs, 50, 5000),
  });
  // The framed digest of a topic envelope's encrypted blob (§4.3): the size most hashes of a message have.
  const blob = new Uint8Array(190);
  rows.push({ suite: 'symmetric', operation: SHA256_MESSAGE_DIGEST, ...timeOp(() => messageDigest('sensor', 'bench/topic', blob), budgetMs, 50, 5000) });
  return rows;
}

/**
 * Throughput of signature checks and signatures: on the main thread versus spread over a pool of
 * `workers` threads (jobs kept queued so no worker idles). The pool uses the same backend family
 * (noble or native) as the main thread.
 */
export async function poolTable(workers: number, budgetMs = 1000): Promise<PoolRow[]> {
  const b = cryptoBackend();
  const family = b.name === 'noble' ? 'noble' : 'native';
  const pool = new CryptoWorkerPool({ size: workers });
  const rows: PoolRow[] = [];
  const msg = sha256(new TextEncoder().encode('pool'));
  try {
    for (const alg of ['Falcon-512', 'ML-DSA-44'] as const) {
      const kp = b.sigKeygen(alg);
      const sig = b.sign(alg, msg, kp.secretKey);
      for (const operation of ['verify', 'sign'] as const) {
        const inline = operation === 'verify' ? () => b.verify(alg, sig, msg, kp.publicKey) : () => b.sign(alg, msg, kp.secretKey);
        let n = 0;
        let started = performance.now();
        while (performance.now() - started < budgetMs / 2) {
          inline();
          n++;
        }
        const inlinePerSec = (n * 1000) / (performance.now() - started);
        const job = () => (operation === 'verify'
          ? pool.verify(alg, sig, msg, kp.publicKey, family)
          : pool.sign(alg, msg, kp.secretKey, family));
        // Warm the workers (module load, key import, and the JIT: Falcon signing needs a few
        // hundred runs to reach speed, as it did on the main thread in the table before).
        const warmUntil = performance.now() + budgetMs / 2;
        while (performance.now() < warmUntil) await Promise.all(Array.from({ length: workers * 2 }, job));
        let done = 0;
        started = performance.now();
        let elapsed = 0;
        await new Promise<void>((resolve, reject) => {
          let inFlight = 0;
          const next = (): void => {
            inFlight++;
            job().then(() => {
              inFlight--;
              if (elapsed === 0) done++;
              if (elapsed === 0 && performance.now() - started >= budgetMs / 2) elapsed = performance.now() - started;
              if (elapsed === 0) next();
              else if (inFlight === 0) resolve(); // drained: nothing runs on into the next measurement
            }, reject);
          };
          for (let i = 0; i < workers * 4; i++) next();
        });
        const poolPerSec = (done * 1000) / elapsed;
        rows.push({ algorithm: alg, operation, inlinePerSec: round(inlinePerSec), poolPerSec: round(poolPerSec), workers });
      }
    }
  } finally {
    await pool.close();
  }
  return rows;
}

/** Public key and signature sizes, for the table header. */
export function sizes(): Record<string, { publicKey: number; ciphertextOrSignature: number }> {
  const out: Record<string, { publicKey: number; ciphertextOrSignature: number }> = {};
  for (const [k, v] of Object.entries(KEM_ALGORITHMS)) out[k] = { publicKey: v.publicKey, ciphertextOrSignature: v.cipherText };
  for (const [k, v] of Object.entries(SIG_ALGORITHMS)) out[k] = { publicKey: v.publicKey, ciphertextOrSignature: v.maxSignature };
  return out;
}
