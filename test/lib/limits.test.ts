/**
 * I5 limits table (lib/limits.ts, docs/PROTOCOL.md §7): explicit defaults in one frozen table,
 * overridable per session, with out-of-range values refused as local errors.
 */
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, resolveLimits, type Limits } from '../../lib';
import { LIMIT_BOUNDS } from '../../lib/limits';

/** Bounds of the limits this battery knows; limits added later are covered by the generic tests. */
const BOUNDS: Partial<Record<keyof Limits, [number, number]>> = {
  maxAnnouncementBytes: [1024, 1024 * 1024],
  maxCertificateBytes: [1024, 256 * 1024],
  maxEnvelopeBytes: [256, 256 * 1024 * 1024],
  maxTopicFilters: [1, 1024],
  maxTopicBytes: [1, 65535],
  maxPeers: [1, 1_000_000],
  replayWindow: [1, 4096],
  maxClockSkewMs: [0, 365 * 24 * 3600 * 1000],
};

describe('limits (I5)', () => {
  it('I5 the defaults are explicit, frozen and as documented', () => {
    assert.ok(Object.isFrozen(DEFAULT_LIMITS));
    assert.deepEqual(Object.fromEntries(Object.keys(BOUNDS).map((k) => [k, DEFAULT_LIMITS[k as keyof Limits]])), {
      maxAnnouncementBytes: 32 * 1024,
      maxCertificateBytes: 16 * 1024,
      maxEnvelopeBytes: 1024 * 1024,
      maxTopicFilters: 32,
      maxTopicBytes: 1024,
      maxPeers: 1024,
      replayWindow: 64,
      maxClockSkewMs: 0,
    });
    assert.throws(() => {
      (DEFAULT_LIMITS as { replayWindow: number }).replayWindow = 1;
    }, TypeError);
  });

  it('I5 the certificate limit fits inside the announcement limit that carries it', () => {
    assert.ok(DEFAULT_LIMITS.maxCertificateBytes < DEFAULT_LIMITS.maxAnnouncementBytes);
  });

  it('I5 resolveLimits() without overrides is the defaults, frozen', () => {
    const l = resolveLimits();
    assert.deepEqual({ ...l }, { ...DEFAULT_LIMITS });
    assert.ok(Object.isFrozen(l));
  });

  it('I5 overrides replace single values; undefined, null and empty text keep the default', () => {
    const l = resolveLimits({ replayWindow: 8, maxEnvelopeBytes: 4096, maxPeers: undefined, maxTopicBytes: null, maxTopicFilters: '' });
    assert.equal(l.replayWindow, 8);
    assert.equal(l.maxEnvelopeBytes, 4096);
    assert.equal(l.maxPeers, DEFAULT_LIMITS.maxPeers);
    assert.equal(l.maxTopicBytes, DEFAULT_LIMITS.maxTopicBytes);
    assert.equal(l.maxTopicFilters, DEFAULT_LIMITS.maxTopicFilters);
  });

  it('I5 numeric text from an editor field is accepted', () => {
    assert.equal(resolveLimits({ replayWindow: '128' }).replayWindow, 128);
    assert.equal(resolveLimits({ maxClockSkewMs: '0' }).maxClockSkewMs, 0);
  });

  it('I5 the input object is not modified', () => {
    const input = { replayWindow: '16' };
    resolveLimits(input);
    assert.deepEqual(input, { replayWindow: '16' });
  });

  for (const [key, [min, max]] of Object.entries(BOUNDS) as [keyof Limits, [number, number]][]) {
    it(`I5 ${key}: accepts ${min} and ${max}, refuses ${min - 1}, ${max + 1}, fractions and non-numbers`, () => {
      assert.equal(resolveLimits({ [key]: min })[key], min);
      assert.equal(resolveLimits({ [key]: max })[key], max);
      for (const bad of [min - 1, max + 1, min + 0.5, Number.NaN, Number.POSITIVE_INFINITY, 'abc', '12px', true, {}, [5]]) {
        assert.throws(() => resolveLimits({ [key]: bad }), new RegExp(`limit "${key}" must be an integer from ${min} to ${max}`), `${key}=${String(bad)}`);
      }
    });
  }

  it('I5 every limit, including ones added later, is a bounded positive integer that refuses -1 and text', () => {
    for (const [key, value] of Object.entries(DEFAULT_LIMITS)) {
      assert.ok(Number.isInteger(value) && value >= 0, key);
      assert.equal(resolveLimits({ [key]: value })[key as keyof Limits], value, `${key} default is within its own bounds`);
      assert.throws(() => resolveLimits({ [key]: -1 }), new RegExp(`limit "${key}"`), key);
      assert.throws(() => resolveLimits({ [key]: 'many' }), new RegExp(`limit "${key}"`), key);
      assert.throws(() => resolveLimits({ [key]: Number.MAX_SAFE_INTEGER }), new RegExp(`limit "${key}"`), `${key} has an upper bound`);
    }
  });

  it('I5 LIMIT_BOUNDS (what editors validate against) is the table resolveLimits() enforces, frozen, for every limit', () => {
    assert.deepEqual(Object.keys(LIMIT_BOUNDS).sort(), Object.keys(DEFAULT_LIMITS).sort());
    assert.ok(Object.isFrozen(LIMIT_BOUNDS));
    for (const [key, bounds] of Object.entries(LIMIT_BOUNDS) as [keyof Limits, readonly [number, number]][]) {
      assert.ok(Object.isFrozen(bounds), `${key} bounds frozen`);
      const [min, max] = bounds;
      const known = BOUNDS[key];
      if (known) assert.deepEqual([min, max], known, key);
      assert.equal(resolveLimits({ [key]: min })[key], min);
      assert.equal(resolveLimits({ [key]: max })[key], max);
      assert.throws(() => resolveLimits({ [key]: max + 1 }), new RegExp(`limit "${key}" must be an integer from ${min} to ${max}`));
      if (min > 0) assert.throws(() => resolveLimits({ [key]: min - 1 }), new RegExp(`limit "${key}"`));
    }
  });

  it('I5 an unknown limit name is refused (a typo must not silently keep the default)', () => {
    assert.throws(() => resolveLimits({ replayWindowSize: 8 } as never), /unknown limit "replayWindowSize"/);
  });
});
