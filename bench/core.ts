/**
 * Core pipeline cost without MQTT or Node-RED (process CPU time, not wall time: the machine is shared): one sender session seals topic-mode messages,
 * one receiver session opens them, in memory. Microseconds of main-thread CPU per message for
 * each side (crypto offload off, so the signature work is on the measured thread too, and is
 * reported apart). `node dist/bench/core.js [--messages=N] [--leaves=N]`.
 */
import { setCryptoOffload } from '../lib/crypto/worker-pool';
import { SoftwareProvider } from '../lib/session/provider';
import { createCa, createIdentity, issueCertificate } from '../lib/session/identity';
import { SecureSession } from '../lib/session/session';

const arg = (name: string, def: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def);

/** The median chunk: robust against other work on a shared machine. */
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

export async function corePipeline(messages: number, maxLeaves: number): Promise<{ sealUs: number; openUs: number; signatures: number; verifications: number }> {
  setCryptoOffload('never');
  const now = Date.now();
  const ca = createCa();
  const cert = (id: string) => issueCertificate(ca, createIdentity({ deviceId: id, sigAlgorithm: 'Falcon-512' }), {
    roles: 'both', topics: ['bench/#'], notBefore: now - 3600_000, notAfter: now + 86400_000,
  });
  const sender = new SecureSession({ provider: new SoftwareProvider(cert('sensor')), caPublicKey: ca.publicKey, batch: { maxLeaves } });
  const receiver = new SecureSession({ provider: new SoftwareProvider(cert('gateway')), caPublicKey: ca.publicKey });
  await sender.handleAnnouncement(receiver.announcementTopic(), await receiver.buildAnnouncement(now), now);
  await receiver.handleAnnouncement(sender.announcementTopic(), await sender.buildAnnouncement(now), now);
  const topic = 'bench/topic';
  const payload = Buffer.alloc(100, 0x5a);
  const first = await sender.sealTopic(topic, payload, now);
  if (first.keyMessage) await receiver.handleKeyMessage(first.keyMessage.topic, first.keyMessage.payload, now);
  await receiver.open(topic, first.envelope, now);
  const sig0 = sender.throughputStats.batching?.signatures ?? 0;
  const ver0 = receiver.throughputStats.verifications;
  const chunk = 256;
  const sealMs: number[] = [];
  const openMs: number[] = [];
  for (let done = 0; done < messages; done += chunk) {
    let t = process.cpuUsage();
    const sealed = await Promise.all(Array.from({ length: chunk }, () => sender.sealTopic(topic, payload, now)));
    sealMs.push(cpuMs(process.cpuUsage(t)));
    t = process.cpuUsage();
    const opened = await Promise.all(sealed.map((s) => receiver.open(topic, s.envelope, now)));
    openMs.push(cpuMs(process.cpuUsage(t)));
    const bad = opened.find((r) => !r.ok);
    if (bad && !bad.ok) throw new Error(`refused: ${bad.reason}`);
  }
  const n = Math.ceil(messages / chunk) * chunk;
  return {
    sealUs: (median(sealMs) * 1000) / chunk,
    openUs: (median(openMs) * 1000) / chunk,
    signatures: ((sender.throughputStats.batching?.signatures ?? 0) - sig0) / n,
    verifications: (receiver.throughputStats.verifications - ver0) / n,
  };
}

if (require.main === module) {
  corePipeline(arg('messages', 20_000), arg('leaves', 255)).then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }, (e: unknown) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(1);
  });
}
