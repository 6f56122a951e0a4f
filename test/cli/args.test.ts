import assert from 'node:assert/strict';
import { formatHelp, parseArgs, type CommandSpec, type ParseOutcome } from '../../lib/cli/args';

const spec: CommandSpec = {
  command: 'demo run',
  summary: 'A command for parser tests.',
  options: [
    { name: 'dir', value: 'DIR', required: true, description: 'a directory' },
    { name: 'days', value: 'N', description: 'a number' },
    { name: 'force', description: 'a flag' },
  ],
  positionals: [{ name: 'FILE', optional: true, description: 'a file' }],
  notes: ['A note paragraph.'],
};

function parsed(outcome: ParseOutcome) {
  assert.equal(outcome.kind, 'ok', JSON.stringify(outcome));
  if (outcome.kind !== 'ok') throw new Error('unreachable');
  return outcome.args;
}

function errorOf(outcome: ParseOutcome): string {
  assert.equal(outcome.kind, 'error', JSON.stringify(outcome));
  if (outcome.kind !== 'error') throw new Error('unreachable');
  return outcome.message;
}

describe('cli args parser', () => {
  it('reads "--name value", "--name=value", flags and a positional', () => {
    const args = parsed(parseArgs(['--dir', 'a b', '--days=30', '--force', 'file.bin'], spec));
    assert.deepEqual(args.options, { dir: 'a b', days: '30', force: true });
    assert.deepEqual(args.positionals, ['file.bin']);
  });

  it('keeps "-" as a positional (stdin) and takes everything after "--" literally', () => {
    assert.deepEqual(parsed(parseArgs(['--dir', 'd', '-'], spec)).positionals, ['-']);
    assert.deepEqual(parsed(parseArgs(['--dir', 'd', '--', '--force'], spec)).positionals, ['--force']);
  });

  it('accepts a value that starts with a single dash (so "--days -1" reaches the range check)', () => {
    assert.equal(parsed(parseArgs(['--dir', 'd', '--days', '-1'], spec)).options.days, '-1');
  });

  it('answers --help and -h before validating anything else', () => {
    assert.equal(parseArgs(['--help'], spec).kind, 'help');
    assert.equal(parseArgs(['--bogus', '-h'], spec).kind, 'help');
    // After "--" it is a positional, not a request for help.
    assert.equal(parseArgs(['--dir', 'd', '--', '--help'], spec).kind, 'ok');
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['unknown long option', ['--dir', 'd', '--nope'], /unknown option --nope/],
    ['unknown short option', ['--dir', 'd', '-x'], /unknown option "-x"/],
    ['repeated option', ['--dir', 'a', '--dir', 'b'], /--dir given more than once/],
    ['missing value at the end', ['--dir'], /--dir needs a value \(DIR\)/],
    ['option taken as a value', ['--dir', '--force'], /--dir needs a value/],
    ['empty value', ['--dir='], /--dir needs a value/],
    ['value given to a flag', ['--dir', 'd', '--force=yes'], /--force takes no value/],
    ['missing required option', ['--force'], /missing --dir DIR/],
    ['too many positionals', ['--dir', 'd', 'one', 'two'], /unexpected argument "two"/],
  ];
  for (const [what, argv, message] of bad) {
    it(`rejects ${what}`, () => {
      assert.match(errorOf(parseArgs(argv, spec)), message);
    });
  }

  it('requires non-optional positionals', () => {
    const strict: CommandSpec = { ...spec, positionals: [{ name: 'FILE', description: 'a file' }] };
    assert.match(errorOf(parseArgs(['--dir', 'd'], strict)), /missing FILE/);
  });

  it('builds help from the same table: usage line, every option, notes', () => {
    const help = formatHelp(spec);
    assert.match(help, /^Usage: pqc-iiot demo run --dir DIR \[--days N\] \[--force\] \[FILE\]$/m);
    for (const line of ['--dir DIR', '--days N', '--force', '-h, --help', 'A note paragraph.', 'A command for parser tests.']) {
      assert.ok(help.includes(line), `help lacks ${line}:\n${help}`);
    }
  });
});
