/**
 * MQTT topic names, filters and matching as used by certificate rights (lib/trust/topics.ts,
 * docs/PROTOCOL.md §6; MQTT 5.0 §4.7).
 */
import assert from 'node:assert/strict';
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../../../lib';
import { matchesAny } from '../../../lib/trust/topics';

describe('trust/topics', () => {
  describe('topicMatches', () => {
    const table: [filter: string, topic: string, matches: boolean][] = [
      ['plant/line1/temp', 'plant/line1/temp', true],
      ['plant/line1/temp', 'plant/line1/Temp', false],
      ['plant/line1/temp', 'plant/line1', false],
      ['plant/line1', 'plant/line1/temp', false],
      ['plant/+/temp', 'plant/line1/temp', true],
      ['plant/+/temp', 'plant/line1/x/temp', false],
      ['plant/+/temp', 'plant//temp', true],
      ['plant/+', 'plant/', true],
      ['plant/+', 'plant', false],
      ['+', 'plant', true],
      ['+', 'plant/line1', false],
      ['+/+', '/plant', true],
      ['/+', '/plant', true],
      ['plant/#', 'plant', true],
      ['plant/#', 'plant/', true],
      ['plant/#', 'plant/line1/temp', true],
      ['plant/#', 'plantx/line1', false],
      ['plant/#', 'other/plant', false],
      ['#', 'plant/line1/temp', true],
      ['#', '/', true],
      ['+/#', 'plant', true],
      ['plant/+/#', 'plant/line1', true],
      ['plant/+/#', 'plant', false],
      ['a/b', 'a/b/', false],
      ['a/b/', 'a/b', false],
      ['plant/ä/+', 'plant/ä/x', true],
      ['plant/a', 'plant/A', false],
    ];
    for (const [filter, topic, expected] of table) {
      it(`${JSON.stringify(filter)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(topic)}`, () => {
        assert.equal(topicMatches(filter, topic), expected);
      });
    }

    it('$-topics are not matched by a leading wildcard, only by a filter naming them', () => {
      assert.equal(topicMatches('#', '$SYS/broker/load'), false);
      assert.equal(topicMatches('+/broker/load', '$SYS/broker/load'), false);
      assert.equal(topicMatches('+/#', '$SYS/x'), false);
      assert.equal(topicMatches('$SYS/#', '$SYS/broker/load'), true);
      assert.equal(topicMatches('$SYS/+/load', '$SYS/broker/load'), true);
      assert.equal(topicMatches('$share/#', '$share/g/t'), true);
      // A '$' that is not at the start is an ordinary character.
      assert.equal(topicMatches('#', 'plant/$x'), true);
      assert.equal(topicMatches('plant/+', 'plant/$x'), true);
    });

    it('agrees with the level-by-level definition (MQTT §4.7) on 20,000 random filters and topics', () => {
      // The definition, written the obvious way: split both into levels and compare.
      const byLevels = (filter: string, topic: string): boolean => {
        const f = filter.split('/');
        const t = topic.split('/');
        if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
        for (let i = 0; i < f.length; i++) {
          if (f[i] === '#') return true;
          if (i >= t.length) return false;
          if (f[i] !== '+' && f[i] !== t[i]) return false;
        }
        return f.length === t.length;
      };
      // Small alphabets, so random pairs often share levels and hit every branch.
      let seed = 7;
      const rand = (n: number): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const pick = (chars: string, max: number): string => Array.from({ length: rand(max + 1) }, () => chars[rand(chars.length)]).join('');
      let matched = 0;
      for (let i = 0; i < 20_000; i++) {
        const filter = pick('ab/+#$', 7);
        const topic = pick('ab/$', 6);
        const expected = byLevels(filter, topic);
        assert.equal(topicMatches(filter, topic), expected, `${JSON.stringify(filter)} vs ${JSON.stringify(topic)}`);
        if (expected) matched++;
      }
      assert.ok(matched > 1000, `only ${matched} matching pairs: the sample does not exercise matches`);
    });

    it('matchesAny: any one filter is enough; an empty list grants nothing', () => {
      assert.equal(matchesAny(['a/#', 'b/+'], 'b/x'), true);
      assert.equal(matchesAny(['a/#', 'b/+'], 'c/x'), false);
      assert.equal(matchesAny([], 'a'), false);
    });
  });

  describe('isValidTopicFilter', () => {
    const valid = ['#', '+', 'a', 'a/b', 'a/+', 'a/#', '+/+/#', '/', '//', 'a//b', '/a', 'a/', '$SYS/#', 'ä/ö', ' '];
    const invalid = ['', 'a#', 'a/#/b', '#/a', '##', 'a/b#', 'a+', '+a', 'a/+b', 'a/b+/c', '++', 'a\u0000b'];
    for (const f of valid) it(`accepts ${JSON.stringify(f)}`, () => assert.equal(isValidTopicFilter(f), true));
    for (const f of invalid) it(`refuses ${JSON.stringify(f)}`, () => assert.equal(isValidTopicFilter(f), false));

    it('refuses non-strings and filters over maxBytes (UTF-8 bytes, not characters)', () => {
      for (const x of [undefined, null, 1, ['a'], { f: 'a' }]) assert.equal(isValidTopicFilter(x), false);
      assert.equal(isValidTopicFilter('abcd', 4), true);
      assert.equal(isValidTopicFilter('abcde', 4), false);
      assert.equal(isValidTopicFilter('ää', 4), true);
      assert.equal(isValidTopicFilter('äää', 5), false);
      assert.equal(isValidTopicFilter('a'.repeat(65535)), true);
      assert.equal(isValidTopicFilter('a'.repeat(65536)), false);
    });
  });

  describe('isValidTopicName', () => {
    it('accepts names without wildcards, including $-topics and empty levels', () => {
      for (const t of ['a', 'a/b', '/', 'a//b', '$SYS/x', 'ä', ' ']) assert.equal(isValidTopicName(t), true, t);
    });

    it('refuses empty names, wildcards anywhere, NUL, non-strings and names over maxBytes', () => {
      for (const t of ['', '#', '+', 'a/#', 'a/+/b', 'a+b', 'a#b', 'a\u0000']) assert.equal(isValidTopicName(t), false, JSON.stringify(t));
      for (const x of [undefined, null, 7, ['a']]) assert.equal(isValidTopicName(x), false);
      assert.equal(isValidTopicName('ab', 2), true);
      assert.equal(isValidTopicName('ä', 1), false);
      assert.equal(isValidTopicName('a'.repeat(65536)), false);
    });
  });
});
