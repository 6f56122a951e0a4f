/**
 * Shared fixtures for the protocol-core tests (test/lib/**): identities and CAs created once per
 * test process (key generation is the slow part), a counting crypto backend to prove that no
 * cryptography ran, a seeded PRNG, and an independent walker over the wire layouts of
 * docs/PROTOCOL.md §2 so tamper tests can aim at each field region by name.
 */
import assert from 'node:assert/strict';
import {
  REASON_CODES, SecureSession, SoftwareProvider, createCa, createIdentity, cryptoBackend, issueCertificate,
  useCryptoBackend, type CaKeyPair, type CryptoBackend, type IdentityBundle, type Reason, type Result, type Role,
  type SessionOptions, type SigAlgorithm,
} from '../../lib';

/** "Now" for every test: 2025-01-01T00:00:00Z. Time is always passed in, never read. */
export const T0 = Date.UTC(2025, 0, 1);
export const HOUR = 3600 * 1000;
export const DAY = 24 * HOUR;

const memo = new Map<string, unknown>();
function once<T>(key: string, make: () => T): T {
  if (!memo.has(key)) memo.set(key, make());
  return memo.get(key) as T;
}

/** The pinned CA of the tests (ML-DSA-44). */
export function testCa(): CaKeyPair {
  return once('ca', () => createCa());
}

/** A second, unrelated CA: its certificates must not verify under testCa(). */
export function otherCa(): CaKeyPair {
  return once('ca2', () => createCa());
}

/** A Falcon-512 CA, for the variable-length CA signature path. */
export function falconCa(): CaKeyPair {
  return once('ca-falcon', () => createCa({ sigAlgorithm: 'Falcon-512' }));
}

export interface DeviceSpec {
  id: string;
  sig?: SigAlgorithm;
  epoch?: number;
  /** Distinguishes two key pairs with the same id and epoch (epoch-collision tests). */
  variant?: string;
}

/** An identity without certificate, generated once per (id, algorithm, epoch, variant). */
export function keysFor(spec: DeviceSpec): IdentityBundle {
  const sig = spec.sig ?? 'ML-DSA-44';
  const epoch = spec.epoch ?? 1;
  return once(`id:${spec.id}:${sig}:${epoch}:${spec.variant ?? ''}`, () =>
    createIdentity({ deviceId: spec.id, sigAlgorithm: sig, keyEpoch: epoch }));
}

export interface CertSpec {
  roles?: Role;
  topics?: string[];
  notBefore?: number;
  notAfter?: number;
  ca?: CaKeyPair;
}

/** Default rights: publish and subscribe under plant/#, valid for a year around T0. */
export function certify(keys: IdentityBundle, cert: CertSpec = {}): IdentityBundle {
  return issueCertificate(cert.ca ?? testCa(), keys, {
    roles: cert.roles ?? 'both',
    topics: cert.topics ?? ['plant/#'],
    notBefore: cert.notBefore ?? T0 - 180 * DAY,
    notAfter: cert.notAfter ?? T0 + 180 * DAY,
  });
}

/** A certified identity with default rights, cached. */
export function device(spec: DeviceSpec): IdentityBundle {
  return once(`dev:${spec.id}:${spec.sig ?? ''}:${spec.epoch ?? 1}:${spec.variant ?? ''}`, () => certify(keysFor(spec)));
}

export function session(identity: IdentityBundle, opts: Partial<SessionOptions> = {}): SecureSession {
  const strict = opts.strict ?? true;
  return new SecureSession({
    provider: new SoftwareProvider(identity),
    ...(strict ? { caPublicKey: testCa().publicKey } : {}),
    ...opts,
  });
}

/** Lets `receiver` trust `sender` through its announcement; fails the test if it is refused. */
export async function introduce(receiver: SecureSession, sender: SecureSession, now = T0): Promise<void> {
  const r = await receiver.handleAnnouncement(sender.announcementTopic(), await sender.buildAnnouncement(now), now);
  assert.ok(r.ok, `announcement of ${sender.deviceId} refused by ${receiver.deviceId}: ${r.ok ? '' : r.reason}`);
}

/** Two sessions that trust each other. */
export async function pair(a: SecureSession, b: SecureSession, now = T0): Promise<void> {
  await introduce(a, b, now);
  await introduce(b, a, now);
}

export function assertReason<T>(r: Result<T>, expected: Reason | readonly Reason[], what = ''): void {
  const allowed: readonly Reason[] = typeof expected === 'string' ? [expected] : expected;
  assert.equal(r.ok, false, `${what}: expected rejection (${allowed.join(' | ')}), got acceptance`);
  if (r.ok) return;
  assert.ok(allowed.includes(r.reason), `${what}: expected ${allowed.join(' | ')}, got ${r.reason}${r.detail ? ` (${r.detail})` : ''}`);
}

export function assertRejected<T>(r: Result<T>, what = ''): Reason {
  assert.equal(r.ok, false, `${what}: expected rejection, got acceptance`);
  if (r.ok) throw new Error('unreachable');
  assert.ok(REASON_CODES.includes(r.reason), `${what}: reason ${String(r.reason)} is not in REASON_CODES`);
  return r.reason;
}

// --- counting crypto backend -------------------------------------------------------------------

export type CryptoCounts = Record<'kemKeygen' | 'encapsulate' | 'decapsulate' | 'sigKeygen' | 'sign' | 'verify', number>;

/**
 * Runs `fn` with a backend that counts every post-quantum operation of the backend in use, and
 * puts that backend back afterwards, whatever happens.
 */
export async function countCrypto<T>(fn: () => Promise<T> | T): Promise<{ value: T; counts: CryptoCounts; total: number }> {
  const counts: CryptoCounts = { kemKeygen: 0, encapsulate: 0, decapsulate: 0, sigKeygen: 0, sign: 0, verify: 0 };
  const b = cryptoBackend();
  const counting: CryptoBackend = {
    name: `counting(${b.name})`,
    kemKeygen: (...a) => (counts.kemKeygen++, b.kemKeygen(...a)),
    encapsulate: (...a) => (counts.encapsulate++, b.encapsulate(...a)),
    decapsulate: (...a) => (counts.decapsulate++, b.decapsulate(...a)),
    sigKeygen: (...a) => (counts.sigKeygen++, b.sigKeygen(...a)),
    sign: (...a) => (counts.sign++, b.sign(...a)),
    verify: (...a) => (counts.verify++, b.verify(...a)),
  };
  useCryptoBackend(counting);
  try {
    const value = await fn();
    const total = Object.values(counts).reduce((s, n) => s + n, 0);
    return { value, counts, total };
  } finally {
    useCryptoBackend(b);
  }
}

// --- seeded randomness ---------------------------------------------------------------------------

/** mulberry32: small, fast, deterministic; good enough to pick test inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(rand: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

// --- byte helpers --------------------------------------------------------------------------------

export function flipBit(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[offset] ^= 1 << bit;
  return out;
}

export function withByte(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[offset] = value;
  return out;
}

export function withU16(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[offset] = value >> 8;
  out[offset + 1] = value & 0xff;
  return out;
}

export function withU32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  new DataView(out.buffer).setUint32(offset, value, false);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// --- independent layout walker (docs/PROTOCOL.md §2) -------------------------------------------

/**
 * Field kinds of the wire layouts, written down again here (not imported) so that a change of
 * layout in lib/ shows up as a test failure rather than being followed silently.
 */
type Kind = 'u8' | 'u32' | 'u64' | 'id' | { fixed: number } | { sized: 2 | 4 } | 'topics';

const HEADER: [string, Kind][] = [['magic', { fixed: 2 }], ['version', 'u8'], ['type', 'u8']];

export const LAYOUTS = {
  certificate: [
    ...HEADER, ['deviceId', 'id'], ['keyEpoch', 'u32'], ['keyId', { fixed: 16 }], ['kemAlgorithm', 'u8'],
    ['kemPublicKey', { sized: 2 }], ['sigAlgorithm', 'u8'], ['sigPublicKey', { sized: 2 }], ['notBefore', 'u64'],
    ['notAfter', 'u64'], ['roles', 'u8'], ['topics', 'topics'], ['caKeyId', { fixed: 16 }], ['caSigAlgorithm', 'u8'],
    ['signature', { sized: 2 }],
  ],
  announcement: [
    ...HEADER, ['deviceId', 'id'], ['keyEpoch', 'u32'], ['keyId', { fixed: 16 }], ['kemAlgorithm', 'u8'],
    ['kemPublicKey', { sized: 2 }], ['sigAlgorithm', 'u8'], ['sigPublicKey', { sized: 2 }], ['issuedAt', 'u64'],
    ['certificate', { sized: 2 }], ['signature', { sized: 2 }],
  ],
  envelope: [
    ...HEADER, ['senderId', 'id'], ['senderKeyEpoch', 'u32'], ['senderKeyId', { fixed: 16 }], ['sigAlgorithm', 'u8'],
    ['recipientId', 'id'], ['recipientKeyId', { fixed: 16 }], ['kemAlgorithm', 'u8'], ['seq', 'u64'],
    ['timestamp', 'u64'], ['capsule', { sized: 2 }], ['nonce', { fixed: 12 }], ['ciphertext', { sized: 4 }],
    ['authKind', 'u8'], ['signature', { sized: 2 }],
  ],
  caPublicKey: [...HEADER, ['sigAlgorithm', 'u8'], ['publicKey', { sized: 2 }]],
} satisfies Record<string, [string, Kind][]>;

/** [start, end) of a field's whole encoding, and of its length prefix and content when it has one. */
export interface Region {
  start: number;
  end: number;
  /** Offset of the length prefix (sized fields and ids). */
  prefix?: number;
  /** Where the content starts (after the prefix). */
  content: number;
}

export function regionsOf(layout: keyof typeof LAYOUTS, bytes: Uint8Array): Record<string, Region> {
  const out: Record<string, Region> = {};
  let o = 0;
  const u16 = (at: number): number => (bytes[at] << 8) | bytes[at + 1];
  for (const [name, kind] of LAYOUTS[layout] as [string, Kind][]) {
    const start = o;
    if (kind === 'u8') o += 1;
    else if (kind === 'u32') o += 4;
    else if (kind === 'u64') o += 8;
    else if (kind === 'id') {
      out[name] = { start, prefix: start, content: start + 1, end: start + 1 + bytes[start] };
      o = out[name].end;
      continue;
    } else if (kind === 'topics') {
      const n = bytes[o];
      o += 1;
      for (let i = 0; i < n; i++) o += 2 + u16(o);
    } else if ('fixed' in kind) o += kind.fixed;
    else {
      const len = kind.sized === 2 ? u16(o) : new DataView(bytes.buffer, bytes.byteOffset + o, 4).getUint32(0, false);
      out[name] = { start, prefix: start, content: start + kind.sized, end: start + kind.sized + len };
      o = out[name].end;
      continue;
    }
    out[name] = { start, content: start, end: o };
  }
  assert.equal(o, bytes.length, `layout walk of ${layout} ends at ${o}, encoding has ${bytes.length} bytes`);
  return out;
}

const announcements = new WeakMap<object, Uint8Array>();

/**
 * The announcement of a session or identity at T0, built once per object (signing is the slow
 * part). An identity is announced through a non-strict session, so any bundle can be announced.
 */
export async function announcementOf(who: SecureSession | IdentityBundle): Promise<Uint8Array> {
  let a = announcements.get(who);
  if (!a) {
    a = who instanceof SecureSession ? await who.buildAnnouncement(T0) : await session(who, { strict: false }).buildAnnouncement(T0);
    announcements.set(who, a);
  }
  return a;
}

/**
 * A sending session for `identity` whose next sequence number is `seq` and that trusts
 * `recipient`: lets a test seal envelopes with any sequence numbers it needs.
 */
export async function senderAt(identity: IdentityBundle, recipient: SecureSession, seq: bigint, opts: Partial<SessionOptions> = {}): Promise<SecureSession> {
  const s = session(identity, { ...opts, initialSequence: seq });
  const r = await s.handleAnnouncement(recipient.announcementTopic(), await announcementOf(recipient), T0);
  assert.ok(r.ok, `sender ${s.deviceId} refused ${recipient.deviceId}: ${r.ok ? '' : r.reason}`);
  return s;
}
