/**
 * Worker thread of the crypto pool (lib/crypto/worker-pool.ts): runs one post-quantum operation
 * per message with the backend the main thread names, and answers with the result. Secret keys
 * arrive as copies; the worker keeps at most 16 of them (wiped when dropped) so that per-key
 * precomputation is reused.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { KemAlgorithm, SigAlgorithm } from './algorithms';
import { nobleBackend, type CryptoBackend } from './backend';
import { nativeBackend } from './native';
import type { WorkerRequest, WorkerResponse } from './worker-pool';

function backendFor(name: WorkerRequest['backend']): CryptoBackend {
  if (name === 'native' && nativeBackend) return nativeBackend;
  return nobleBackend;
}

/**
 * Keys arrive as fresh copies with every job, but both backends cache work per key object
 * (noble: the expanded Falcon tree / ML-DSA matrix; native: the imported KeyObject), keyed by
 * the Uint8Array's identity. So the worker keeps one instance per distinct key (by SHA-256) and
 * hands the backend that instance: the expensive expansion happens once per key, as it does on
 * the main thread. Bounded; an evicted secret key is wiped.
 */
class KeyInstances {
  private readonly keys = new Map<string, Uint8Array>();

  constructor(private readonly capacity: number, private readonly secret: boolean) {}

  instance(bytes: Uint8Array): Uint8Array {
    const id = createHash('sha256').update(bytes).digest('base64');
    const hit = this.keys.get(id);
    if (hit) {
      if (this.secret) bytes.fill(0); // the copy that came with the job is not needed
      this.keys.delete(id);
      this.keys.set(id, hit);
      return hit;
    }
    this.keys.set(id, bytes);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.entries().next();
      if (!oldest.done) {
        this.keys.delete(oldest.value[0]);
        if (this.secret) oldest.value[1].fill(0);
      }
    }
    return bytes;
  }
}

const secretKeys = new KeyInstances(16, true);
const publicKeys = new KeyInstances(1024, false);

function run(m: WorkerRequest): WorkerResponse {
  const b = backendFor(m.backend);
  switch (m.op) {
    case 'sign':
      return { id: m.id, ok: true, bytes: b.sign(m.alg as SigAlgorithm, m.a, secretKeys.instance(m.b)) };
    case 'verify':
      return { id: m.id, ok: true, valid: b.verify(m.alg as SigAlgorithm, m.a, m.b, publicKeys.instance(m.c ?? new Uint8Array(0))) };
    case 'encapsulate': {
      const { capsule, sharedSecret } = b.encapsulate(m.alg as KemAlgorithm, publicKeys.instance(m.a));
      const bytes = new Uint8Array(capsule.length + sharedSecret.length);
      bytes.set(capsule, 0);
      bytes.set(sharedSecret, capsule.length);
      sharedSecret.fill(0);
      return { id: m.id, ok: true, bytes };
    }
    case 'decapsulate':
      return { id: m.id, ok: true, bytes: b.decapsulate(m.alg as KemAlgorithm, m.a, secretKeys.instance(m.b)) };
    default:
      return { id: m.id, ok: false, error: 'unknown operation' };
  }
}

const port = parentPort;
if (port) {
  port.on('message', (m: WorkerRequest) => {
    let response: WorkerResponse;
    try {
      response = run(m);
    } catch (error) {
      response = { id: m.id, ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    if (response.ok && response.bytes) port.postMessage(response, [response.bytes.buffer as ArrayBuffer]);
    else port.postMessage(response);
  });
}
