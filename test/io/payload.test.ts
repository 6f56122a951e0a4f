/** msg.payload ⇄ bytes (lib/io/payload.ts), matching core mqtt out / mqtt in conventions. */
import assert from 'node:assert/strict';
import { bytesToPayload, payloadToBytes } from '../../lib/io/payload';

describe('io/payload', function () {
  it('encodes Buffer, string, object, number, boolean and null like core mqtt out', function () {
    const buf = Buffer.from([1, 2, 3]);
    assert.equal(payloadToBytes(buf), buf);
    assert.deepEqual(payloadToBytes(new Uint8Array([4, 5])), Buffer.from([4, 5]));
    assert.equal(payloadToBytes('héllo').toString('utf8'), 'héllo');
    assert.equal(payloadToBytes({ a: [1, 'x'] }).toString(), '{"a":[1,"x"]}');
    assert.equal(payloadToBytes(42).toString(), '42');
    assert.equal(payloadToBytes(false).toString(), 'false');
    assert.equal(payloadToBytes(null).length, 0);
  });

  it('refuses what cannot be sent, without quoting the value', function () {
    assert.throws(() => payloadToBytes(undefined), /msg.payload is missing/);
    assert.throws(() => payloadToBytes(() => 1), /of type function/);
    const cyclic: Record<string, unknown> = { secret: 'do-not-print' };
    cyclic.self = cyclic;
    assert.throws(() => payloadToBytes(cyclic), (e: Error) => /cannot be converted to JSON/.test(e.message) && !e.message.includes('do-not-print'));
    assert.throws(() => payloadToBytes({ n: 1n }), /JSON/);
  });

  it('decodes per datatype', function () {
    const json = Buffer.from('{"a":1}');
    assert.deepEqual(bytesToPayload(json, 'buffer'), { ok: true, value: json });
    assert.deepEqual(bytesToPayload(json, 'utf8'), { ok: true, value: '{"a":1}' });
    assert.deepEqual(bytesToPayload(json, 'json'), { ok: true, value: { a: 1 } });
    assert.deepEqual(bytesToPayload(json, 'auto-detect'), { ok: true, value: { a: 1 } });
    assert.deepEqual(bytesToPayload(Buffer.from('nope'), 'json'), { ok: false, error: 'payload is not valid JSON' });
  });

  it('auto-detect: JSON values (as core does), else text, else the Buffer', function () {
    assert.deepEqual(bytesToPayload(Buffer.from('42'), 'auto-detect'), { ok: true, value: 42 });
    assert.deepEqual(bytesToPayload(Buffer.from('just text'), 'auto-detect'), { ok: true, value: 'just text' });
    assert.deepEqual(bytesToPayload(Buffer.alloc(0), 'auto-detect'), { ok: true, value: '' });
    const binary = Buffer.from([0xff, 0xfe, 0x00]);
    const r = bytesToPayload(binary, 'auto-detect');
    assert.ok(r.ok && Buffer.isBuffer(r.value));
  });
});
