/**
 * The "Worker threads" setting of `pqc-config` nodes. Where post-quantum work runs is a choice
 * of the whole process, not of one session: lib/crypto/worker-pool.ts keeps one pool and one
 * offload mode, which the session's signature checks and the providers' signing and
 * decapsulation all read. So a config node can only ask for the process, and several config
 * nodes must agree on one answer: while at least one deployed config node asks for "off", every
 * session in the process computes on the main thread; when the last of them closes, the mode in
 * effect before the first one (normally 'auto', or 'never' with PQC_IIOT_CRYPTO_WORKERS=0) is
 * restored. "Off" wins because it is the request with a reason behind it (a single-core device,
 * a runtime that must not start threads); "auto" only means "no objection".
 *
 * Where the work runs never changes a result (worker-pool.ts), only latency and CPU use.
 */
import { cryptoOffload, setCryptoOffload, type OffloadMode } from '../crypto/worker-pool';

/** 'auto': offload JavaScript post-quantum work to worker threads; 'off': compute inline. */
export type CryptoWorkersChoice = 'auto' | 'off';

const offRequests = new Set<object>();
let modeBeforeOffRequests: OffloadMode | undefined;

/**
 * Turns worker threads off for the whole process until the returned function is called (calling
 * it again does nothing).
 */
export function holdCryptoWorkersOff(): () => void {
  const request = {};
  if (offRequests.size === 0) {
    modeBeforeOffRequests = cryptoOffload();
    setCryptoOffload('never');
  }
  offRequests.add(request);
  return () => {
    if (!offRequests.delete(request) || offRequests.size > 0) return;
    setCryptoOffload(modeBeforeOffRequests ?? 'auto');
    modeBeforeOffRequests = undefined;
  };
}

/** Whether post-quantum work may run on worker threads now, in this process. */
export function cryptoWorkersInEffect(): 'on' | 'off' {
  return cryptoOffload() === 'never' ? 'off' : 'on';
}
