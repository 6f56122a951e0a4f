/**
 * An in-process aedes broker (MQTT 3.1.1 only) on a free loopback port, for node tests that do
 * not need a real broker process. aedes 1.x is created asynchronously (Aedes.createBroker).
 */
import net from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { freePort, LOOPBACK } from './free-port';

export interface AedesBroker {
  readonly port: number;
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** The broker itself, for tests that want its events (publish, client, subscribe…). */
  readonly broker: Aedes;
  /** Disconnects every client and stops listening. Idempotent. */
  close(): Promise<void>;
}

export async function startAedes(options: AedesOptions = {}): Promise<AedesBroker> {
  const broker = await Aedes.createBroker(options);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  const port = await freePort();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `mqtt://${LOOPBACK}:${port}`,
    broker,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        // server.close() waits for open connections; a client that ignores the broker closing
        // (e.g. one that reconnects) must not keep the test run alive.
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
