/**
 * `pqc-iiot ca init` and `pqc-iiot ca issue`: the certificate authority that every receiver pins
 * (strict mode, I1). A CA directory holds ca-key.json (the private key, mode 0600, best kept
 * offline) and ca.pub (the public key text pasted into each pqc-config node).
 * docs/PROTOCOL.md §6.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_CA_SIG, DEFAULT_LIMITS, SIG_ALGORITHMS, caKeyPairToJson, caPublicKeyToText, createCa, fingerprintOf, identityToJson,
  isValidTopicFilter, issueCertificate, parseCaKeyPairJson, parseCaPublicKeyText, parseIdentityJson, parseSigName,
  verifyCertificate, type CaKeyPair, type Role, type SigAlgorithm,
} from '../index';
import { flag, stringOption, type ParsedArgs } from './args';
import {
  CliError, EXIT, displayPath, nowOf, quoteValue, readFileChecked, resolvePath, usageError, warnIfExposed,
  writeFileAtomic, writeLines, type CliIo, type Command,
} from './common';
import { isPkcs11IdentityJson, parsePkcs11IdentityJson, pkcs11IdentityToJson, publicBundleOf } from '../io/pkcs11/identity-file';

export const CA_KEY_FILE = 'ca-key.json';
export const CA_PUBLIC_FILE = 'ca.pub';
export const SECRET_FILE_MODE = 0o600;
const PUBLIC_FILE_MODE = 0o644;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start this long before issue time (clock skew between CA host and devices). */
export const BACKDATE_MS = 5 * 60 * 1000;
const DEFAULT_DAYS = 365;
/** A hundred years: longer is certainly a typo, and the validity must fit the u64 ms field anyway. */
const MAX_DAYS = 36_500;

export const CA_SIG_CHOICES = ['ml-dsa-44', 'ml-dsa-65', 'falcon-512'] as const;

export const caInit: Command = {
  spec: {
    command: 'ca init',
    summary: 'Create a certificate authority: a signature key pair that issues device certificates.',
    options: [
      { name: 'dir', value: 'DIR', required: true, description: `directory for ${CA_KEY_FILE} (private, mode 0600) and ${CA_PUBLIC_FILE}` },
      { name: 'sig', value: 'ALG', description: `CA signature algorithm: ${CA_SIG_CHOICES.join(', ')} (default ${DEFAULT_CA_SIG.toLowerCase()})` },
      { name: 'force', description: 'replace an existing CA in DIR (certificates it issued stop being trusted)' },
    ],
    notes: [
      'Prints the CA public key text ("pqcca1:…"); paste it into the "CA public key" field of each\n' +
        `pqc-config node. Keep ${CA_KEY_FILE} offline: whoever holds it can enroll devices.`,
    ],
  },
  async run(args, io) {
    const dir = resolvePath(io, stringOption(args, 'dir')!);
    const sigAlgorithm = parseSigOption(args, 'sig', DEFAULT_CA_SIG);
    const force = flag(args, 'force');
    if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
      throw new CliError(`${displayPath(io, dir)} exists and is not a directory`);
    }
    const keyPath = path.join(dir, CA_KEY_FILE);
    const pubPath = path.join(dir, CA_PUBLIC_FILE);
    if (!force && (fs.existsSync(keyPath) || fs.existsSync(pubPath))) {
      throw new CliError(
        `${displayPath(io, dir)} already holds a CA; use --force to replace it ` +
          '(devices issued by the old CA will no longer be trusted)',
      );
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });

    const ca = createCa({ sigAlgorithm });
    const publicText = caPublicKeyToText(ca.publicKey);
    writeFileAtomic(io, keyPath, caKeyPairToJson(ca) + '\n', { mode: SECRET_FILE_MODE, overwrite: force, what: 'CA key file' });
    writeFileAtomic(io, pubPath, publicText + '\n', { mode: PUBLIC_FILE_MODE, overwrite: force, what: 'CA public key file' });

    writeLines(io.stdout, [
      `CA created (${sigAlgorithm}, key id ${fingerprintOf(ca.publicKey.keyId)})`,
      `  private key: ${displayPath(io, keyPath)} (mode 0600; keep it offline)`,
      `  public key:  ${displayPath(io, pubPath)}`,
      '',
      'CA public key for the pqc-config node:',
      publicText,
    ]);
    return EXIT.ok;
  },
};

export const caIssue: Command = {
  spec: {
    command: 'ca issue',
    summary: 'Sign a certificate for a device identity and write it into the identity file.',
    options: [
      { name: 'dir', value: 'DIR', required: true, description: `CA directory (from "pqc-iiot ca init")` },
      { name: 'identity', value: 'FILE', required: true, description: 'identity file (from "pqc-iiot identity new"); updated in place' },
      { name: 'roles', value: 'ROLE', required: true, description: 'pub, sub or both: what the device may do on its topics' },
      { name: 'topics', value: 'FILTERS', required: true, description: 'comma-separated MQTT topic filters, e.g. "plant/line1/#,plant/alarms"' },
      { name: 'days', value: 'N', description: `validity in days from now (default ${DEFAULT_DAYS}, at most ${MAX_DAYS})` },
    ],
    notes: [
      'Receivers accept a message only if the sender\'s certificate allows publishing on its topic,\n' +
        `whatever the broker's ACL says. At most ${DEFAULT_LIMITS.maxTopicFilters} filters; spaces around commas are ignored.`,
    ],
  },
  async run(args, io) {
    const roles = parseRoles(stringOption(args, 'roles')!);
    const topics = parseTopicList(stringOption(args, 'topics')!);
    const days = parseDays(stringOption(args, 'days'));
    const dir = resolvePath(io, stringOption(args, 'dir')!);
    const identityPath = resolvePath(io, stringOption(args, 'identity')!);

    const ca = loadCa(io, dir);
    const identityText = readFileChecked(io, identityPath, 'identity file').toString('utf8');
    warnIfExposed(io, identityPath, 'identity file');
    // A PKCS#11 identity file holds the public keys and a token reference only: all a CA needs.
    const tokenIdentity = isPkcs11IdentityJson(identityText) ? parseOrFail(() => parsePkcs11IdentityJson(identityText), io, identityPath) : undefined;
    const identity = tokenIdentity ? publicBundleOf(tokenIdentity) : parseOrFail(() => parseIdentityJson(identityText), io, identityPath);

    // Backdated a little so a device whose clock runs a few minutes slow accepts it at once.
    const issuedAt = Math.floor(nowOf(io));
    const notBefore = issuedAt - BACKDATE_MS;
    const notAfter = issuedAt + days * DAY_MS;
    const issued = issueCertificate(ca, identity, { roles, topics, notBefore, notAfter });
    // The file must only ever hold a certificate that the CA's public key accepts.
    const check = verifyCertificate(issued.certificate!, ca.publicKey, issuedAt);
    if (!check.ok) throw new CliError(`the issued certificate does not verify (${check.reason}); the CA files may be damaged`);

    const updated = tokenIdentity ? pkcs11IdentityToJson({ ...tokenIdentity, certificate: issued.certificate }) : identityToJson(issued);
    writeFileAtomic(io, identityPath, updated + '\n', {
      mode: SECRET_FILE_MODE, overwrite: true, what: 'identity file',
    });
    writeLines(io.stdout, [
      `certificate issued for ${identity.deviceId} (key epoch ${identity.keyEpoch}, key ${fingerprintOf(identity.keyId)})`,
      `  roles:   ${roles}`,
      `  topics:  ${topics.join(', ')}`,
      `  valid:   ${new Date(notBefore).toISOString()} to ${new Date(notAfter).toISOString()}`,
      `  CA:      ${fingerprintOf(ca.publicKey.keyId)}`,
      `  written: ${displayPath(io, identityPath)} (mode 0600)`,
    ]);
    return EXIT.ok;
  },
};

/** Reads and checks a CA directory; a missing or mismatched CA is the user's "wrong CA dir". */
export function loadCa(io: CliIo, dir: string): CaKeyPair {
  if (!fs.existsSync(dir)) throw new CliError(`CA directory ${displayPath(io, dir)} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new CliError(`${displayPath(io, dir)} is not a directory`);
  const keyPath = path.join(dir, CA_KEY_FILE);
  if (!fs.existsSync(keyPath)) {
    throw new CliError(
      `${displayPath(io, dir)} holds no CA (${CA_KEY_FILE} not found); create one with: pqc-iiot ca init --dir ${displayPath(io, dir)}`,
    );
  }
  const keyText = readFileChecked(io, keyPath, 'CA key file').toString('utf8');
  warnIfExposed(io, keyPath, 'CA key file');
  const ca = parseOrFail(() => parseCaKeyPairJson(keyText), io, keyPath);
  const pubPath = path.join(dir, CA_PUBLIC_FILE);
  if (fs.existsSync(pubPath)) {
    // ca.pub is what operators paste into the nodes; signing with a key that does not match it
    // would produce certificates no receiver accepts.
    const pub = parseCaPublicKeyText(readFileChecked(io, pubPath, 'CA public key file').toString('utf8'));
    if (!pub.ok) throw new CliError(`${displayPath(io, pubPath)} is not a CA public key (${pub.reason})`);
    if (caPublicKeyToText(pub.value) !== caPublicKeyToText(ca.publicKey)) {
      throw new CliError(`${displayPath(io, pubPath)} does not match ${displayPath(io, keyPath)}: the CA directory is inconsistent`);
    }
  }
  return ca;
}

/** Runs a core parser that throws secret-free Errors, prefixing the file it was reading. */
export function parseOrFail<T>(parse: () => T, io: CliIo, file: string): T {
  try {
    return parse();
  } catch (err) {
    throw new CliError(`${displayPath(io, file)}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function parseSigOption(args: ParsedArgs, name: string, fallback: SigAlgorithm): SigAlgorithm {
  const raw = stringOption(args, name);
  if (raw === undefined) return fallback;
  const alg = parseSigName(raw);
  if (alg === undefined) {
    const choices = Object.keys(SIG_ALGORITHMS).map((a) => a.toLowerCase()).join(', ');
    throw usageError(`unknown signature algorithm ${quoteValue(raw)} for --${name}; choose one of ${choices}`);
  }
  return alg;
}

export function parseRoles(raw: string): Role {
  if (raw === 'pub' || raw === 'sub' || raw === 'both') return raw;
  throw usageError(`--roles must be pub, sub or both, not ${quoteValue(raw)}`);
}

export function parseTopicList(raw: string): string[] {
  const topics = raw.split(',').map((t) => t.trim());
  if (topics.some((t) => t === '')) throw usageError(`--topics has an empty entry in ${quoteValue(raw)}`);
  if (topics.length > DEFAULT_LIMITS.maxTopicFilters) {
    throw usageError(`--topics has ${topics.length} filters; receivers accept at most ${DEFAULT_LIMITS.maxTopicFilters}`);
  }
  const seen = new Set<string>();
  for (const t of topics) {
    if (!isValidTopicFilter(t, DEFAULT_LIMITS.maxTopicBytes)) {
      throw usageError(
        `--topics: ${quoteValue(t)} is not a valid MQTT topic filter ` +
          `("+" and "#" must fill a whole level, "#" only as the last; at most ${DEFAULT_LIMITS.maxTopicBytes} bytes)`,
      );
    }
    if (seen.has(t)) throw usageError(`--topics lists ${quoteValue(t)} twice`);
    seen.add(t);
  }
  return topics;
}

export function parseDays(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_DAYS;
  const days = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw usageError(`--days must be a whole number from 1 to ${MAX_DAYS}, not ${quoteValue(raw)}`);
  }
  return days;
}
