/**
 * Child process of the crash tests (test/crash/kill9.test.ts), run as plain `node` on the
 * compiled file: one config node's worth of runtime — SecureSession, StateStore, the real
 * MqttConnection and SecureEndpoint — built by lib/io/config.ts exactly as pqc-config builds it,
 * against the broker the parent runs. The parent SIGKILLs it at any moment.
 *
 * Environment:
 *   PQC_FIXTURE_ROLE       receiver | sender
 *   PQC_FIXTURE_IDENTITY   path of the identity bundle (JSON)
 *   PQC_FIXTURE_CA         CA public key text
 *   PQC_FIXTURE_PORT       broker port on 127.0.0.1
 *   PQC_FIXTURE_STATE_DIR  the state folder (kept across restarts)
 *   PQC_FIXTURE_TOPIC      data topic
 *   PQC_FIXTURE_PEER       receiver: the sender it waits for before "ready"
 *   PQC_FIXTURE_CLOCK_OFFSET_MS  added to Date.now() (a clock set back)
 *   PQC_FIXTURE_COUNT      sender: how many messages to send (default 100000)
 *
 * stdout, one line each, written synchronously (pipes are synchronous on Linux), so a line the
 * parent reads was printed before the kill:
 *   ready peers=N fresh=BOOL       restored and subscribed: messages may come
 *   A SEQ                          receiver: a message was released to the "flow" (after its state was stored)
 *   R REASON                       receiver: a message was rejected
 *   S N                            sender: the N-th message was handed to MQTT and acknowledged
 *   E PROBLEM MESSAGE              start refused (state-rollback, state-unreadable…); exit code 3
 */
import fs from 'node:fs';
import { buildFromConfig } from '../../lib/io/config';

function out(line: string): void {
  fs.writeSync(1, line + '\n');
}

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

async function main(): Promise<void> {
  const role = env('PQC_FIXTURE_ROLE');
  const offset = Number(process.env.PQC_FIXTURE_CLOCK_OFFSET_MS ?? '0');
  const clock = (): number => Date.now() + offset;
  const topic = env('PQC_FIXTURE_TOPIC');
  const outcome = buildFromConfig(
    { broker: '127.0.0.1', port: env('PQC_FIXTURE_PORT'), protocol: '4', strict: true, caPublicKey: env('PQC_FIXTURE_CA') },
    { identity: fs.readFileSync(env('PQC_FIXTURE_IDENTITY'), 'utf8') },
    {
      ownerId: 'crash-fixture',
      clock,
      stateDir: env('PQC_FIXTURE_STATE_DIR'),
      reconnectPeriodMs: 200,
      log: (level, message) => process.stderr.write(`[${level}] ${message}\n`),
    },
  );
  if (!outcome.ok) {
    out(`E ${outcome.problem} ${outcome.message}`);
    process.exit(3);
  }
  const { connection, endpoint, session } = outcome;
  connection.on('warning', (m) => process.stderr.write(`[warn] ${m}\n`));
  endpoint.on('warning', (m) => process.stderr.write(`[warn] ${m}\n`));

  const state = await outcome.ready;
  if (!state.ok) {
    out(`E ${state.problem} ${state.message}`);
    await outcome.close();
    process.exit(3);
  }
  const fresh = state.fresh;

  if (role === 'receiver') {
    const peer = env('PQC_FIXTURE_PEER');
    endpoint.subscribe(topic, 1, (verdict) => {
      if (verdict.ok) out(`A ${verdict.message.pqc.seq}`);
      else out(`R ${verdict.rejection.reason}`);
    }, 'fixture');
    const subscribed = new Promise<void>((resolve) => {
      const onAck = (filter: string): void => {
        if (filter === topic) {
          connection.off('subscribed', onAck);
          resolve();
        }
      };
      connection.on('subscribed', onAck);
    });
    const trusted = session.listPeers().some((p) => p.deviceId === peer)
      ? Promise.resolve()
      : new Promise<void>((resolve) => endpoint.on('peer', (p) => p.deviceId === peer && resolve()));
    connection.register('fixture');
    await Promise.all([subscribed, trusted]);
    out(`ready peers=${session.listPeers().length} fresh=${fresh}`);
    return; // runs until killed
  }

  if (role === 'sender') {
    connection.register('fixture');
    const count = Number(process.env.PQC_FIXTURE_COUNT ?? '100000');
    out(`ready peers=${session.listPeers().length} fresh=${fresh}`);
    for (let i = 1; i <= count; i++) {
      await endpoint.send(topic, Buffer.from(`reading ${i}`), { recipients: [], qos: 1, retain: false });
      out(`S ${i}`);
    }
    return;
  }
  throw new Error(`unknown role ${role}`);
}

main().catch((error: unknown) => {
  out(`E fixture ${error instanceof Error ? error.message : String(error)}`);
  process.exit(2);
});
