import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LABELS } from '../../lib/crypto/symmetric';
import { DEFAULT_LIMITS } from '../../lib/limits';
import { throughputOptionsFrom } from '../../lib/io/throughput-settings';
import { REASONS } from '../../lib/result';
import { KEM_ALGORITHMS, SIG_ALGORITHMS } from '../../lib/crypto/algorithms';
import { STRUCTURE_TYPES } from '../../lib/wire/header';

/** Keeps docs/PROTOCOL.md true to the code: every code, label, limit and id it must list. */
describe('docs/PROTOCOL.md matches the code', () => {
  const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'PROTOCOL.md'), 'utf8');

  it('lists every reason code with its description', () => {
    for (const [code, text] of Object.entries(REASONS)) {
      assert.ok(doc.includes(`| \`${code}\` | ${text} |`), `reason ${code} missing or described differently`);
    }
  });

  it('lists every derivation and signature label', () => {
    for (const label of Object.values(LABELS)) assert.ok(doc.includes(`\`${label}\``), `label ${label} missing`);
  });

  it('states every default limit', () => {
    for (const [name, value] of Object.entries(DEFAULT_LIMITS)) {
      assert.match(doc, new RegExp(`\\| \`${name}\` \\| ${value}\\b`), `limit ${name} = ${value} missing`);
    }
  });

  it('names the limits a config node sets (§7), and only those', () => {
    const intro = doc.slice(doc.indexOf('## 7. Limits'), doc.indexOf('| limit | default | why |'));
    const editable = ['replayWindow', 'maxEnvelopeBytes', ...Object.keys(throughputOptionsFrom({}).limits)];
    for (const name of Object.keys(DEFAULT_LIMITS)) {
      assert.equal(intro.includes(`\`${name}\``), editable.includes(name), `§7 on whether the config node sets ${name}`);
    }
  });

  it('states every algorithm id and structure type', () => {
    const hex2 = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
    for (const [name, a] of Object.entries(KEM_ALGORITHMS)) assert.ok(doc.includes(`| ${name} (FIPS 203) | kem \`${hex2(a.id)}\``), name);
    for (const [name, a] of Object.entries(SIG_ALGORITHMS)) assert.match(doc, new RegExp(`\\| ${name}[^|]* \\| sig \`${hex2(a.id)}\``), name);
    for (const [name, id] of Object.entries(STRUCTURE_TYPES)) assert.ok(doc.includes(`\`${hex2(id)}\``), name);
  });
});
