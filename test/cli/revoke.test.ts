/**
 * `pqc-iiot ca revoke` (I7): each call issues the next cumulative, CA-signed update; the state
 * lives in the CA directory and is rebuilt only from the signed update (a tampered file is
 * refused); with --broker the update is published retained at QoS 1 and a plain subscriber
 * receives an update that a receiver's applyRevocation accepts. `inspect` prints updates.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  isRevoked, EMPTY_REVOCATIONS, applyRevocation, type RevocationState,
} from '../../lib/trust/revocation';
import { toHex, type CaPublicKey } from '../../lib/index';
import { EXIT } from '../../lib/cli/main';
import { MqttConnection, type IncomingMessage } from '../../lib/io/mqtt-connection';
import { ALL_KEYS, decodeRevocation } from '../../lib/wire/revocation';
import { freePort, LOOPBACK } from '../helpers/free-port';
import { startMosquitto, type MosquittoBroker } from '../helpers/mosquitto';
import { CliSandbox, fails, ok, show } from './cli-harness';

const TOPIC = 'pqc/revocations';

/** Receives the retained message on `topic` as a fresh subscriber would (waits on the message, not a timer). */
async function retained(port: number, topic: string): Promise<IncomingMessage> {
  const conn = new MqttConnection({ host: LOOPBACK, port, reconnectPeriodMs: 200 });
  try {
    return await new Promise<IncomingMessage>((resolve) => {
      conn.subscribe(topic, 1, (m) => resolve(m), 'test');
      conn.register('test');
    });
  } finally {
    await conn.close();
  }
}

describe('pqc-iiot ca revoke', function () {
  this.timeout(60_000);
  const box = new CliSandbox();
  let caPub: CaPublicKey;
  let sensorKeyId: string;

  const bin = (dir = 'ca') => new Uint8Array(fs.readFileSync(box.path(dir, 'revocations.bin')));
  /** Applies an update as a receiver on the default topic does. */
  const apply = (state: RevocationState, bytes: Uint8Array) => applyRevocation(state, bytes, TOPIC, TOPIC, caPub);

  before(async () => {
    ok(await box.run(['ca', 'init', '--dir', 'ca']));
    ok(await box.run(['ca', 'init', '--dir', 'other-ca']));
    ok(await box.run(['identity', 'new', '--id', 'sensor-1', '--sig', 'ml-dsa-44', '--out', 'sensor-1.json']));
    sensorKeyId = toHex(box.readIdentity('sensor-1.json').keyId);
    caPub = box.readCaPub('ca', 'ca.pub');
  });

  after(() => box.finish());

  it('"ca revoke --help" documents its options; "ca" lists it', async () => {
    const r = ok(await box.run(['ca', 'revoke', '--help']));
    assert.match(r.stdout, /^Usage: pqc-iiot ca revoke --dir DIR --id DEVICE_ID \[--key-id HEX\] \[--topic TOPIC\] \[--broker URL\] \[--out FILE\]/);
    const group = await box.run(['ca']);
    assert.match(group.stderr, /ca revoke/);
  });

  describe('issuing', () => {
    let first: Uint8Array;

    it('I7 the first revocation is update seq 0 with one entry, verified under ca.pub and bound to the topic', async () => {
      const r = ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-1', '--key-id', sensorKeyId, '--out', 'rev-0.bin']));
      assert.match(r.stdout, /^revoked key [0-9a-f:]{39} of sensor-1$/m);
      assert.match(r.stdout, /update: +seq 0, 1 revoked entry, topic pqc\/revocations/);
      first = bin();
      assert.deepEqual(new Uint8Array(fs.readFileSync(box.path('rev-0.bin'))), first, '--out holds the same bytes');
      const applied = apply(EMPTY_REVOCATIONS, first);
      assert.ok(applied.ok, show(applied));
      assert.equal(applied.value.state.seq, 0n);
      assert.deepEqual(applied.value.added.map((e) => [e.deviceId, toHex(e.keyId)]), [['sensor-1', sensorKeyId]]);
      const json = JSON.parse(fs.readFileSync(box.path('ca', 'revocations.json'), 'utf8')) as { seq: number; topic: string; entries: unknown[] };
      assert.deepEqual([json.seq, json.topic, json.entries], [0, TOPIC, [{ deviceId: 'sensor-1', keyId: sensorKeyId }]]);
      assert.equal(fs.statSync(box.path('ca', 'revocations.bin')).mode & 0o777, 0o644);
    });

    it('I7 each call issues the next, cumulative update; a receiver applies them in order and refuses the older one', async () => {
      const r = ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'plc-7']));
      assert.match(r.stdout, /^revoked every key of plc-7$/m);
      assert.match(r.stdout, /seq 1, 2 revoked entries/);
      const second = bin();
      ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'hmi-2', '--key-id', 'AB'.repeat(16)]));
      const third = bin();

      const u = decodeRevocation(third);
      assert.ok(u.ok);
      assert.equal(u.value.seq, 2n);
      assert.deepEqual(
        u.value.entries.map((e) => [e.deviceId, toHex(e.keyId)]),
        [['hmi-2', 'ab'.repeat(16)], ['plc-7', toHex(ALL_KEYS)], ['sensor-1', sensorKeyId]],
        'every key revoked so far, in canonical order',
      );
      let state = EMPTY_REVOCATIONS;
      for (const bytes of [first, second, third]) {
        const a = apply(state, bytes);
        assert.ok(a.ok, show(a));
        state = a.value.state;
      }
      assert.ok(isRevoked(state, 'plc-7', new Uint8Array(16).fill(9)), 'all keys of plc-7');
      const late = apply(EMPTY_REVOCATIONS, third);
      assert.ok(late.ok && late.value.state.revoked.size === 3, 'a late joiner learns everything from the latest update alone');
      assert.equal(apply(state, second).ok, false, 'the older update is refused (rollback)');
    });

    it('I7 revoking an already revoked key is a no-op: exit 0, message, no new update', async () => {
      const before = bin();
      const again = ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-1', '--key-id', sensorKeyId.toUpperCase()]));
      assert.match(again.stdout, /is already revoked in update seq 2; no new update issued/);
      const asFingerprint = sensorKeyId.match(/.{4}/g)!.join(':');
      assert.match(ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-1', '--key-id', asFingerprint])).stdout, /already revoked/);
      const covered = ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'plc-7', '--key-id', '12'.repeat(16)]));
      assert.match(covered.stdout, /already revoked \(every key of plc-7 is revoked\)/);
      assert.deepEqual(bin(), before);
    });

    it('I7 the state is rebuilt from the signed update only: the readable JSON is never trusted', async () => {
      fs.writeFileSync(box.path('ca', 'revocations.json'), JSON.stringify({ seq: 99, entries: [] }));
      ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-2']));
      const u = decodeRevocation(bin());
      assert.ok(u.ok);
      assert.deepEqual([u.value.seq, u.value.entries.length], [3n, 4]);
      const json = JSON.parse(fs.readFileSync(box.path('ca', 'revocations.json'), 'utf8')) as { seq: number; entries: unknown[] };
      assert.deepEqual([json.seq, json.entries.length], [3, 4], 'the JSON is rewritten from the new update');
    });

    it('I7 a tampered revocations.bin is detected and nothing is issued on top of it', async () => {
      const good = bin();
      for (const offset of [10, good.length - 5]) {
        const bad = Uint8Array.from(good);
        bad[offset] ^= 0x01;
        fs.writeFileSync(box.path('ca', 'revocations.bin'), bad);
        const r = await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-3']);
        fails(r, EXIT.failure, /revocations\.bin (does not verify under this CA's key|is damaged)/);
        assert.deepEqual(bin(), bad, 'left as found');
      }
      // Dropping entries and re-encoding needs the CA key; truncation is caught by the decoder.
      fs.writeFileSync(box.path('ca', 'revocations.bin'), good.subarray(0, good.length - 40));
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-3']), EXIT.failure, /is damaged \(/);
      // An update signed by another CA (e.g. copied from another directory).
      ok(await box.run(['ca', 'revoke', '--dir', 'other-ca', '--id', 'x']));
      fs.copyFileSync(box.path('other-ca', 'revocations.bin'), box.path('ca', 'revocations.bin'));
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-3']), EXIT.failure, /does not verify under this CA's key \(bad-signature\)/);
      // A deleted update next to its JSON is an error, not a fresh start at seq 0.
      fs.rmSync(box.path('ca', 'revocations.bin'));
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-3']), EXIT.failure, /revocations\.bin is missing but .*revocations\.json exists/);
      fs.writeFileSync(box.path('ca', 'revocations.bin'), good);
      ok(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'sensor-3']));
      const u = decodeRevocation(bin());
      assert.ok(u.ok && u.value.seq === 4n, 'continues from the restored update');
    });

    it('I7 a CA directory serves one topic: another --topic is refused, the stored one is the default', async () => {
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'z', '--topic', 'site-b/revocations']), EXIT.failure, /bound to topic "pqc\/revocations"/);
      ok(await box.run(['ca', 'init', '--dir', 'ca-b']));
      ok(await box.run(['ca', 'revoke', '--dir', 'ca-b', '--id', 'z', '--topic', 'site-b/revocations']));
      ok(await box.run(['ca', 'revoke', '--dir', 'ca-b', '--id', 'y']));
      const u = decodeRevocation(bin('ca-b'));
      assert.ok(u.ok);
      assert.deepEqual([u.value.topic, u.value.seq], ['site-b/revocations', 1n]);
    });

    it('inspect prints a revocation update and checks it with --ca', async () => {
      const r = ok(await box.run(['inspect', 'ca/revocations.bin', '--ca', 'ca']));
      const report = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(report.type, 'revocation');
      assert.equal(report.topic, TOPIC);
      assert.equal(report.seq, 4);
      assert.deepEqual(report.verification, { ok: true });
      assert.deepEqual((report.entries as Array<Record<string, unknown>>).find((e) => e.deviceId === 'plc-7'), { deviceId: 'plc-7', keyId: toHex(ALL_KEYS), allKeys: true });
      assert.match(String(report.issuedAt), /^\d{4}-\d\d-\d\dT/);
      const hex = ok(await box.run(['inspect', '-'], { stdin: Buffer.from(bin()).toString('hex') }));
      assert.equal((JSON.parse(hex.stdout) as Record<string, unknown>).seq, 4);
      fails(await box.run(['inspect', 'ca/revocations.bin', '--ca', 'other-ca']), EXIT.failure, /verification failed: bad-signature/);
    });

    it('bad input: unknown CA dir, bad device id, bad key id, bad topic, bad broker URL or timeout', async () => {
      fails(await box.run(['ca', 'revoke', '--dir', 'no-such-ca', '--id', 'a']), EXIT.failure, /CA directory no-such-ca does not exist/);
      fs.mkdirSync(box.path('empty-dir'));
      fails(await box.run(['ca', 'revoke', '--dir', 'empty-dir', '--id', 'a']), EXIT.failure, /holds no CA/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'bad id']), EXIT.usage, /invalid device id "bad id"/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'x'.repeat(129)]), EXIT.usage, /invalid device id/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca']), EXIT.usage, /missing --id DEVICE_ID/);
      for (const k of ['abc', 'g'.repeat(32), 'a'.repeat(31), 'a'.repeat(33)]) {
        fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--key-id', k]), EXIT.usage, /--key-id must be 32 hex digits/);
      }
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--topic', 'pqc/#']), EXIT.usage, /is not an MQTT topic name/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--broker', 'http://x']), EXIT.usage, /unsupported scheme "http"/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--broker', 'not a url']), EXIT.usage, /--broker must be a URL/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--broker', 'mqtt://h/path']), EXIT.usage, /no path or query/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--timeout', '0']), EXIT.usage, /--timeout must be/);
      fails(await box.run(['ca', 'revoke', '--dir', 'ca', '--id', 'a', '--out', 'no-dir/u.bin']), EXIT.failure, /--out: directory no-dir does not exist/);
      const u = decodeRevocation(bin());
      assert.ok(u.ok && u.value.seq === 4n, 'no bad call issued anything');
    });
  });

  describe('publishing to a broker', () => {
    let broker: MosquittoBroker;
    before(async () => {
      broker = await startMosquitto();
    });
    after(async () => {
      await broker.stop();
    });

    it('I7 --broker publishes the update retained at QoS 1; a later subscriber receives it and applyRevocation accepts it', async () => {
      ok(await box.run(['ca', 'init', '--dir', 'ca-pub']));
      const pub = box.readCaPub('ca-pub', 'ca.pub');
      const r = ok(await box.run(['ca', 'revoke', '--dir', 'ca-pub', '--id', 'sensor-1', '--key-id', sensorKeyId, '--broker', broker.url]));
      assert.match(r.stdout, new RegExp(`published retained \\(QoS 1\\) on pqc/revocations at mqtt://${LOOPBACK}:${broker.port}`));

      const m = await retained(broker.port, TOPIC);
      assert.equal(m.retain, true);
      assert.deepEqual(new Uint8Array(m.payload), bin('ca-pub'));
      const applied = applyRevocation(EMPTY_REVOCATIONS, new Uint8Array(m.payload), m.topic, TOPIC, pub);
      assert.ok(applied.ok, show(applied));
      assert.ok(isRevoked(applied.value.state, 'sensor-1', Buffer.from(sensorKeyId, 'hex')));

      // The next update replaces the retained one.
      ok(await box.run(['ca', 'revoke', '--dir', 'ca-pub', '--id', 'plc-7', '--broker', broker.url]));
      const next = await retained(broker.port, TOPIC);
      const a2 = applyRevocation(applied.value.state, new Uint8Array(next.payload), next.topic, TOPIC, pub);
      assert.ok(a2.ok && a2.value.state.seq === 1n && a2.value.added[0].deviceId === 'plc-7');
    });

    it('I7 an unreachable broker fails with exit 1 but keeps the update; running again publishes it', async () => {
      ok(await box.run(['ca', 'init', '--dir', 'ca-offline']));
      const closedPort = await freePort();
      const r = await box.run(['ca', 'revoke', '--dir', 'ca-offline', '--id', 'pump-3', '--broker', `mqtt://${LOOPBACK}:${closedPort}`]);
      fails(r, EXIT.failure, /update seq 0 is saved in the CA directory but was not published to mqtt:\/\/127\.0\.0\.1:\d+: .*Run the command again/);
      const saved = bin('ca-offline');
      const again = ok(await box.run(['ca', 'revoke', '--dir', 'ca-offline', '--id', 'pump-3', '--broker', broker.url]));
      assert.match(again.stdout, /already revoked in update seq 0; no new update issued/);
      assert.match(again.stdout, /published again retained \(QoS 1\)/);
      assert.deepEqual(bin('ca-offline'), saved, 'no new update');
      const m = await retained(broker.port, TOPIC);
      assert.deepEqual(new Uint8Array(m.payload), saved);
    });

    it('credentials in --broker are never printed', async () => {
      ok(await box.run(['ca', 'init', '--dir', 'ca-cred']));
      const url = `mqtt://operator:s3cr3t-pw@${LOOPBACK}:${broker.port}`;
      const r = ok(await box.run(['ca', 'revoke', '--dir', 'ca-cred', '--id', 'a', '--broker', url]));
      assert.equal(`${r.stdout}${r.stderr}`.includes('s3cr3t-pw'), false);
    });
  });
});
