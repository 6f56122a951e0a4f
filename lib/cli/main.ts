#!/usr/bin/env node
/**
 * `pqc-iiot`: provisioning outside the Node-RED editor (DESIGN §2). This file only dispatches;
 * each verb group lives in its own module and runs against an injected CliIo, so tests call
 * `run()` in-process and the same code serves the installed binary.
 */
import fs from 'node:fs';
import path from 'node:path';
import { auditVerify } from './audit';
import { caInit, caIssue } from './ca';
import { EXIT, runCommand, type CliIo, type Command } from './common';
import { identityNew, identityRotate } from './identity';
import { identityImport } from './identity-pkcs11';
import { inspect } from './inspect';
import { caRevoke } from './revoke';

export type { CliIo } from './common';
export { EXIT } from './common';

/** Verbs by their words after `pqc-iiot`; groups ("ca", "identity") list their verbs in help. */
const COMMANDS: ReadonlyArray<readonly [readonly string[], Command]> = [
  [['ca', 'init'], caInit],
  [['ca', 'issue'], caIssue],
  [['ca', 'revoke'], caRevoke],
  [['identity', 'new'], identityNew],
  [['identity', 'rotate'], identityRotate],
  [['identity', 'import'], identityImport],
  [['inspect'], inspect],
  [['audit', 'verify'], auditVerify],
];

function overview(): string {
  const width = Math.max(...COMMANDS.map(([words]) => words.join(' ').length));
  return [
    'Usage: pqc-iiot <command> [options]',
    '',
    'Provisioning for node-red-contrib-pqc-iiot: post-quantum end-to-end security for MQTT.',
    '',
    'Commands:',
    ...COMMANDS.map(([words, c]) => `  ${words.join(' ').padEnd(width)}  ${c.spec.summary}`),
    '',
    'A typical enrollment:',
    '  pqc-iiot ca init --dir ./ca',
    '  pqc-iiot identity new --id sensor-1 --out sensor-1.json',
    '  pqc-iiot ca issue --dir ./ca --identity sensor-1.json --roles pub --topics "plant/line1/#"',
    '',
    'Run "pqc-iiot <command> --help" for a command\'s options.',
    '',
  ].join('\n');
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    (first === undefined ? io.stderr : io.stdout).write(overview());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === '--version' || first === '-V') {
    io.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  for (const [words, command] of COMMANDS) {
    if (words.length === 1 && first === words[0]) return runCommand(command, argv.slice(1), io);
    if (words.length === 2 && first === words[0] && second === words[1]) return runCommand(command, argv.slice(2), io);
  }
  const group = COMMANDS.filter(([words]) => words.length === 2 && words[0] === first);
  if (group.length > 0) {
    const verbs = group.map(([words]) => words[1]);
    if (second === undefined || second === '-h' || second === '--help') {
      const out = second === undefined ? io.stderr : io.stdout;
      out.write(`Usage: pqc-iiot ${first} <${verbs.join('|')}> [options]\n\n`);
      for (const [words, c] of group) out.write(`  ${words.join(' ')}  ${c.spec.summary}\n`);
      return second === undefined ? EXIT.usage : EXIT.ok;
    }
    io.stderr.write(`pqc-iiot ${first}: unknown command "${second}"; choose one of: ${verbs.join(', ')}\n`);
    return EXIT.usage;
  }
  io.stderr.write(`pqc-iiot: unknown command "${first}"\nRun "pqc-iiot --help" for the list of commands.\n`);
  return EXIT.usage;
}

function packageVersion(): string {
  // dist/lib/cli/main.js → package.json three levels up (also from lib/cli in ts-node-like runs).
  for (const up of ['../../..', '../..']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'node-red-contrib-pqc-iiot' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}

if (require.main === module) {
  run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`pqc-iiot: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT.failure;
    },
  );
}
