/**
 * Off-main-thread crypto (lib/crypto/worker-pool.ts): the pool gives the same results as inline
 * computation, survives a worker that dies mid-job, and the session works the same with and
 * without it. Event-loop responsiveness is measured by `npm run bench`, not here.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { nobleBackend } from '../../../lib/crypto/backend';
import { nativeBackend } from '../../../lib/crypto/native';
import { CryptoWorkerPool, cryptoOffload, setCryptoOffload } from '../../../lib/crypto/worker-pool';
import { sha256 } from '../../../lib/crypto/symmetric';
import { T0, certify, keysFor, pair, session } from '../fixtures';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crypto worker pool (off-main-thread sign / verify / encapsulate / decapsulate)', function () {
  this.timeout(120_000);
  let pool: CryptoWorkerPool;
  const falcon = keysFor({ id: 'wp-falcon', sig: 'Falcon-512' });
  const dsa = keysFor({ id: 'wp-dsa', sig: 'ML-DSA-44' });

  before(() => {
    pool = new CryptoWorkerPool({ size: 2 });
  });
  after(() => pool.close());

  it('returns what inline computation returns: verify (valid, tampered, malformed), decapsulate, and signatures and encapsulations that check inline', async () => {
    for (const id of [falcon, dsa]) {
      const msg = sha256(enc(id.deviceId));
      const sig = nobleBackend.sign(id.sigAlgorithm, msg, id.sigSecretKey);
      const tampered = Uint8Array.from(sig);
      tampered[10] ^= 1;
      for (const [s, expected] of [[sig, true], [tampered, false], [new Uint8Array(3), false]] as const) {
        assert.equal(await pool.verify(id.sigAlgorithm, s, msg, id.sigPublicKey), expected);
        assert.equal(nobleBackend.verify(id.sigAlgorithm, s, msg, id.sigPublicKey), expected);
      }
      const pooled = await pool.sign(id.sigAlgorithm, msg, id.sigSecretKey);
      assert.ok(nobleBackend.verify(id.sigAlgorithm, pooled, msg, id.sigPublicKey));
      const { capsule, sharedSecret } = nobleBackend.encapsulate(id.kemAlgorithm, id.kemPublicKey);
      assert.deepEqual(await pool.decapsulate(id.kemAlgorithm, capsule, id.kemSecretKey), sharedSecret);
      if (nativeBackend) {
        assert.deepEqual(await pool.decapsulate(id.kemAlgorithm, capsule, id.kemSecretKey, 'native'), sharedSecret);
      }
      // Encapsulation on a worker: the capsule opens inline to the secret the worker handed back.
      for (const backend of nativeBackend ? (['noble', 'native'] as const) : (['noble'] as const)) {
        const pooledKem = await pool.encapsulate(id.kemAlgorithm, id.kemPublicKey, backend);
        assert.equal(pooledKem.capsule.length, capsule.length);
        assert.equal(pooledKem.sharedSecret.length, 32);
        assert.deepEqual(nobleBackend.decapsulate(id.kemAlgorithm, pooledKem.capsule, id.kemSecretKey), pooledKem.sharedSecret);
        assert.notDeepEqual(pooledKem.capsule, capsule, 'fresh randomness per encapsulation');
      }
    }
    // The caller's secret key is not touched (the worker wipes its own copy).
    assert.ok(falcon.sigSecretKey.some((b) => b !== 0));
  });

  it('survives a worker crash: jobs in flight are redone by another worker, and the pool keeps working', async () => {
    const msg = sha256(enc('crash'));
    const sig = nobleBackend.sign(dsa.sigAlgorithm, msg, dsa.sigSecretKey);
    const jobs = Array.from({ length: 8 }, (_, i) => pool.verify(dsa.sigAlgorithm, i % 2 ? new Uint8Array(sig.length) : sig, msg, dsa.sigPublicKey));
    const crashesBefore = pool.stats.crashes;
    await pool.threads[0].terminate(); // as if it had died
    assert.deepEqual(await Promise.all(jobs), [true, false, true, false, true, false, true, false]);
    assert.ok(pool.stats.crashes > crashesBefore);
    assert.equal(await pool.verify(dsa.sigAlgorithm, sig, msg, dsa.sigPublicKey), true);
    assert.equal(pool.stats.inFlight, 0);
  });

  it('a pool whose workers cannot start rejects (callers then compute inline) instead of hanging', async () => {
    const broken = new CryptoWorkerPool({ size: 1, script: join(__dirname, 'no-such-worker.js') });
    try {
      await assert.rejects(() => broken.verify('ML-DSA-44', new Uint8Array(2420), new Uint8Array(32), dsa.sigPublicKey));
      await assert.rejects(() => broken.verify('ML-DSA-44', new Uint8Array(2420), new Uint8Array(32), dsa.sigPublicKey));
    } finally {
      await broken.close();
    }
  });

  it('sessions give the same verdicts with crypto on the worker pool and inline', async () => {
    const previous = cryptoOffload();
    try {
      for (const mode of ['always', 'never'] as const) {
        setCryptoOffload(mode);
        const a = session(certify(keysFor({ id: `wp-a-${mode}`, sig: 'Falcon-512' }), { roles: 'pub', topics: ['plant/#'] }));
        const b = session(certify(keysFor({ id: `wp-b-${mode}` }), { roles: 'sub', topics: ['plant/#'] }));
        await pair(a, b);
        const envs = await Promise.all([0, 1, 2].map((i) => a.sealDirect('plant/x', enc(`${mode} ${i}`), b.deviceId, T0)));
        for (const [i, e] of envs.entries()) {
          const r = await b.open('plant/x', e, T0);
          assert.ok(r.ok, `${mode} #${i}: ${r.ok ? '' : r.reason}`);
        }
        const t = Uint8Array.from(envs[0]);
        t[t.length - 40] ^= 1;
        const bad = await b.open('plant/x', t, T0);
        assert.equal(bad.ok, false);
      }
    } finally {
      setCryptoOffload(previous);
    }
    assert.throws(() => setCryptoOffload('sometimes' as never));
  });
});
