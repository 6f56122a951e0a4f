/**
 * Finds a TCP port on 127.0.0.1 that nothing listens on right now. The kernel picks it (port 0),
 * so tests never collide with each other or with a broker already running on 1883.
 * There is a short window between closing our probe and the broker binding the port; ephemeral
 * ports are handed out round-robin, so a collision in that window is very unlikely.
 */
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, LOOPBACK, () => {
      const address = probe.address();
      if (address === null || typeof address === 'string') {
        probe.close();
        reject(new Error('could not read the probe server address'));
        return;
      }
      const { port } = address;
      probe.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Resolves true as soon as a TCP connection to host:port succeeds, false on refusal/timeout. */
export function canConnect(port: number, host = LOOPBACK, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const finish = (result: boolean): void => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** Polls until a connection succeeds or the deadline passes; returns whether it came up. */
export async function waitForPort(
  port: number,
  { host = LOOPBACK, timeoutMs = 5000, intervalMs = 25, abort }: WaitOptions = {},
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (abort?.()) return false;
    if (await canConnect(port, host, Math.min(500, Math.max(1, deadline - Date.now())))) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return false;
}

export interface WaitOptions {
  host?: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** Checked before each attempt; returning true stops waiting early (e.g. the process died). */
  abort?: () => boolean;
}
