/**
 * The closed list of reason codes (lib/result.ts, docs/PROTOCOL.md §8): one result type for
 * untrusted input, every rejection from this list.
 */
import assert from 'node:assert/strict';
import { REASONS, REASON_CODES, fail, isReason, ok } from '../../lib';

describe('result', () => {
  it('REASON_CODES is the frozen key list of REASONS, each with a description', () => {
    assert.ok(Object.isFrozen(REASONS) && Object.isFrozen(REASON_CODES));
    assert.deepEqual([...REASON_CODES], Object.keys(REASONS));
    assert.equal(new Set(REASON_CODES).size, REASON_CODES.length);
    for (const code of REASON_CODES) {
      assert.match(code, /^[a-z]+(-[a-z]+)*$/, 'stable kebab-case code');
      assert.ok(REASONS[code].length > 10, `${code} is described`);
    }
  });

  it('the codes the core battery relies on are in the list', () => {
    for (const code of [
      'too-large', 'truncated', 'trailing-data', 'bad-magic', 'bad-version', 'bad-type', 'unknown-algorithm', 'bad-length',
      'bad-id', 'bad-field', 'topic-mismatch', 'no-certificate', 'bad-certificate', 'certificate-subject',
      'certificate-key-mismatch', 'key-id-mismatch', 'not-yet-valid', 'expired', 'epoch-rollback', 'epoch-collision',
      'bad-signature', 'peer-limit', 'unknown-sender', 'stale-key', 'not-authorized', 'not-for-me', 'replay', 'duplicate',
      'decrypt-failed', 'stale', 'own-message',
    ]) assert.ok(isReason(code), code);
  });

  it('isReason accepts only listed codes, not prototype names or other values', () => {
    for (const x of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'TRUNCATED', ' truncated', '', undefined, null, 1, {}]) {
      assert.equal(isReason(x), false, String(x));
    }
  });

  it('ok and fail build the two result shapes; detail only when given', () => {
    assert.deepEqual(ok(5), { ok: true, value: 5 });
    assert.deepEqual(fail('truncated'), { ok: false, reason: 'truncated' });
    assert.ok(!('detail' in fail('truncated')));
    assert.deepEqual(fail('bad-length', 'capsule'), { ok: false, reason: 'bad-length', detail: 'capsule' });
  });
});
