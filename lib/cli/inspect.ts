/**
 * `pqc-iiot inspect [FILE|-]`: shows what a captured packet or a provisioning file contains,
 * as JSON. Accepts every binary structure of docs/PROTOCOL.md §2 (key announcement, certificate,
 * direct envelope, CA public key, revocation update, topic key message, topic envelope, compact
 * topic envelope, batch manifest; raw, hex or base64 as MQTT tools print them), an identity file,
 * a CA key file or CA public key text. Only public fields are printed: never secret keys (and
 * there is no key material or plaintext in the clear in any structure). Untrusted bytes go
 * through the core's decoders, so a bad packet is reported with the same reason code a receiver
 * would use. docs/PROTOCOL.md §2 (layouts) and §8 (reason codes).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  CA_FORMAT, CA_KEY_TEXT_PREFIX, DEFAULT_LIMITS, IDENTITY_FORMAT, REASONS, caPublicKeyToText, decodeAnnouncement,
  decodeBatchManifest, decodeCaPublicKey, decodeCertificate, decodeCompactEnvelope, decodeDirectEnvelope, fingerprintOf,
  identityPublicInfo, parseCaKeyPairJson, parseCaPublicKeyText, parseIdentityJson, peekType, toHex, verifyCertificate,
  type CaPublicKey, type Reason, type Result,
} from '../index';
import { sha256 } from '../crypto/symmetric';
import { PKCS11_IDENTITY_FORMAT, parsePkcs11IdentityJson, publicBundleOf } from '../io/pkcs11/identity-file';
// Not part of the public API: the receiver's announcement decision, and the header constants.
import { evaluateAnnouncement } from '../session/announce';
import { EMPTY_REVOCATIONS, applyRevocation } from '../trust/revocation';
import { AUTH_KINDS, type EnvelopeAuth } from '../wire/auth';
import { HEADER_BYTES, MAGIC, PROTOCOL_VERSION } from '../wire/header';
import { ALL_KEYS, decodeRevocation } from '../wire/revocation';
import { decodeTopicEnvelope } from '../wire/topic-envelope';
import { decodeTopicKey } from '../wire/topic-key';
import { flag, stringOption } from './args';
import { CA_KEY_FILE, CA_PUBLIC_FILE, parseOrFail } from './ca';
import {
  CliError, EXIT, displayPath, nowOf, readFileChecked, readStdin, resolvePath, usageError, type CliIo, type Command,
} from './common';

/** Byte fields longer than this are summarised (length + digest) unless --full is given. */
const INLINE_HEX_BYTES = 32;
/** Fields of decoded structures that only repeat other bytes (what a signature covers, etc.). */
const DERIVED_FIELDS = new Set(['blob', 'headerBytes', 'signedBytes', 'bytes']);
/** u64 fields that hold milliseconds since the Unix epoch. */
const TIME_FIELDS = new Set(['notBefore', 'notAfter', 'issuedAt', 'timestamp']);

export const inspect: Command = {
  spec: {
    command: 'inspect',
    summary: 'Decode a captured packet or a provisioning file and print its fields (never secret keys).',
    positionals: [{ name: 'FILE', optional: true, description: 'file to read; "-" or nothing reads stdin' }],
    options: [
      { name: 'ca', value: 'CA', description: 'also verify against this CA: ca.pub, a CA directory, or "pqcca1:…" text' },
      { name: 'full', description: 'print every byte field in full hex instead of length and digest' },
    ],
    notes: [
      'Recognises key announcements, certificates, direct, topic and compact envelopes, topic key\n' +
        'messages, batch manifests, CA public keys and revocation updates (raw bytes, hex or base64),\n' +
        'identity files, CA key files and CA public key text.\n' +
        'Undecodable input prints its reason code (e.g. "truncated") and exits with status 1.',
    ],
  },
  async run(args, io) {
    const source = args.positionals[0];
    const full = flag(args, 'full');
    const caArg = stringOption(args, 'ca');
    const ca = caArg === undefined ? undefined : loadCaPublicKey(io, caArg);

    let input: Buffer;
    let label: string;
    if (source === undefined || source === '-') {
      if (source === undefined && io.stdin.isTTY) throw usageError('give a FILE, or pipe data into stdin ("-")');
      input = await readStdin(io);
      label = 'stdin';
    } else {
      const file = resolvePath(io, source);
      input = readFileChecked(io, file, 'input file');
      label = displayPath(io, file);
    }
    if (input.length === 0) throw new CliError(`${label} is empty`);

    const report = describe(io, new Uint8Array(input), label, { full, ca, now: nowOf(io) });
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
    const verification = report.verification as { ok: boolean; reason?: Reason } | undefined;
    if (verification && !verification.ok) {
      io.stderr.write(`pqc-iiot inspect: verification failed: ${verification.reason}: ${REASONS[verification.reason!]}\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  },
};

interface DescribeOptions {
  readonly full: boolean;
  readonly ca: CaPublicKey | undefined;
  readonly now: number;
}

type Report = Record<string, unknown>;

function describe(io: CliIo, input: Uint8Array, label: string, opts: DescribeOptions): Report {
  if (startsWithMagic(input)) return describeBinary(input, opts);
  const text = decodeUtf8(input);
  if (text === undefined) throw rejected('bad-magic', `${label} is neither a pqc-iiot structure nor text`);
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return describeJson(io, trimmed, label, opts);
  if (trimmed.startsWith(CA_KEY_TEXT_PREFIX)) return describeCaPublicText(trimmed, opts);
  // MQTT tools often print payloads as hex (mosquitto_sub -F %x) or base64.
  const compact = trimmed.replace(/\s+/g, '');
  const hex = /^(?:[0-9a-fA-F]{2})+$/.test(compact) ? Buffer.from(compact, 'hex') : undefined;
  if (hex && startsWithMagic(hex)) return { encoding: 'hex', ...describeBinary(new Uint8Array(hex), opts) };
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/.test(compact) ? Buffer.from(compact, 'base64') : undefined;
  if (b64 && startsWithMagic(b64)) return { encoding: 'base64', ...describeBinary(new Uint8Array(b64), opts) };
  throw rejected(
    'bad-magic',
    `${label} is not a pqc-iiot packet, identity file, CA key file or CA public key`,
  );
}

function describeBinary(bytes: Uint8Array, opts: DescribeOptions): Report {
  if (bytes.length < HEADER_BYTES) throw rejected('truncated', 'shorter than the 4-byte header');
  if (bytes[2] !== PROTOCOL_VERSION) throw rejected('bad-version', `version byte ${bytes[2]}`);
  const type = peekType(bytes);
  const head = { type, size: bytes.length, version: bytes[2] };
  switch (type) {
    case 'announcement': {
      const a = expect(decodeAnnouncement(bytes, DEFAULT_LIMITS));
      const { certificate, ...rest } = a;
      const report: Report = { ...head, ...render(rest, opts.full) };
      report.certificate = certificate.length === 0 ? null : describeEmbeddedCertificate(certificate, opts.full);
      if (opts.ca) {
        // The same decision a strict receiver takes, minus the topic (a capture file has none):
        // the announced id stands in for the topic's.
        const verdict = evaluateAnnouncement(bytes, a.deviceId, undefined, { strict: true, ca: opts.ca, limits: DEFAULT_LIMITS }, opts.now);
        report.verification = verdictOf(verdict);
      }
      return report;
    }
    case 'certificate': {
      const c = expect(decodeCertificate(bytes, DEFAULT_LIMITS));
      const report: Report = { ...head, ...render(c, opts.full), fingerprint: fingerprintOf(c.keyId) };
      if (opts.ca) report.verification = verdictOf(verifyCertificate(bytes, opts.ca, opts.now, DEFAULT_LIMITS));
      return report;
    }
    case 'directEnvelope': {
      const { auth, ...e } = expect(decodeDirectEnvelope(bytes, DEFAULT_LIMITS));
      const report: Report = { ...head, ...render(e, opts.full), auth: renderAuth(auth, opts.full) };
      if (opts.ca) report.verification = notApplicable('an envelope is verified with its sender\'s key, by a receiver that trusts the sender');
      return report;
    }
    case 'topicKey': {
      const { wraps, signature, ...rest } = expect(decodeTopicKey(bytes, DEFAULT_LIMITS));
      const report: Report = {
        ...head,
        ...render(rest, opts.full),
        // 0 = no fixed end (only the schedule strategy sets one), not 1970.
        ...(rest.notAfter === 0n ? { notAfter: 'none (0)' } : {}),
        wrapCount: wraps.length,
        wraps: wraps.map((w) => render(w, opts.full)),
        signature: renderBytes(signature, opts.full),
      };
      if (opts.ca) report.verification = notApplicable('a topic key message is verified with its publisher\'s key, by a receiver that trusts the publisher');
      return report;
    }
    case 'topicEnvelope': {
      const { auth, ...e } = expect(decodeTopicEnvelope(bytes, DEFAULT_LIMITS));
      const report: Report = { ...head, ...render(e, opts.full), auth: renderAuth(auth, opts.full) };
      if (opts.ca) report.verification = notApplicable('an envelope is verified with its sender\'s key, by a receiver that trusts the sender');
      return report;
    }
    case 'compactEnvelope': {
      const e = expect(decodeCompactEnvelope(bytes, DEFAULT_LIMITS));
      const report: Report = {
        ...head,
        ...render(e, opts.full),
        auth: 'none in the envelope: its message digest is listed in its sender\'s signed batch manifest (type 0x09)',
      };
      if (opts.ca) report.verification = notApplicable('a compact envelope is authenticated by its sender\'s batch manifest, not by the CA');
      return report;
    }
    case 'batchManifest': {
      const { digests, signature, ...rest } = expect(decodeBatchManifest(bytes, DEFAULT_LIMITS));
      const report: Report = {
        ...head,
        ...render(rest, opts.full),
        digestCount: digests.length,
        digests: digests.map(toHex),
        signature: renderBytes(signature, opts.full),
      };
      if (opts.ca) report.verification = notApplicable('a batch manifest is verified with its sender\'s key, by a receiver that trusts the sender');
      return report;
    }
    case 'caPublicKey': {
      const k = expect(decodeCaPublicKey(bytes));
      return { ...head, ...describeCaKey(k, opts) };
    }
    case 'revocation': {
      const u = expect(decodeRevocation(bytes, DEFAULT_LIMITS));
      const { entries, ...rest } = u;
      const report: Report = {
        ...head,
        ...render(rest, opts.full),
        entries: entries.map((e) => ({
          deviceId: e.deviceId,
          keyId: toHex(e.keyId),
          ...(toHex(e.keyId) === toHex(ALL_KEYS) ? { allKeys: true } : {}),
        })),
      };
      // Checked as a receiver that has applied nothing yet would check it (CA, topic binding,
      // signature); monotonicity needs a receiver's state and is not judged here.
      if (opts.ca) report.verification = verdictOf(applyRevocation(EMPTY_REVOCATIONS, bytes, u.topic, u.topic, opts.ca, DEFAULT_LIMITS));
      return report;
    }
    default:
      throw rejected('bad-type', `structure type byte 0x${bytes[3].toString(16).padStart(2, '0')}`);
  }
}

function describeEmbeddedCertificate(bytes: Uint8Array, full: boolean): Report {
  const c = decodeCertificate(bytes, DEFAULT_LIMITS);
  if (!c.ok) return { error: c.reason, ...(c.detail ? { detail: c.detail } : {}) };
  return { ...render(c.value, full), fingerprint: fingerprintOf(c.value.keyId) };
}

function describeCaPublicText(text: string, opts: DescribeOptions): Report {
  const k = expect(parseCaPublicKeyText(text));
  return { type: 'caPublicKeyText', ...describeCaKey(k, opts) };
}

function describeCaKey(k: CaPublicKey, opts: DescribeOptions): Report {
  const report: Report = {
    sigAlgorithm: k.sigAlgorithm,
    keyId: toHex(k.keyId),
    fingerprint: fingerprintOf(k.keyId),
    publicKey: renderBytes(k.publicKey, opts.full),
    text: caPublicKeyToText(k),
  };
  if (opts.ca) {
    report.verification = caPublicKeyToText(opts.ca) === report.text
      ? { ok: true, note: 'same CA as --ca' }
      : { ok: false, reason: 'bad-certificate', detail: 'a different CA than --ca' };
  }
  return report;
}

function describeJson(io: CliIo, text: string, label: string, opts: DescribeOptions): Report {
  let format: unknown;
  try {
    format = (JSON.parse(text) as { format?: unknown } | null)?.format;
  } catch {
    // The parser's message may quote the input, which may hold secret keys.
    throw new CliError(`${label} is not valid JSON`);
  }
  // A PKCS#11 identity file: the same public parts, its secret keys are in the token.
  const inToken = format === PKCS11_IDENTITY_FORMAT ? parseOrFail(() => parsePkcs11IdentityJson(text), io, label) : undefined;
  if (format === IDENTITY_FORMAT || inToken) {
    const bundle = inToken ? publicBundleOf(inToken) : parseOrFail(() => parseIdentityJson(text), io, label);
    const info = identityPublicInfo(bundle);
    const report: Report = {
      type: 'identity',
      deviceId: info.deviceId,
      keyEpoch: info.keyEpoch,
      keyId: info.keyId,
      fingerprint: info.fingerprint,
      kemAlgorithm: info.kemAlgorithm,
      sigAlgorithm: info.sigAlgorithm,
      kemPublicKey: renderBytes(bundle.kemPublicKey, opts.full),
      sigPublicKey: renderBytes(bundle.sigPublicKey, opts.full),
      secretKeys: inToken
        ? `none in this file: in PKCS#11 token ${JSON.stringify(inToken.pkcs11.token)}, key label ${JSON.stringify(inToken.pkcs11.keyLabel)}`
        : 'present (not shown); keep this file private (mode 0600)',
      certificate: bundle.certificate ? describeEmbeddedCertificate(bundle.certificate, opts.full) : null,
    };
    if (opts.ca) {
      report.verification = bundle.certificate
        ? verdictOf(verifyCertificate(bundle.certificate, opts.ca, opts.now, DEFAULT_LIMITS))
        : { ok: false, reason: 'no-certificate' };
    }
    return report;
  }
  if (format === CA_FORMAT) {
    const ca = parseOrFail(() => parseCaKeyPairJson(text), io, label);
    return {
      type: 'caKeyPair',
      ...describeCaKey(ca.publicKey, opts),
      secretKey: 'present (not shown); keep this file offline (mode 0600)',
    };
  }
  throw new CliError(`${label} is JSON but neither an identity file ("${IDENTITY_FORMAT}") nor a CA key file ("${CA_FORMAT}")`);
}

/** --ca accepts what operators have at hand: the text, ca.pub, a CA key file or the CA directory. */
export function loadCaPublicKey(io: CliIo, arg: string): CaPublicKey {
  if (arg.trim().startsWith(CA_KEY_TEXT_PREFIX)) {
    const r = parseCaPublicKeyText(arg);
    if (!r.ok) throw usageError(`--ca is not a valid CA public key (${r.reason})`);
    return r.value;
  }
  let file = resolvePath(io, arg);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) {
    const pub = path.join(file, CA_PUBLIC_FILE);
    file = fs.existsSync(pub) ? pub : path.join(file, CA_KEY_FILE);
  }
  const text = readFileChecked(io, file, 'CA file').toString('utf8');
  if (text.trim().startsWith('{')) return parseOrFail(() => parseCaKeyPairJson(text), io, file).publicKey;
  const r = parseCaPublicKeyText(text);
  if (!r.ok) throw new CliError(`${displayPath(io, file)} is not a CA public key (${r.reason})`);
  return r.value;
}

/** Makes decoded structures printable: bytes as hex or a summary, u64 as decimal, times as ISO. */
function render(value: object, full: boolean): Report {
  const out: Report = {};
  for (const [key, v] of Object.entries(value)) {
    if (DERIVED_FIELDS.has(key)) continue;
    if (typeof v === 'bigint') {
      out[key] = TIME_FIELDS.has(key) ? renderTime(v) : v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    } else if (v instanceof Uint8Array) {
      out[key] = renderBytes(v, full);
    } else {
      out[key] = v;
    }
  }
  return out;
}

/** The auth trailer of an envelope (§2.7): its kind, and for a batch the leaf and path sizes. */
function renderAuth(auth: EnvelopeAuth, full: boolean): Report {
  const kind = { kind: auth.kind, kindByte: `0x${AUTH_KINDS[auth.kind].toString(16).padStart(2, '0')}` };
  if (auth.kind === 'signature') return { ...kind, signature: renderBytes(auth.signature, full) };
  return {
    ...kind,
    leafIndex: auth.leafIndex,
    leafCount: auth.leafCount,
    pathLength: auth.path.length,
    path: auth.path.map((h) => renderBytes(h, full)),
    signature: renderBytes(auth.signature, full),
  };
}

function renderBytes(bytes: Uint8Array, full: boolean): string | Report {
  if (full || bytes.length <= INLINE_HEX_BYTES) return toHex(bytes);
  return { length: bytes.length, sha256: toHex(sha256(bytes)) };
}

function renderTime(ms: bigint): string | number {
  // Dates beyond year 275760 are not representable; show the raw number then.
  const date = ms <= 8_640_000_000_000_000n ? new Date(Number(ms)) : undefined;
  return date && !Number.isNaN(date.getTime()) ? `${date.toISOString()} (${ms})` : ms.toString();
}

function verdictOf(r: Result<unknown>): Report {
  return r.ok ? { ok: true } : { ok: false, reason: r.reason, ...(r.detail ? { detail: r.detail } : {}) };
}

function notApplicable(why: string): Report {
  return { ok: true, note: `not applicable: ${why}` };
}

function expect<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw rejected(r.reason, r.detail);
}

function rejected(reason: Reason, detail?: string): CliError {
  return new CliError(`rejected: ${reason}: ${REASONS[reason]}${detail ? ` (${detail})` : ''}`);
}

function startsWithMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && ((bytes[0] << 8) | bytes[1]) === MAGIC;
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
