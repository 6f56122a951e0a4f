/**
 * The PKCS#11 side of `pqc-iiot identity`: `identity new … --pkcs11-module PATH --token LABEL`
 * creates an identity whose secret keys live only in a token, and `identity import` moves a
 * software identity's keys into a token. Either writes an identity file with public keys and the
 * token reference, no private key. The PIN comes from $PQC_PKCS11_PIN or a hidden prompt, never
 * from an argument (arguments are visible to every user in `ps` and kept in shell history).
 */
import fs from 'node:fs';
import {
  createIdentityInToken, defaultKeyLabel, pkcs11IdentityToJson, storeIdentityInToken, Pkcs11ProviderError,
  type Pkcs11Identity, type PqMechanismReport, type StoredIdentity,
} from '../io/pkcs11-provider';
import { isValidKeyLabel, isValidTokenLabel } from '../io/pkcs11/identity-file';
import { fingerprintOf, parseIdentityJson, toHex, type KemAlgorithm, type SigAlgorithm } from '../index';
import { flag, stringOption, type OptionSpec, type ParsedArgs } from './args';
import { SECRET_FILE_MODE, parseOrFail } from './ca';
import {
  CliError, EXIT, displayPath, quoteValue, readFileChecked, resolvePath, usageError, warnIfExposed, writeFileAtomic, writeLines,
  type CliIo, type Command,
} from './common';

export const PIN_ENV = 'PQC_PKCS11_PIN';

/** Options `identity new` gains for a token; without --pkcs11-module it stays a software identity. */
export const PKCS11_NEW_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'pkcs11-module', value: 'PATH',
    description: `keep the private keys in a PKCS#11 token: path of its module (e.g. /usr/lib/softhsm/libsofthsm2.so); PIN from $${PIN_ENV} or a prompt`,
  },
  { name: 'token', value: 'LABEL', description: 'label of the token (with --pkcs11-module)' },
  { name: 'key-label', value: 'LABEL', description: 'label of the key in the token (default pqc-iiot/DEVICE_ID); --force replaces a key with this label' },
];

/** True when `identity new` was asked for a token identity. */
export function wantsToken(args: ParsedArgs): boolean {
  return PKCS11_NEW_OPTIONS.some((o) => args.options[o.name] !== undefined);
}

interface TokenArgs {
  module: string;
  token: string;
  keyLabel: string | undefined;
}

function tokenArgs(args: ParsedArgs): TokenArgs {
  const module = stringOption(args, 'pkcs11-module');
  const token = stringOption(args, 'token');
  const keyLabel = stringOption(args, 'key-label');
  if (module === undefined) throw usageError('--token and --key-label need --pkcs11-module PATH');
  if (token === undefined) throw usageError('--pkcs11-module needs --token LABEL (list tokens with: softhsm2-util --show-slots, or pkcs11-tool -L)');
  if (!isValidTokenLabel(token)) throw usageError(`--token ${quoteValue(token)} is not a token label (1 to 32 printable characters)`);
  if (keyLabel !== undefined && !isValidKeyLabel(keyLabel)) throw usageError(`--key-label ${quoteValue(keyLabel)} must be 1 to 128 printable characters`);
  return { module, token, keyLabel };
}

/** Checked before the token is touched, so a refused file does not leave an orphaned token key. */
function refuseExistingFile(io: CliIo, out: string, force: boolean): void {
  if (!force && fs.existsSync(out)) throw new CliError(`identity file ${displayPath(io, out)} already exists; use --force to replace it`);
}

export async function newIdentityInToken(
  args: ParsedArgs, io: CliIo,
  identity: { deviceId: string; kemAlgorithm: KemAlgorithm; sigAlgorithm: SigAlgorithm; keyEpoch: number }, out: string,
): Promise<number> {
  const t = tokenArgs(args);
  const force = flag(args, 'force');
  refuseExistingFile(io, out, force);
  const pin = await readPin(io, t.token);
  const stored = withTokenErrors(() => createIdentityInToken(identity, {
    module: t.module, token: t.token, pin, keyLabel: t.keyLabel ?? defaultKeyLabel(identity.deviceId), replace: force,
  }));
  writeTokenIdentity(io, out, stored.identity, force);
  report(io, 'created', out, stored);
  return EXIT.ok;
}

export const identityImport: Command = {
  spec: {
    command: 'identity import',
    summary: 'Move a software identity\'s private keys into a PKCS#11 token (same keys, same certificate).',
    options: [
      { name: 'from', value: 'FILE', required: true, description: 'software identity file (from "pqc-iiot identity new")' },
      { name: 'out', value: 'FILE', required: true, description: 'identity file to write: public keys and the token reference, no private key' },
      { name: 'pkcs11-module', value: 'PATH', required: true, description: 'path of the token\'s PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so' },
      { name: 'token', value: 'LABEL', required: true, description: 'label of the token' },
      { name: 'key-label', value: 'LABEL', description: 'label of the key in the token (default pqc-iiot/DEVICE_ID)' },
      { name: 'force', description: 'replace an existing FILE and a key with the same label in the token' },
    ],
    notes: [
      `The token user's PIN is read from $${PIN_ENV}, or asked for when run in a terminal.\n` +
        'Afterwards delete the software file (e.g. shred -u FILE) and every copy of it: until then the keys exist outside the token.',
    ],
  },
  async run(args, io) {
    const from = resolvePath(io, stringOption(args, 'from')!);
    const out = resolvePath(io, stringOption(args, 'out')!);
    if (from === out) throw usageError('--out must differ from --from (the software file holds the private keys)');
    const t = tokenArgs(args);
    const force = flag(args, 'force');
    const text = readFileChecked(io, from, 'identity file').toString('utf8');
    warnIfExposed(io, from, 'identity file');
    const bundle = parseOrFail(() => parseIdentityJson(text), io, from);
    refuseExistingFile(io, out, force);
    const pin = await readPin(io, t.token);
    let stored: StoredIdentity;
    try {
      stored = withTokenErrors(() => storeIdentityInToken(bundle, {
        module: t.module, token: t.token, pin, keyLabel: t.keyLabel ?? defaultKeyLabel(bundle.deviceId), replace: force,
      }));
    } finally {
      bundle.kemSecretKey.fill(0);
      bundle.sigSecretKey.fill(0);
    }
    writeTokenIdentity(io, out, stored.identity, force);
    report(io, 'imported', out, stored);
    writeLines(io.stdout, [
      `  now delete ${displayPath(io, from)} and its copies (e.g. shred -u ${displayPath(io, from)}): it still holds the private keys`,
    ]);
    return EXIT.ok;
  },
};

function withTokenErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Pkcs11ProviderError) throw new CliError(err.message);
    throw err;
  }
}

function writeTokenIdentity(io: CliIo, out: string, identity: Pkcs11Identity, force: boolean): void {
  try {
    // 0600 by habit although it holds no private key: it names the token and key label.
    writeFileAtomic(io, out, pkcs11IdentityToJson(identity) + '\n', { mode: SECRET_FILE_MODE, overwrite: force, what: 'identity file' });
  } catch (err) {
    if (err instanceof CliError) {
      throw new CliError(`${err.message} (the key is stored in token ${JSON.stringify(identity.pkcs11.token)}; rerun with --force to replace it)`);
    }
    throw err;
  }
}

function report(io: CliIo, verb: 'created' | 'imported', out: string, stored: StoredIdentity): void {
  const id = stored.identity;
  writeLines(io.stdout, [
    `identity ${verb} in PKCS#11 token ${JSON.stringify(id.pkcs11.token)} (key label ${JSON.stringify(id.pkcs11.keyLabel)})`,
    `  written to:  ${displayPath(io, out)} (public keys and the token reference; no private key)`,
    `  device id:   ${id.deviceId}`,
    `  key epoch:   ${id.keyEpoch}`,
    `  key id:      ${toHex(id.keyId)}`,
    `  fingerprint: ${fingerprintOf(id.keyId)}`,
    `  algorithms:  ${id.kemAlgorithm} + ${id.sigAlgorithm}`,
    `  key storage: encrypted in the token by a non-extractable AES-256 key (${pqNote(stored.pqMechanisms)})`,
    ...(stored.token.hardwareSlot
      ? []
      : [
        `  note:        ${stored.token.model || 'this token'} is a software token: its files are on this machine's disk, so the keys`,
        '               are only as safe as the PIN. Fine for tests; production devices need a hardware token (HSM, TPM, smart card).',
      ]),
    ...(id.certificate
      ? ['  certificate: kept from the imported file']
      : [
        '  certificate: none yet; issue one with:',
        `    pqc-iiot ca issue --dir CA_DIR --identity ${displayPath(io, out)} --roles pub|sub|both --topics FILTERS`,
      ]),
  ]);
}

function pqNote(pq: PqMechanismReport): string {
  if (!pq.mlKem && !pq.mlDsa) return 'the token offers no ML-KEM / ML-DSA mechanism';
  const offered = [pq.mlKem ? 'ML-KEM' : '', pq.mlDsa ? 'ML-DSA' : ''].filter(Boolean).join(' and ');
  return `the token offers ${offered}; in-token post-quantum keys are not supported yet`;
}

/** The PIN from the environment or a hidden prompt on a terminal; never from an argument. */
export async function readPin(io: CliIo, token: string): Promise<string> {
  const fromEnv = process.env[PIN_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const stdin = io.stdin as Partial<NodeJS.ReadStream>;
  if (stdin.isTTY && typeof stdin.setRawMode === 'function') return promptHidden(io, stdin as NodeJS.ReadStream, `PIN for token ${JSON.stringify(token)}: `);
  throw new CliError(`no PIN for token ${JSON.stringify(token)}: set ${PIN_ENV}, or run in a terminal to be asked (a PIN is never taken as an argument)`);
}

function promptHidden(io: CliIo, stdin: NodeJS.ReadStream, prompt: string): Promise<string> {
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let pin = '';
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.stderr.write('\n');
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') {
          finish();
          if (pin === '') reject(new CliError('no PIN entered'));
          else resolve(pin);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          finish();
          reject(new CliError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') pin = pin.slice(0, -1);
        else pin += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
