/**
 * `pqc-iiot identity new`: a device's key pairs (ML-KEM for receiving, a signature key for
 * publishing) in one identity file. `pqc-iiot identity rotate`: the next key epoch of the same
 * device (new key pairs, epoch + 1, no certificate until `ca issue`). The files hold private
 * keys: they are written with mode 0600, and only their public parts are ever printed.
 * docs/PROTOCOL.md §6.
 */
import {
  DEFAULT_KEM, DEFAULT_SIG, DEVICE_ID_PATTERN, KEM_ALGORITHMS, createIdentity, fingerprintOf, identityPublicInfo, identityToJson,
  parseIdentityJson, parseKemName, toHex, type KemAlgorithm,
} from '../index';
import { flag, stringOption, type ParsedArgs } from './args';
import { SECRET_FILE_MODE, parseOrFail, parseSigOption } from './ca';
import {
  CliError, EXIT, displayPath, quoteValue, readFileChecked, resolvePath, usageError, warnIfExposed, writeFileAtomic, writeLines,
  type Command,
} from './common';
import { PKCS11_NEW_OPTIONS, newIdentityInToken, wantsToken } from './identity-pkcs11';

const MAX_EPOCH = 0xffffffff;

export const identityNew: Command = {
  spec: {
    command: 'identity new',
    summary: 'Create a device identity: its key pairs, written to an identity file (mode 0600).',
    options: [
      { name: 'id', value: 'DEVICE_ID', required: true, description: '1 to 128 characters of A-Z a-z 0-9 _ . -' },
      { name: 'out', value: 'FILE', required: true, description: 'identity file to write (holds private keys)' },
      { name: 'kem', value: 'ALG', description: `key encapsulation: ml-kem-768 or ml-kem-1024 (default ${DEFAULT_KEM.toLowerCase()})` },
      { name: 'sig', value: 'ALG', description: `signatures: falcon-512, ml-dsa-44 or ml-dsa-65 (default ${DEFAULT_SIG.toLowerCase()})` },
      { name: 'epoch', value: 'N', description: 'key epoch, raised on every key rotation (default 1)' },
      { name: 'force', description: 'replace an existing FILE (its old keys are lost)' },
      ...PKCS11_NEW_OPTIONS,
    ],
    notes: [
      'Next: pqc-iiot ca issue --dir CA_DIR --identity FILE --roles pub|sub|both --topics FILTERS\n' +
        'The finished file is pasted or uploaded as-is into the pqc-config node\'s identity credential.',
    ],
  },
  async run(args, io) {
    const deviceId = stringOption(args, 'id')!;
    if (!DEVICE_ID_PATTERN.test(deviceId)) {
      throw usageError(
        `invalid device id ${quoteValue(deviceId)} (${deviceId.length} characters): ` +
          'use 1 to 128 characters of A-Z a-z 0-9 _ . -',
      );
    }
    const kemAlgorithm = parseKemOption(args);
    const sigAlgorithm = parseSigOption(args, 'sig', DEFAULT_SIG);
    const keyEpoch = parseEpoch(stringOption(args, 'epoch'));
    const out = resolvePath(io, stringOption(args, 'out')!);
    if (wantsToken(args)) return newIdentityInToken(args, io, { deviceId, kemAlgorithm, sigAlgorithm, keyEpoch }, out);

    const identity = createIdentity({ deviceId, kemAlgorithm, sigAlgorithm, keyEpoch });
    writeFileAtomic(io, out, identityToJson(identity) + '\n', {
      mode: SECRET_FILE_MODE, overwrite: flag(args, 'force'), what: 'identity file',
    });
    writeLines(io.stdout, [
      `identity written to ${displayPath(io, out)} (mode 0600; it holds private keys)`,
      `  device id:   ${identity.deviceId}`,
      `  key epoch:   ${identity.keyEpoch}`,
      `  key id:      ${toHex(identity.keyId)}`,
      `  fingerprint: ${fingerprintOf(identity.keyId)}`,
      `  algorithms:  ${identity.kemAlgorithm} + ${identity.sigAlgorithm}`,
      '  certificate: none yet; issue one with:',
      `    pqc-iiot ca issue --dir CA_DIR --identity ${quoteArg(displayPath(io, out))} --roles pub|sub|both --topics FILTERS`,
    ]);
    return EXIT.ok;
  },
};

export const identityRotate: Command = {
  spec: {
    command: 'identity rotate',
    summary: 'Rotate a device to its next key epoch: new key pairs in a new identity file (mode 0600).',
    options: [
      { name: 'in', value: 'FILE', required: true, description: 'the current identity file (read only)' },
      { name: 'out', value: 'FILE', required: true, description: 'identity file to write for the new epoch (holds private keys)' },
      { name: 'kem', value: 'ALG', description: 'key encapsulation of the new keys (default: the current one)' },
      { name: 'sig', value: 'ALG', description: 'signature algorithm of the new keys (default: the current one)' },
      { name: 'force', description: 'replace an existing FILE given to --out' },
    ],
    notes: [
      'Same device id, key epoch + 1, new key pairs; the new file has no certificate. Then:\n' +
        '  1. pqc-iiot ca issue --dir CA_DIR --identity NEW --roles ... --topics ...\n' +
        '  2. put NEW into the device\'s pqc-config node (identity credential) and deploy.\n' +
        'Receivers move to the new epoch on its announcement and refuse the old key from then on\n' +
        '(stale-key; an old announcement replayed is epoch-rollback). If the old key may have leaked,\n' +
        'also revoke it: pqc-iiot ca revoke --dir CA_DIR --id DEVICE_ID --key-id OLD_KEY_ID.\n' +
        'To renew a certificate without new keys, run "pqc-iiot ca issue" again on the same file.',
    ],
  },
  async run(args, io) {
    const inPath = resolvePath(io, stringOption(args, 'in')!);
    const out = resolvePath(io, stringOption(args, 'out')!);
    const text = readFileChecked(io, inPath, 'identity file').toString('utf8');
    warnIfExposed(io, inPath, 'identity file');
    const current = parseOrFail(() => parseIdentityJson(text), io, inPath);
    if (current.keyEpoch >= MAX_EPOCH) {
      throw new CliError(`${displayPath(io, inPath)} is at key epoch ${current.keyEpoch}, the last one; create a new device id instead`);
    }
    const kemAlgorithm = stringOption(args, 'kem') === undefined ? current.kemAlgorithm : parseKemOption(args);
    const sigAlgorithm = parseSigOption(args, 'sig', current.sigAlgorithm);
    const rotated = createIdentity({ deviceId: current.deviceId, kemAlgorithm, sigAlgorithm, keyEpoch: current.keyEpoch + 1 });
    writeFileAtomic(io, out, identityToJson(rotated) + '\n', {
      mode: SECRET_FILE_MODE, overwrite: flag(args, 'force'), what: 'identity file',
    });
    // The old certificate's rights (public data) make the copy-and-paste hint complete.
    const cert = identityPublicInfo(current).certificate;
    const rights = cert ? `--roles ${cert.roles} --topics ${quoteArg(cert.topics.join(','))}` : '--roles pub|sub|both --topics FILTERS';
    writeLines(io.stdout, [
      `identity rotated, written to ${displayPath(io, out)} (mode 0600; it holds private keys)`,
      `  device id:   ${rotated.deviceId}`,
      `  key epoch:   ${current.keyEpoch} -> ${rotated.keyEpoch}`,
      `  key id:      ${toHex(rotated.keyId)} (was ${toHex(current.keyId)})`,
      `  fingerprint: ${fingerprintOf(rotated.keyId)}`,
      `  algorithms:  ${rotated.kemAlgorithm} + ${rotated.sigAlgorithm}`,
      '  certificate: none yet; issue one with:',
      `    pqc-iiot ca issue --dir CA_DIR --identity ${quoteArg(displayPath(io, out))} ${rights}`,
      `then deploy it in the pqc-config node of ${rotated.deviceId}; receivers refuse key epoch ${current.keyEpoch} once they have seen epoch ${rotated.keyEpoch}.`,
    ]);
    return EXIT.ok;
  },
};

function parseKemOption(args: ParsedArgs): KemAlgorithm {
  const raw = stringOption(args, 'kem');
  if (raw === undefined) return DEFAULT_KEM;
  const alg = parseKemName(raw);
  if (alg === undefined) {
    const choices = Object.keys(KEM_ALGORITHMS).map((a) => a.toLowerCase()).join(', ');
    throw usageError(`unknown KEM algorithm ${quoteValue(raw)} for --kem; choose one of ${choices}`);
  }
  return alg;
}

function parseEpoch(raw: string | undefined): number {
  if (raw === undefined) return 1;
  const epoch = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(epoch) || epoch > MAX_EPOCH) {
    throw usageError(`--epoch must be a whole number from 0 to ${MAX_EPOCH}, not ${quoteValue(raw)}`);
  }
  return epoch;
}

/** Quotes a path for a copy-and-paste shell hint only when it needs it. */
function quoteArg(p: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}

