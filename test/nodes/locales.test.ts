/** Every problem a config node can report has a status text in every node that shows it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_PROBLEMS } from '../../lib/io/config';

const LOCALES = join(__dirname, '..', '..', '..', 'nodes', 'locales', 'en-US');

describe('nodes/locales', () => {
  for (const type of ['pqc-secure-in', 'pqc-secure-out', 'pqc-revocation']) {
    it(`${type} has a status text for every config problem`, () => {
      const messages = JSON.parse(readFileSync(join(LOCALES, `${type}.json`), 'utf8'))[type];
      const missing = [...CONFIG_PROBLEMS, 'no-config'].filter((p) => typeof messages?.status?.[p] !== 'string');
      assert.deepEqual(missing, []);
    });
  }
});
