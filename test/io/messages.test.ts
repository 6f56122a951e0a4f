/** Node settings and msg → what is sent; verdicts → what is emitted (lib/io/messages.ts). */
import assert from 'node:assert/strict';
import { inSettingsFrom, outRequestFrom, outSettingsFrom, parseRecipients, rejectionMsg, strategyFrom, verifiedMsg } from '../../lib/io/messages';

describe('io/messages', function () {
  describe('pqc-secure-out', function () {
    it('node settings win over msg; blanks take msg values; defaults QoS 0, no retain', function () {
      const fixed = outSettingsFrom({ topic: 'plant/a', qos: '2', retain: 'true', recipients: 'gw, hmi ,gw' });
      assert.deepEqual(fixed.recipients, ['gw', 'hmi']);
      const r = outRequestFrom(fixed, { topic: 'other', qos: 0, retain: false, recipients: ['x'], payload: 'p' });
      const hourly = { kind: 'seconds', count: 3600 };
      assert.deepEqual({ ...r, data: r.data.toString() }, { topic: 'plant/a', qos: 2, retain: true, recipients: ['gw', 'hmi'], strategy: hourly, compact: false, data: 'p' });

      const open = outSettingsFrom({ topic: '', qos: '', retain: '', recipients: '' });
      const m = outRequestFrom(open, { topic: 'plant/b', qos: '1', retain: true, recipients: 'gw', payload: { a: 1 } });
      assert.deepEqual({ ...m, data: m.data.toString() }, { topic: 'plant/b', qos: 1, retain: true, recipients: ['gw'], strategy: hourly, compact: false, data: '{"a":1}' });
      const d = outRequestFrom(open, { topic: 'plant/b', recipients: ['gw'], payload: 'x' });
      assert.equal(d.qos, 0);
      assert.equal(d.retain, false);
    });

    it('reports bad settings and bad messages instead of coercing them', function () {
      assert.throws(() => outSettingsFrom({ topic: 'a/#' }), /not a valid MQTT topic/);
      assert.throws(() => outSettingsFrom({ qos: '3' }), /QoS/);
      assert.throws(() => outSettingsFrom({ recipients: 'ok, bad id' }), /not a valid device id/);
      const open = outSettingsFrom({});
      assert.throws(() => outRequestFrom(open, { recipients: 'gw', payload: 1 }), /no topic/);
      assert.throws(() => outRequestFrom(open, { topic: 'a/+', recipients: 'gw', payload: 1 }), /not a valid MQTT topic/);
      assert.throws(() => outRequestFrom(open, { topic: 'a', qos: 5, recipients: 'gw', payload: 1 }), /msg.qos must be 0, 1 or 2/);
      assert.throws(() => outRequestFrom(open, { topic: 'a', recipients: 7, payload: 1 }), /msg.recipients must be/);
      assert.throws(() => outRequestFrom(open, { topic: 'a', recipients: 'gw' }), /msg.payload is missing/);
    });

    it('Signatures: each message (default) or compact, topic mode only; compact refuses retain; anything else is refused', function () {
      assert.equal(outSettingsFrom({}).compact, false);
      assert.equal(outSettingsFrom({ signatures: 'each' }).compact, false);
      const compact = outSettingsFrom({ signatures: 'compact' });
      assert.equal(compact.compact, true);
      assert.equal(outRequestFrom(compact, { topic: 'a', payload: 1 }).compact, true);
      assert.equal(outRequestFrom(compact, { topic: 'a', recipients: 'gw', payload: 1 }).compact, false, 'direct mode has no compact form');
      assert.throws(() => outRequestFrom(compact, { topic: 'a', retain: true, payload: 1 }), /cannot be retained/);
      assert.throws(() => outSettingsFrom({ signatures: 'none' }), /signatures must be one of each, compact/);
    });

    it('no recipients anywhere selects topic mode, with the node\'s key strategy or msg.rotateKey', function () {
      const open = outSettingsFrom({ keyStrategy: 'packets', keyThreshold: '100' });
      const r = outRequestFrom(open, { topic: 'a', payload: 1 });
      assert.deepEqual(r.recipients, []);
      assert.deepEqual(r.strategy, { kind: 'packets', count: 100 });
      assert.deepEqual(outRequestFrom(open, { topic: 'a', payload: 1, rotateKey: true }).strategy, { kind: 'ephemeral' });
      assert.deepEqual(outRequestFrom(open, { topic: 'a', payload: 1, rotateKey: 'yes' }).strategy, { kind: 'packets', count: 100 }, 'only true rotates');
    });

    it('reads every key strategy from the editor, and refuses bad ones', function () {
      assert.deepEqual(strategyFrom({}), { kind: 'seconds', count: 3600 });
      assert.deepEqual(strategyFrom({ keyStrategy: 'seconds', keyThreshold: '' }), { kind: 'seconds', count: 3600 });
      assert.deepEqual(strategyFrom({ keyStrategy: 'ephemeral', keyThreshold: 'ignored' }), { kind: 'ephemeral' });
      assert.deepEqual(strategyFrom({ keyStrategy: 'bytes', keyThreshold: '65536' }), { kind: 'bytes', count: 65536 });
      assert.deepEqual(strategyFrom({ keyStrategy: 'schedule', keyThreshold: '3600', keyEpoch: '2026-01-01T00:00:00Z' }), {
        kind: 'schedule', epochMs: Date.UTC(2026, 0, 1), intervalMs: 3_600_000,
      });
      assert.deepEqual(strategyFrom({ keyStrategy: 'schedule', keyThreshold: '60' }), { kind: 'schedule', epochMs: 0, intervalMs: 60_000 });
      assert.throws(() => strategyFrom({ keyStrategy: 'weekly' }), /key strategy must be one of/);
      assert.throws(() => strategyFrom({ keyStrategy: 'packets' }), /threshold must be a positive integer/);
      assert.throws(() => strategyFrom({ keyStrategy: 'packets', keyThreshold: '0' }), /positive integer/);
      assert.throws(() => strategyFrom({ keyStrategy: 'bytes', keyThreshold: '1.5' }), /positive integer/);
      assert.throws(() => strategyFrom({ keyStrategy: 'schedule', keyThreshold: '60', keyEpoch: 'soon' }), /epoch must be a date/);
      assert.throws(() => outSettingsFrom({ keyStrategy: 'packets', keyThreshold: '-3' }), /positive integer/);
    });

    it('parses recipient lists from strings and arrays', function () {
      assert.deepEqual(parseRecipients(undefined, 'r'), []);
      assert.deepEqual(parseRecipients(' a,b , ,a ', 'r'), ['a', 'b']);
      assert.deepEqual(parseRecipients(['a', 'c'], 'r'), ['a', 'c']);
      assert.throws(() => parseRecipients(['a', 3], 'r'), /r: 3 is not a valid device id/);
    });
  });

  describe('pqc-secure-in', function () {
    it('reads the editor settings with core defaults (QoS 2, auto-detect)', function () {
      assert.deepEqual(inSettingsFrom({ topic: ' plant/+/t ' }), { filter: 'plant/+/t', qos: 2, datatype: 'auto-detect', rejectionsOutput: false });
      assert.deepEqual(inSettingsFrom({ topic: '#', qos: '0', datatype: 'json', rejections: true }), { filter: '#', qos: 0, datatype: 'json', rejectionsOutput: true });
      assert.throws(() => inSettingsFrom({ topic: '' }), /empty/);
      assert.throws(() => inSettingsFrom({ topic: 'a/#/b' }), /not valid/);
      assert.throws(() => inSettingsFrom({ topic: 'a', qos: '9' }), /QoS/);
      assert.throws(() => inSettingsFrom({ topic: 'a', datatype: 'xml' }), /datatype/);
    });

    const pqc = { sender: 's', keyId: '00', keyEpoch: 1, seq: '5', timestamp: 1, suite: 'x' };

    it('builds the verified msg, or an error carrying the text for json failures', function () {
      const message = { topic: 't', data: Buffer.from('{"v":2}'), qos: 1 as const, retain: true, pqc };
      assert.deepEqual(verifiedMsg(message, 'json'), { ok: true, msg: { payload: { v: 2 }, topic: 't', qos: 1, retain: true, pqc } });
      const bad = verifiedMsg({ ...message, data: Buffer.from('nope') }, 'json');
      assert.equal(bad.ok, false);
      assert.equal(bad.msg.payload, 'nope');
    });

    it('builds the rejection msg with a description', function () {
      const m = rejectionMsg({ reason: 'replay', topic: 't', sender: 's' });
      assert.equal(m.topic, 't');
      assert.equal(m.payload.reason, 'replay');
      assert.equal(m.payload.sender, 's');
      assert.match(m.payload.description, /older than the replay window/);
    });
  });
});
