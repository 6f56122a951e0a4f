/** Throughput and flood-protection settings of pqc-config: editor strings → session options (lib/io/throughput-settings.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { THROUGHPUT_NUMBERS, throughputOptionsFrom, type ThroughputSettings } from '../../lib/io/throughput-settings';
import { DEFAULT_LIMITS, LIMIT_BOUNDS, resolveLimits } from '../../lib/limits';
import { DEFAULT_BATCH_OPTIONS, DEFAULT_VERIFIED_ROOTS, resolveBatchOptions } from '../../lib/session/batch';
import { DEFAULT_COMPACT_BATCH_OPTIONS, resolveCompactBatchOptions } from '../../lib/session/compact';
import { DEFAULT_BUDGET, resolveBudget } from '../../lib/trust/budget';

const ROOT = join(__dirname, '..', '..', '..');
const EMPTY_FORM: ThroughputSettings = {
  batching: '', batchMaxLeaves: '', batchMaxDelayMs: '', verifiedRoots: '', budget: '',
  budgetVerifyPerPeerBurst: '', budgetVerifyPerPeerRate: '', budgetVerifyGlobalBurst: '', budgetVerifyGlobalRate: '',
  budgetDecapsulatePerPeerBurst: '', budgetDecapsulatePerPeerRate: '', budgetDecapsulateGlobalBurst: '', budgetDecapsulateGlobalRate: '',
  cryptoWorkers: '',
  compactBatchMaxDigests: '', compactBatchMaxDelayMs: '', compactWaitMs: '', maxCompactPending: '', maxManifestBytes: '',
};
/** The compact-mode settings: flows.json property → where it lands in the session options. */
const COMPACT_KEYS = ['compactBatchMaxDigests', 'compactBatchMaxDelayMs', 'compactWaitMs', 'maxCompactPending', 'maxManifestBytes'] as const;
const COMPACT_LIMITS = ['compactWaitMs', 'maxCompactPending', 'maxManifestBytes'] as const;

describe('io/throughput-settings', function () {
  it('absent or empty properties give exactly the core defaults (flows saved before these settings run as before)', function () {
    const expected = {
      batch: DEFAULT_BATCH_OPTIONS, verifiedRoots: DEFAULT_VERIFIED_ROOTS, budget: DEFAULT_BUDGET, cryptoWorkers: 'auto',
      compactBatch: DEFAULT_COMPACT_BATCH_OPTIONS,
      limits: { compactWaitMs: DEFAULT_LIMITS.compactWaitMs, maxCompactPending: DEFAULT_LIMITS.maxCompactPending, maxManifestBytes: DEFAULT_LIMITS.maxManifestBytes },
    };
    assert.deepEqual(throughputOptionsFrom({}), expected);
    assert.deepEqual(throughputOptionsFrom(EMPTY_FORM), expected);
  });

  it('maps every property to its own place in the session options', function () {
    const o = throughputOptionsFrom({
      batching: 'true', batchMaxLeaves: '8', batchMaxDelayMs: '25', verifiedRoots: '77', budget: true,
      budgetVerifyPerPeerBurst: '11', budgetVerifyPerPeerRate: '1.5', budgetVerifyGlobalBurst: '13', budgetVerifyGlobalRate: '14',
      budgetDecapsulatePerPeerBurst: '21', budgetDecapsulatePerPeerRate: '0', budgetDecapsulateGlobalBurst: '23', budgetDecapsulateGlobalRate: '24.25',
      cryptoWorkers: 'off',
      compactBatchMaxDigests: '32', compactBatchMaxDelayMs: '250', compactWaitMs: '5000', maxCompactPending: '64', maxManifestBytes: '4096',
    });
    assert.deepEqual(o, {
      batch: { maxLeaves: 8, maxDelayMs: 25 },
      verifiedRoots: 77,
      budget: {
        verify: { perPeer: { rate: 1.5, burst: 11 }, global: { rate: 14, burst: 13 } },
        decapsulate: { perPeer: { rate: 0, burst: 21 }, global: { rate: 24.25, burst: 23 } },
        maxTrackedPeers: DEFAULT_BUDGET.maxTrackedPeers,
      },
      cryptoWorkers: 'off',
      compactBatch: { maxLeaves: 32, maxDelayMs: 250 },
      limits: { compactWaitMs: 5000, maxCompactPending: 64, maxManifestBytes: 4096 },
    });
    // What the builder hands over is what the core itself would resolve.
    assert.deepEqual(resolveBatchOptions(o.batch || undefined), o.batch);
    assert.deepEqual(resolveBudget(o.budget || undefined), o.budget);
    assert.deepEqual(resolveCompactBatchOptions(o.compactBatch), o.compactBatch);
    assert.deepEqual(resolveLimits(o.limits), { ...DEFAULT_LIMITS, ...o.limits });
  });

  it('compact mode: each setting is parsed on its own, to its own place, the others keeping their defaults', function () {
    const defaults = throughputOptionsFrom({});
    const where = (o: ReturnType<typeof throughputOptionsFrom>, key: (typeof COMPACT_KEYS)[number]): number =>
      key === 'compactBatchMaxDigests' ? o.compactBatch.maxLeaves
        : key === 'compactBatchMaxDelayMs' ? o.compactBatch.maxDelayMs
        : o.limits[key];
    for (const key of COMPACT_KEYS) {
      const { min, max } = THROUGHPUT_NUMBERS[key];
      for (const value of [min, max, Math.floor((min + max) / 2)]) {
        for (const given of [String(value), value]) {
          const o = throughputOptionsFrom({ [key]: given });
          assert.equal(where(o, key), value, `${key} = ${JSON.stringify(given)}`);
          for (const other of COMPACT_KEYS.filter((k) => k !== key)) assert.equal(where(o, other), where(defaults, other), `${other} untouched by ${key}`);
          // Nothing else moves: batching, budgets and the rest keep their defaults.
          assert.deepEqual({ ...o, compactBatch: undefined, limits: undefined }, { ...defaults, compactBatch: undefined, limits: undefined });
        }
      }
    }
    // Only the three compact limits are set here: replayWindow, maxEnvelopeBytes and the rest come from elsewhere.
    assert.deepEqual(Object.keys(defaults.limits).sort(), [...COMPACT_LIMITS].sort());
  });

  it('compact mode: the defaults and ranges are the core\'s own (lib/limits.ts, resolveCompactBatchOptions)', function () {
    for (const key of COMPACT_LIMITS) {
      const spec = THROUGHPUT_NUMBERS[key];
      assert.deepEqual([spec.min, spec.max, spec.fallback, spec.integer], [...LIMIT_BOUNDS[key], DEFAULT_LIMITS[key], true], key);
      // The core accepts both ends and refuses one step beyond either.
      assert.equal(resolveLimits({ [key]: spec.min })[key], spec.min);
      assert.equal(resolveLimits({ [key]: spec.max })[key], spec.max);
      assert.throws(() => resolveLimits({ [key]: spec.max + 1 }), new RegExp(key));
      if (spec.min > 0) assert.throws(() => resolveLimits({ [key]: spec.min - 1 }), new RegExp(key));
    }
    const digests = THROUGHPUT_NUMBERS.compactBatchMaxDigests;
    const delay = THROUGHPUT_NUMBERS.compactBatchMaxDelayMs;
    assert.deepEqual([digests.fallback, delay.fallback], [DEFAULT_COMPACT_BATCH_OPTIONS.maxLeaves, DEFAULT_COMPACT_BATCH_OPTIONS.maxDelayMs]);
    assert.deepEqual([digests.min, digests.max, delay.min, delay.max], [1, 255, 0, 1000]);
    assert.equal(resolveCompactBatchOptions({ maxLeaves: digests.min, maxDelayMs: delay.min }).maxLeaves, digests.min);
    assert.equal(resolveCompactBatchOptions({ maxLeaves: digests.max, maxDelayMs: delay.max }).maxDelayMs, delay.max);
    assert.throws(() => resolveCompactBatchOptions({ maxLeaves: digests.min - 1 }), /maxLeaves/);
    assert.throws(() => resolveCompactBatchOptions({ maxLeaves: digests.max + 1 }), /maxLeaves/);
    assert.throws(() => resolveCompactBatchOptions({ maxDelayMs: delay.max + 1 }), /maxDelayMs/);
    assert.throws(() => resolveCompactBatchOptions({ maxDelayMs: delay.min - 1 }), /maxDelayMs/);
  });

  it('compact mode: refuses anything that is not a plain whole number in range, naming the setting as the editor labels it', function () {
    const expected: Record<(typeof COMPACT_KEYS)[number], string> = {
      compactBatchMaxDigests: 'manifest size (messages per manifest) (compactBatchMaxDigests) must be an integer from 1 to 255',
      compactBatchMaxDelayMs: 'max manifest delay (ms) (compactBatchMaxDelayMs) must be an integer from 0 to 1000',
      compactWaitMs: 'manifest wait (ms) (compactWaitMs) must be an integer from 0 to 600000',
      maxCompactPending: 'held messages (waiting for their manifest) (maxCompactPending) must be an integer from 0 to 100000',
      maxManifestBytes: 'max manifest (bytes) (maxManifestBytes) must be an integer from 1024 to 1048576',
    };
    for (const key of COMPACT_KEYS) {
      const { min, max } = THROUGHPUT_NUMBERS[key];
      const bad: Array<[unknown, string]> = [
        ['16 ', '"16 "'], [' 16', '" 16"'], ['0x10', '"0x10"'], ['1e3', '"1e3"'], ['-1', '"-1"'], ['12abc', '"12abc"'], ['4.5', '"4.5"'],
        ['+7', '"+7"'], ['yes', '"yes"'], [4.5, '"4.5"'], [-1, '"-1"'], [Number.NaN, '"null"'], [Number.POSITIVE_INFINITY, '"null"'],
        [true, '"true"'], [{}, '"{}"'], [String(max + 1), `"${max + 1}"`], [max + 1, `"${max + 1}"`],
      ];
      if (min > 0) bad.push([String(min - 1), `"${min - 1}"`], [min - 1, `"${min - 1}"`]);
      for (const [value, shown] of bad) {
        assert.throws(() => throughputOptionsFrom({ [key]: value }), { message: `${expected[key]}, not ${shown}` }, `${key} = ${String(value)}`);
      }
      // Also in a whole form whose other fields are fine.
      assert.throws(() => throughputOptionsFrom({ ...EMPTY_FORM, batching: 'true', [key]: '1e3' }), { message: `${expected[key]}, not "1e3"` });
    }
  });

  it('switches: batching and budget off give false; numbers from hand-written flows are taken as numbers', function () {
    const off = throughputOptionsFrom({ batching: false, budget: 'false', batchMaxLeaves: 200 });
    assert.equal(off.batch, false);
    assert.equal(off.budget, false);
    const numbers = throughputOptionsFrom({ batchMaxLeaves: 255, batchMaxDelayMs: 0, verifiedRoots: 0, budgetVerifyGlobalRate: 0.5 });
    assert.deepEqual(numbers.batch, { maxLeaves: 255, maxDelayMs: 0 });
    assert.equal(numbers.verifiedRoots, 0);
    assert.ok(numbers.budget);
    assert.equal(numbers.budget.verify.global.rate, 0.5);
    assert.deepEqual(throughputOptionsFrom({ batchMaxLeaves: '1', batchMaxDelayMs: '1000' }).batch, { maxLeaves: 1, maxDelayMs: 1000 });
  });

  it('refuses anything that is not a plain number in range, naming the setting as the editor labels it', function () {
    const cases: Array<[ThroughputSettings, RegExp]> = [
      [{ batchMaxLeaves: '0' }, /^batch size \(messages per signature\) \(batchMaxLeaves\) must be an integer from 1 to 255, not "0"$/],
      [{ batchMaxLeaves: '256' }, /batchMaxLeaves\) must be an integer from 1 to 255, not "256"/],
      [{ batchMaxLeaves: 256 }, /batchMaxLeaves\) must be an integer from 1 to 255, not "256"/],
      [{ batchMaxLeaves: '-1' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: '4.5' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: 4.5 }, /batchMaxLeaves/],
      [{ batchMaxLeaves: 'abc' }, /batchMaxLeaves.*not "abc"/],
      [{ batchMaxLeaves: '0x10' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: '1e1' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: ' 16' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: '16abc' }, /batchMaxLeaves/],
      [{ batchMaxLeaves: Number.NaN }, /batchMaxLeaves/],
      [{ batchMaxLeaves: {} }, /batchMaxLeaves.*not "\{\}"/],
      [{ batchMaxDelayMs: '1001' }, /^max batch delay \(ms\) \(batchMaxDelayMs\) must be an integer from 0 to 1000/],
      [{ batchMaxDelayMs: '-5' }, /batchMaxDelayMs/],
      [{ batchMaxDelayMs: '2.5' }, /batchMaxDelayMs/],
      [{ verifiedRoots: '1000001' }, /^verified roots cache \(verifiedRoots\) must be an integer from 0 to 1000000/],
      [{ verifiedRoots: 'many' }, /verifiedRoots/],
      [{ budgetVerifyPerPeerBurst: '0' }, /^signature checks per sender: burst \(budgetVerifyPerPeerBurst\) must be an integer from 1 to 1000000000/],
      [{ budgetVerifyPerPeerBurst: '1.5' }, /budgetVerifyPerPeerBurst/],
      [{ budgetVerifyGlobalRate: '-1' }, /^signature checks, all senders: rate \(budgetVerifyGlobalRate\) must be a number from 0 to 1000000000, not "-1"$/],
      [{ budgetVerifyGlobalRate: '1e3' }, /budgetVerifyGlobalRate/],
      [{ budgetVerifyGlobalRate: '1000000001' }, /budgetVerifyGlobalRate/],
      [{ budgetVerifyGlobalRate: 'fast' }, /budgetVerifyGlobalRate/],
      [{ budgetVerifyGlobalRate: Number.POSITIVE_INFINITY }, /budgetVerifyGlobalRate/],
      [{ budgetDecapsulatePerPeerRate: '.5' }, /^decapsulations per sender: rate \(budgetDecapsulatePerPeerRate\)/],
      [{ budgetDecapsulateGlobalBurst: '0' }, /^decapsulations, all senders: burst \(budgetDecapsulateGlobalBurst\)/],
      [{ batching: 'yes' }, /^batch signatures \(batching\) must be true or false, not "yes"$/],
      [{ budget: 'no' }, /^verification budget \(budget\) must be true or false, not "no"$/],
      [{ cryptoWorkers: 'always' }, /^worker threads \(cryptoWorkers\) must be "auto" or "off", not "always"$/],
      [{ cryptoWorkers: 'on' }, /cryptoWorkers/],
      // A switched-off feature's numbers are still checked: the bad value would come back with the switch.
      [{ batching: false, batchMaxLeaves: '0' }, /batchMaxLeaves/],
      [{ budget: false, budgetVerifyPerPeerBurst: 'x' }, /budgetVerifyPerPeerBurst/],
    ];
    for (const [settings, message] of cases) {
      assert.throws(() => throughputOptionsFrom(settings), (error: Error) => message.test(error.message), JSON.stringify(settings));
    }
  });

  it('quotes a long bad value only in part', function () {
    assert.throws(() => throughputOptionsFrom({ verifiedRoots: 'x'.repeat(500) }), (error: Error) => error.message.length < 160);
  });

  describe('the editor (nodes/pqc-config.html)', function () {
    const html = readFileSync(join(ROOT, 'nodes', 'pqc-config.html'), 'utf8');
    const messages = JSON.parse(readFileSync(join(ROOT, 'nodes', 'locales', 'en-US', 'pqc-config.json'), 'utf8'))['pqc-config'];

    /** `key: { value: V, validate: F(a, b) }` of the registerType defaults. */
    function editorDefault(key: string): { value: string; validator?: string; min?: number; max?: number } {
      const m = new RegExp(`\\b${key}: \\{ value: ([^,}]+?)(?:, validate: (\\w+)\\((?:(\\d+), (\\d+))?[^)]*\\))? \\}`).exec(html);
      assert.ok(m, `defaults.${key} in nodes/pqc-config.html`);
      return { value: m[1], validator: m[2], min: m[3] === undefined ? undefined : Number(m[3]), max: m[4] === undefined ? undefined : Number(m[4]) };
    }

    it('offers the core defaults, and validates with the same ranges as the builder', function () {
      for (const [key, spec] of Object.entries(THROUGHPUT_NUMBERS)) {
        const d = editorDefault(key);
        assert.equal(Number(d.value), spec.fallback, `default of ${key}`);
        assert.equal(d.validator, spec.integer ? 'wholeNumberFrom' : 'decimalFrom', `validator of ${key}`);
        assert.equal(d.min, spec.min, `minimum of ${key}`);
        assert.equal(d.max, spec.max, `maximum of ${key}`);
      }
      assert.equal(editorDefault('batching').value, 'true');
      assert.equal(editorDefault('budget').value, 'true');
      assert.equal(editorDefault('cryptoWorkers').value, '"auto"');
    });

    it('has an input for every setting, on the Throughput tab, and a label for each', function () {
      const tab = html.slice(html.indexOf('<div id="pqc-config-tab-throughput"'));
      assert.ok(tab.length > 0 && messages.tabs.throughput);
      for (const key of [...Object.keys(THROUGHPUT_NUMBERS), 'batching', 'budget', 'cryptoWorkers']) {
        assert.ok(tab.includes(`id="node-config-input-${key}"`), `input of ${key}`);
      }
      for (const key of ['batching', 'batchMaxLeaves', 'batchMaxDelayMs', 'verifiedRoots', 'budget', 'cryptoWorkers', ...COMPACT_KEYS]) {
        assert.equal(typeof messages.label[key], 'string', `label.${key}`);
      }
      for (const key of tab.matchAll(/data-i18n="(?:\[\w+\])?pqc-config\.([\w.]+)"/g)) {
        const text = key[1].split('.').reduce((o: Record<string, unknown> | undefined, k) => o?.[k] as Record<string, unknown> | undefined, messages);
        assert.equal(typeof text, 'string', `message pqc-config.${key[1]}`);
      }
    });
  });
});
