/**
 * `pqc-iiot audit verify FILE --pub KEY`: checks a signed audit log (I6) line by line and
 * reports the first broken or forged entry. KEY is the device's public key as operators have
 * it: the device's identity file (only its public parts are read) or a captured key
 * announcement from `pqc/keys/{id}`. docs/PROTOCOL.md §12 (audit log).
 *
 * The log is streamed, so a log of any size is checked in bounded memory (a line is at most
 * AUDIT_LIMITS.maxLineBytes).
 */
import fs from 'node:fs';
import {
  CA_FORMAT, CA_KEY_TEXT_PREFIX, DEFAULT_LIMITS, IDENTITY_FORMAT, KEM_ALGORITHMS, SIG_ALGORITHMS, decodeAnnouncement,
  deriveKeyId, fingerprintOf, isKemAlgorithm, isSigAlgorithm, isValidDeviceId, toHex, verifyCertificate, type CaPublicKey,
  type SigAlgorithm,
} from '../index';
import { cryptoBackend } from '../crypto/backend';
import { bytesEqual } from '../crypto/symmetric';
import { evaluateAnnouncement } from '../session/announce';
import { AUDIT_REASONS, AuditLogVerifier, type AuditKey } from '../trust/audit';
import { announcementDigest } from '../wire/announcement';
import { decodeCertificate } from '../wire/certificate';
import { MAGIC } from '../wire/header';
import { stringOption } from './args';
import {
  CliError, EXIT, describeFsError, displayPath, nowOf, readFileChecked, resolvePath, writeLines, type CliIo, type Command,
} from './common';
import { loadCaPublicKey } from './inspect';

const READ_CHUNK_BYTES = 64 * 1024;

export const auditVerify: Command = {
  spec: {
    command: 'audit verify',
    summary: 'Check a signed audit log: report the first edited, deleted, reordered or forged entry.',
    positionals: [{ name: 'FILE', description: 'audit log (one JSON entry per line) written by a pqc-config node' }],
    options: [
      {
        name: 'pub', value: 'KEY', required: true,
        description: 'the device\'s key: its identity file (public parts used) or a captured pqc/keys announcement (raw, hex or base64)',
      },
      { name: 'ca', value: 'CA', description: 'also check KEY\'s certificate against this CA: ca.pub, a CA directory or "pqcca1:…" text' },
    ],
    notes: [
      'Exit status 0: every entry is chained to the one before and signed by KEY. Exit status 1: the\n' +
        'first line that is not, with its reason. A log cut back at a line boundary still verifies:\n' +
        'keep the printed head hash somewhere else to notice that later.',
    ],
  },
  async run(args, io) {
    const file = resolvePath(io, args.positionals[0]);
    const keyPath = resolvePath(io, stringOption(args, 'pub')!);
    const caArg = stringOption(args, 'ca');
    const ca = caArg === undefined ? undefined : loadCaPublicKey(io, caArg);
    const signer = loadSignerKey(io, keyPath, ca, nowOf(io));

    const verdict = await verifyFile(io, file, signer.key);
    const shown = displayPath(io, file);
    if (!verdict.ok) {
      const hint = verdict.reason === 'bad-signature' && verdict.line === 1 ? ', or KEY is not the key that signed this log' : '';
      throw new CliError(
        `${shown} line ${verdict.line}: ${verdict.reason}: ${AUDIT_REASONS[verdict.reason]}` +
          `${verdict.detail ? ` (${verdict.detail})` : ''}${hint}; ${verdict.entries} entries before it verified`,
      );
    }
    if (signer.unchecked) {
      io.stderr.write(`warning: ${signer.unchecked}; pass --ca to check that KEY belongs to ${signer.key.deviceId}\n`);
    }
    if (verdict.entries === 0) io.stderr.write(`warning: ${shown} holds no entries\n`);
    writeLines(io.stdout, [
      `${shown}: ${verdict.entries} entries verified`,
      `  device:    ${signer.key.deviceId} (${signer.key.sigAlgorithm}${signer.keyId ? `, key ${fingerprintOf(signer.keyId)}` : ''})`,
      `  head:      ${verdict.head} (hash of the last entry)`,
      ...(signer.certified ? ['  key:       certificate verified under the CA'] : []),
    ]);
    return EXIT.ok;
  },
};

async function verifyFile(io: CliIo, file: string, key: AuditKey) {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw new CliError(`audit log ${displayPath(io, file)}: ${describeFsError(err)}`);
  }
  if (!stat.isFile()) throw new CliError(`audit log ${displayPath(io, file)} is not a regular file`);
  const verifier = new AuditLogVerifier(key);
  const stream = fs.createReadStream(file, { highWaterMark: READ_CHUNK_BYTES });
  try {
    for await (const chunk of stream) {
      if (!verifier.write(chunk as Buffer)) break;
    }
  } catch (err) {
    throw new CliError(`audit log ${displayPath(io, file)}: ${describeFsError(err)}`);
  } finally {
    stream.destroy();
  }
  return verifier.end();
}

interface SignerKey {
  key: AuditKey;
  keyId?: Uint8Array;
  /** Set when nothing vouched for the key (no --ca): why, for a warning. */
  unchecked?: string;
  certified?: boolean;
}

/** KEY: an identity file (JSON) or a key announcement capture (raw, hex or base64). */
export function loadSignerKey(io: CliIo, file: string, ca: CaPublicKey | undefined, now: number): SignerKey {
  const bytes = new Uint8Array(readFileChecked(io, file, 'key file'));
  const shown = displayPath(io, file);
  if (bytes.length === 0) throw new CliError(`key file ${shown} is empty`);
  const announcement = asAnnouncementBytes(bytes);
  if (announcement) return keyFromAnnouncement(shown, announcement, ca, now);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes).trim();
  } catch {
    throw new CliError(`key file ${shown} is neither an identity file nor a key announcement`);
  }
  if (text.startsWith(CA_KEY_TEXT_PREFIX)) throw new CliError(`key file ${shown} is a CA public key; audit logs are signed by a device key`);
  if (!text.startsWith('{')) throw new CliError(`key file ${shown} is neither an identity file nor a key announcement`);
  return keyFromIdentityJson(shown, text, ca, now);
}

function asAnnouncementBytes(bytes: Uint8Array): Uint8Array | undefined {
  const isOurs = (b: Uint8Array) => b.length >= 2 && ((b[0] << 8) | b[1]) === MAGIC;
  if (isOurs(bytes)) return bytes;
  const text = Buffer.from(bytes).toString('latin1').replace(/\s+/g, '');
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) {
    const hex = new Uint8Array(Buffer.from(text, 'hex'));
    if (isOurs(hex)) return hex;
  }
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    const b64 = new Uint8Array(Buffer.from(text, 'base64'));
    if (isOurs(b64)) return b64;
  }
  return undefined;
}

function keyFromAnnouncement(shown: string, bytes: Uint8Array, ca: CaPublicKey | undefined, now: number): SignerKey {
  const d = decodeAnnouncement(bytes, DEFAULT_LIMITS);
  if (!d.ok) throw new CliError(`key file ${shown}: not a usable key announcement (${d.reason}${d.detail ? `: ${d.detail}` : ''})`);
  const a = d.value;
  if (!bytesEqual(deriveKeyId(a.kemAlgorithm, a.kemPublicKey, a.sigAlgorithm, a.sigPublicKey), a.keyId)) {
    throw new CliError(`key file ${shown}: announcement key id does not match its keys (key-id-mismatch)`);
  }
  // The capture is self-signed: this proves it is intact, not who made it (that is --ca's job).
  if (!cryptoBackend().verify(a.sigAlgorithm, a.signature, announcementDigest(a.deviceId, a.signedBytes), a.sigPublicKey)) {
    throw new CliError(`key file ${shown}: announcement signature does not verify (bad-signature)`);
  }
  const key = { deviceId: a.deviceId, sigAlgorithm: a.sigAlgorithm, publicKey: a.sigPublicKey };
  if (ca === undefined) {
    return { key, keyId: a.keyId, unchecked: 'the key comes from an announcement whose certificate was not checked' };
  }
  const verdict = evaluateAnnouncement(bytes, a.deviceId, undefined, { strict: true, ca, limits: DEFAULT_LIMITS }, now);
  if (!verdict.ok) throw new CliError(`key file ${shown}: the announcement is not trusted under the CA (${verdict.reason})`);
  return { key, keyId: a.keyId, certified: true };
}

function keyFromIdentityJson(shown: string, text: string, ca: CaPublicKey | undefined, now: number): SignerKey {
  let o: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    o = parsed as Record<string, unknown>;
  } catch {
    // The parser's message may quote the input, and an identity file holds secret keys.
    throw new CliError(`key file ${shown} is not valid JSON`);
  }
  if (o.format === CA_FORMAT) throw new CliError(`key file ${shown} is a CA key file; audit logs are signed by a device key`);
  if (o.format !== undefined && o.format !== IDENTITY_FORMAT) {
    throw new CliError(`key file ${shown} is JSON but not an identity file ("${IDENTITY_FORMAT}")`);
  }
  // Only public fields are read; the secret keys in an identity file are never touched.
  const { deviceId, sigAlgorithm } = o;
  if (!isValidDeviceId(deviceId)) throw new CliError(`key file ${shown}: "deviceId" is missing or not a valid device id`);
  if (!isSigAlgorithm(sigAlgorithm)) throw new CliError(`key file ${shown}: "sigAlgorithm" is missing or unknown`);
  const sigPublicKey = publicKeyField(shown, o, 'sigPublicKey', SIG_ALGORITHMS[sigAlgorithm as SigAlgorithm].publicKey);
  let keyId: Uint8Array | undefined;
  if (isKemAlgorithm(o.kemAlgorithm) && o.kemPublicKey !== undefined) {
    const kemPublicKey = publicKeyField(shown, o, 'kemPublicKey', KEM_ALGORITHMS[o.kemAlgorithm].publicKey);
    keyId = deriveKeyId(o.kemAlgorithm, kemPublicKey, sigAlgorithm, sigPublicKey);
    if (o.keyId !== undefined && o.keyId !== toHex(keyId)) throw new CliError(`key file ${shown}: "keyId" does not match the public keys`);
  }
  const key = { deviceId, sigAlgorithm, publicKey: sigPublicKey };
  if (ca === undefined) return { key, ...(keyId ? { keyId } : {}) };
  if (typeof o.certificate !== 'string' || keyId === undefined) {
    throw new CliError(`key file ${shown} holds no certificate (and KEM key) to check against --ca`);
  }
  const cert = new Uint8Array(Buffer.from(o.certificate, 'base64'));
  const check = verifyCertificate(cert, ca, now, DEFAULT_LIMITS);
  if (!check.ok) throw new CliError(`key file ${shown}: certificate does not verify under the CA (${check.reason})`);
  const c = decodeCertificate(cert, DEFAULT_LIMITS);
  if (!c.ok || c.value.deviceId !== deviceId || !bytesEqual(c.value.keyId, keyId) || !bytesEqual(c.value.sigPublicKey, sigPublicKey)) {
    throw new CliError(`key file ${shown}: certificate was issued for another device or key (certificate-key-mismatch)`);
  }
  return { key, keyId, certified: true };
}

function publicKeyField(shown: string, o: Record<string, unknown>, name: string, length: number): Uint8Array {
  const v = o[name];
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new CliError(`key file ${shown}: "${name}" must be base64`);
  const bytes = new Uint8Array(Buffer.from(v, 'base64'));
  if (bytes.length !== length) throw new CliError(`key file ${shown}: "${name}" has ${bytes.length} bytes, expected ${length}`);
  return bytes;
}
