/**
 * `pqc-iiot identity new`: a device's key pairs (ML-KEM for receiving, a signature key for
 * publishing) in one identity file. The file holds private keys: it is written with mode 0600,
 * and only its public parts are ever printed. docs/PROTOCOL.md §6.
 */
import {
  DEFAULT_KEM, DEFAULT_SIG, DEVICE_ID_PATTERN, KEM_ALGORITHMS, createIdentity, fingerprintOf, identityToJson, parseKemName,
  toHex, type KemAlgorithm,
} from '../index';
import { flag, stringOption, type ParsedArgs } from './args';
import { SECRET_FILE_MODE, parseSigOption } from './ca';
import { EXIT, displayPath, quoteValue, resolvePath, usageError, writeFileAtomic, writeLines, type Command } from './common';

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

