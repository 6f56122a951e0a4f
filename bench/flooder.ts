/**
 * Child process of the benchmark's flood scenario (an attacker outside the Node-RED process):
 * publishes forged topic envelopes (bench/forge.ts) at a fixed rate on loopback, then prints
 * {"sent": n} and exits. Argument: JSON {url, topic, template (hex), rate, durationMs, startSeq}.
 */
import mqtt from 'mqtt';
import { forgeTopicEnvelope } from './forge';

interface FloodArgs {
  url: string;
  topic: string;
  template: string;
  rate: number;
  durationMs: number;
  startSeq: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as FloodArgs;
  const template = new Uint8Array(Buffer.from(args.template, 'hex'));
  let seq = BigInt(args.startSeq);
  // Made before the clock starts, so the rate is not limited by forging.
  const total = Math.ceil((args.rate * args.durationMs) / 1000);
  const forged = Array.from({ length: total }, () => Buffer.from(forgeTopicEnvelope(template, seq++)));
  const client = await mqtt.connectAsync(args.url, { reconnectPeriod: 0, clientId: `bench-flooder-${process.pid}` });
  const started = Date.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((Date.now() - started) * args.rate) / 1000));
      while (sent < due) client.publish(args.topic, forged[sent++], { qos: 0 });
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  await client.endAsync();
  process.stdout.write(JSON.stringify({ sent, ms: Date.now() - started }) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`flooder: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
