/**
 * A thin, typed layer over the pkcs11js binding for the PKCS#11 SecurityProvider: one shared,
 * reference-counted load of each module per process (C_Initialize may run only once per module),
 * a session logged in as the token's user, and the few operations the provider needs — AES-256
 * keys generated in the token that never leave it, AES-GCM inside the token, and private data
 * objects. Every failure becomes a Pkcs11ProviderError with a code from a closed list and a
 * message that names the module, token or label but never the PIN or any key material.
 *
 * The binding is loaded on first use, not at import: it is a native addon, and a machine where it
 * did not build must still run the software provider.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type * as Pkcs11Js from 'pkcs11js';
import { ProviderError } from '../../session/provider';

type Handle = Buffer;
type Binding = typeof Pkcs11Js;

export const PKCS11_ERROR_CODES = Object.freeze({
  'binding-unavailable': 'the pkcs11js binding is not installed or did not build',
  'module-not-found': 'the PKCS#11 module file does not exist or cannot be loaded',
  'module-invalid': 'the file is not a PKCS#11 module, or it failed to initialise',
  'token-not-found': 'no token with this label is present',
  'pin-missing': 'no PIN was given',
  'pin-incorrect': 'the token refused the PIN',
  'pin-locked': 'the token locked the PIN after too many wrong tries',
  'key-missing': 'the token holds no key or wrapped identity under this label',
  'key-exists': 'the token already holds a key under this label',
  'key-mismatch': 'the key in the token belongs to another identity',
  'token-removed': 'the token or its objects went away while in use',
  'counter-rollback': 'a monotonic counter cannot be lowered',
  'closed': 'the provider was closed',
  'token-error': 'the token reported another error',
} as const);

export type Pkcs11ErrorCode = keyof typeof PKCS11_ERROR_CODES;

/** A provider failure for the user: `code` for programs (status, tests), `message` for people. */
export class Pkcs11ProviderError extends ProviderError {
  constructor(
    override readonly code: Pkcs11ErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'Pkcs11ProviderError';
  }
}

/** PKCS#11 3.2 post-quantum mechanisms (OASIS pkcs11t.h 3.2); pkcs11js 2.1 has no constants yet. */
export const PQ_MECHANISMS = Object.freeze({
  CKM_ML_KEM_KEY_PAIR_GEN: 0x0f,
  CKM_ML_KEM: 0x17,
  CKM_ML_DSA_KEY_PAIR_GEN: 0x1c,
  CKM_ML_DSA: 0x1d,
});

export interface PqMechanismReport {
  readonly mlKem: boolean;
  readonly mlDsa: boolean;
}

/** CK_SLOT_INFO flag "a hardware slot" (PKCS#11 2.40 §3.2); pkcs11js 2.1 does not type it. */
const CKF_HW_SLOT = 0x04;

export interface TokenDescription {
  readonly manufacturer: string;
  readonly model: string;
  /**
   * CKF_HW_SLOT of the slot. False for software tokens such as SoftHSM, whose objects are files
   * on the same disk: there the keys and counters are only as safe as the PIN.
   */
  readonly hardwareSlot: boolean;
}

let binding: Binding | undefined;

function loadBinding(): Binding {
  if (binding) return binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require('pkcs11js') as Binding;
    return binding;
  } catch {
    throw new Pkcs11ProviderError(
      'binding-unavailable',
      'the PKCS#11 provider needs the optional dependency pkcs11js, which is not installed or did not build ' +
        '(it compiles at install time: needs g++, make and python3); in the Node-RED user directory run: npm rebuild pkcs11js ' +
        '(if npm skipped its install script: npm install-scripts approve pkcs11js first)',
    );
  }
}

interface LoadedModule {
  readonly lib: Pkcs11Js.PKCS11;
  readonly key: string;
  users: number;
  /** False when someone else in this process initialised the module first: leave it to them. */
  readonly ownsInit: boolean;
  /** Open sessions and the keyed digest of the PIN that logged in, per slot (see TokenSession.open). */
  readonly logins: Map<string, { sessions: number; pinDigest: Buffer }>;
}

/** Per-process key: the PIN that logged in is remembered only as an HMAC under it, never in clear. */
const PIN_DIGEST_KEY = randomBytes(32);
const pinDigest = (slot: Handle, pin: string): Buffer => createHmac('sha256', PIN_DIGEST_KEY).update(slot).update(pin, 'utf8').digest();

const modules = new Map<string, LoadedModule>();

function acquireModule(modulePath: string): LoadedModule {
  if (typeof modulePath !== 'string' || modulePath.trim() === '') {
    throw new Pkcs11ProviderError('module-not-found', 'no PKCS#11 module path given');
  }
  const shown = modulePath;
  // Keyed by the real file: two paths to one library share one dlopen handle and one C_Initialize.
  let key = modulePath;
  if (path.isAbsolute(modulePath) || modulePath.includes('/')) {
    try {
      key = fs.realpathSync(modulePath);
    } catch {
      throw new Pkcs11ProviderError('module-not-found', `PKCS#11 module ${shown} not found`);
    }
  }
  const existing = modules.get(key);
  if (existing) {
    existing.users++;
    return existing;
  }
  const p11 = loadBinding();
  const lib = new p11.PKCS11();
  try {
    lib.load(key);
  } catch (err) {
    const text = err instanceof Error ? err.message : '';
    if (/C_GetFunctionList|undefined symbol/.test(text)) {
      throw new Pkcs11ProviderError('module-invalid', `${shown} is not a PKCS#11 module (no C_GetFunctionList)`);
    }
    throw new Pkcs11ProviderError('module-not-found', `PKCS#11 module ${shown} cannot be loaded (${/No such file/.test(text) ? 'not found' : 'not a loadable library'})`);
  }
  let ownsInit = true;
  try {
    lib.C_Initialize({ flags: p11.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (rvOf(err) === p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      ownsInit = false;
    } else {
      try {
        lib.close();
      } catch {
        // nothing more to release
      }
      throw new Pkcs11ProviderError('module-invalid', `PKCS#11 module ${shown} failed to initialise (${rvName(err)})`);
    }
  }
  const loaded: LoadedModule = { lib, key, users: 1, ownsInit, logins: new Map() };
  modules.set(key, loaded);
  return loaded;
}

function releaseModule(m: LoadedModule): void {
  m.users--;
  if (m.users > 0) return;
  modules.delete(m.key);
  // Finalising lets a later open see tokens created since (SoftHSM scans its token directory at
  // C_Initialize) and releases the library's threads and files.
  try {
    if (m.ownsInit) m.lib.C_Finalize();
  } catch {
    // a module that fails to finalise has nothing left that we could release
  }
  try {
    m.lib.close();
  } catch {
    // idem
  }
}

/** The CKR_* number of a binding error, if it is one. */
function rvOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** "CKR_PIN_INCORRECT" and the like: binding messages are the return value's name (no data). */
function rvName(err: unknown): string {
  const text = err instanceof Error ? err.message : '';
  const m = /CKR_[A-Z0-9_]+/.exec(text);
  return m ? m[0] : 'unknown error';
}

export interface TokenOpenOptions {
  readonly module: string;
  readonly token: string;
  readonly pin: string;
}

/** Values of CKA_APPLICATION for the objects this package creates. */
export const APPLICATION = 'pqc-iiot';

const LIVE_CHECK_ERRORS = new Set([
  'CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID', 'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED',
  'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT', 'CKR_USER_NOT_LOGGED_IN', 'CKR_CRYPTOKI_NOT_INITIALIZED',
]);

/**
 * One logged-in read/write session on one token. Not shared between providers: closing the last
 * session of the process on a token ends its login (PKCS#11 §5.6), so no explicit C_Logout that
 * would log out another provider's sessions too.
 */
export class TokenSession {
  readonly tokenLabel: string;
  readonly modulePath: string;
  private readonly p11: Binding;
  private module: LoadedModule | undefined;
  private readonly slot: Handle;
  private session: Handle | undefined;
  private gone: Pkcs11ProviderError | undefined;

  private constructor(p11: Binding, module: LoadedModule, modulePath: string, tokenLabel: string, slot: Handle, session: Handle) {
    this.p11 = p11;
    this.module = module;
    this.modulePath = modulePath;
    this.tokenLabel = tokenLabel;
    this.slot = slot;
    this.session = session;
  }

  static open(opts: TokenOpenOptions): TokenSession {
    if (typeof opts.token !== 'string' || opts.token.trim() === '') throw new Pkcs11ProviderError('token-not-found', 'no token label given');
    if (typeof opts.pin !== 'string' || opts.pin === '') {
      throw new Pkcs11ProviderError('pin-missing', `no PIN given for token ${JSON.stringify(opts.token)}`);
    }
    const module = acquireModule(opts.module);
    const p11 = loadBinding();
    let session: Handle | undefined;
    try {
      const slot = findSlot(module.lib, opts.token, opts.module);
      try {
        session = module.lib.C_OpenSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION);
      } catch (err) {
        throw new Pkcs11ProviderError('token-error', `cannot open a session on token ${JSON.stringify(opts.token)} (${rvName(err)})`);
      }
      const slotKey = slot.toString('hex');
      const digest = pinDigest(slot, opts.pin);
      const login = module.logins.get(slotKey);
      const refused = new Pkcs11ProviderError('pin-incorrect', `token ${JSON.stringify(opts.token)} refused the PIN`);
      // Login state is shared by all sessions of a process on a token: a second provider would be
      // "already logged in" whatever PIN it holds, so its PIN is compared with the one that worked.
      if (login && !timingSafeEqual(login.pinDigest, digest)) throw refused;
      try {
        module.lib.C_Login(session, p11.CKU_USER, opts.pin);
      } catch (err) {
        const rv = rvOf(err);
        if (rv !== p11.CKR_USER_ALREADY_LOGGED_IN) {
          if (rv === p11.CKR_PIN_INCORRECT || rv === p11.CKR_PIN_INVALID || rv === p11.CKR_PIN_LEN_RANGE) throw refused;
          if (rv === p11.CKR_PIN_LOCKED) throw new Pkcs11ProviderError('pin-locked', `the PIN of token ${JSON.stringify(opts.token)} is locked`);
          throw new Pkcs11ProviderError('token-error', `login to token ${JSON.stringify(opts.token)} failed (${rvName(err)})`);
        }
      }
      if (login) login.sessions++;
      else module.logins.set(slotKey, { sessions: 1, pinDigest: digest });
      return new TokenSession(p11, module, opts.module, opts.token, slot, session);
    } catch (err) {
      if (session) {
        try {
          module.lib.C_CloseSession(session);
        } catch {
          // the error below says what went wrong
        }
      }
      releaseModule(module);
      throw err;
    }
  }

  /** Which PKCS#11 3.2 post-quantum mechanisms the token lists (SoftHSM 2.6: none). */
  pqMechanisms(): PqMechanismReport {
    const list = new Set(this.call('list mechanisms', (lib) => lib.C_GetMechanismList(this.slot)));
    return {
      mlKem: list.has(PQ_MECHANISMS.CKM_ML_KEM_KEY_PAIR_GEN) && list.has(PQ_MECHANISMS.CKM_ML_KEM),
      mlDsa: list.has(PQ_MECHANISMS.CKM_ML_DSA_KEY_PAIR_GEN) && list.has(PQ_MECHANISMS.CKM_ML_DSA),
    };
  }

  describe(): TokenDescription {
    const slot = this.call('read slot information', (lib) => lib.C_GetSlotInfo(this.slot));
    const token = this.call('read token information', (lib) => lib.C_GetTokenInfo(this.slot));
    return { manufacturer: token.manufacturerID.trim(), model: token.model.trim(), hardwareSlot: (slot.flags & CKF_HW_SLOT) !== 0 };
  }

  /** Handles of the AES keys under `label` (0, 1 or, after a botched tool run, more). */
  findSecretKeys(label: string): Handle[] {
    return this.find([
      { type: this.p11.CKA_CLASS, value: this.p11.CKO_SECRET_KEY },
      { type: this.p11.CKA_KEY_TYPE, value: this.p11.CKK_AES },
      { type: this.p11.CKA_LABEL, value: label },
    ]);
  }

  /** A token AES-256 key that is sensitive and non-extractable: its value never leaves the token. */
  generateAesKey(label: string, id: Uint8Array): Handle {
    const a = this.p11;
    return this.call('generate the AES key', (lib) => lib.C_GenerateKey(this.sessionHandle(), { mechanism: a.CKM_AES_KEY_GEN }, [
      { type: a.CKA_CLASS, value: a.CKO_SECRET_KEY },
      { type: a.CKA_KEY_TYPE, value: a.CKK_AES },
      { type: a.CKA_VALUE_LEN, value: 32 },
      { type: a.CKA_TOKEN, value: true },
      { type: a.CKA_PRIVATE, value: true },
      { type: a.CKA_SENSITIVE, value: true },
      { type: a.CKA_EXTRACTABLE, value: false },
      { type: a.CKA_ENCRYPT, value: true },
      { type: a.CKA_DECRYPT, value: true },
      { type: a.CKA_WRAP, value: false },
      { type: a.CKA_UNWRAP, value: false },
      { type: a.CKA_SIGN, value: false },
      { type: a.CKA_VERIFY, value: false },
      { type: a.CKA_DERIVE, value: false },
      { type: a.CKA_LABEL, value: label },
      { type: a.CKA_ID, value: Buffer.from(id) },
    ]));
  }

  /** CKA_ID, CKA_SENSITIVE and CKA_EXTRACTABLE of a key, to check what the token holds. */
  keyAttributes(key: Handle): { id: Uint8Array; sensitive: boolean; extractable: boolean } {
    const a = this.p11;
    const attrs = this.call('read key attributes', (lib) => lib.C_GetAttributeValue(this.sessionHandle(), key, [
      { type: a.CKA_ID }, { type: a.CKA_SENSITIVE }, { type: a.CKA_EXTRACTABLE },
    ]));
    const byType = new Map(attrs.map((x) => [x.type, x.value]));
    const bool = (t: number): boolean => (byType.get(t)?.[0] ?? 0) !== 0;
    return { id: new Uint8Array(byType.get(a.CKA_ID) ?? Buffer.alloc(0)), sensitive: bool(a.CKA_SENSITIVE), extractable: bool(a.CKA_EXTRACTABLE) };
  }

  /** AES-256-GCM in the token: returns ciphertext ‖ 16-byte tag. */
  gcmEncrypt(key: Handle, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const mech = this.gcm(nonce, aad);
    const input = Buffer.from(plaintext); // a copy: wiped below, as the caller wipes its own
    try {
      return this.call('encrypt', (lib) => {
        lib.C_EncryptInit(this.sessionHandle(), mech, key);
        return new Uint8Array(lib.C_Encrypt(this.sessionHandle(), input, Buffer.alloc(plaintext.length + 16)));
      });
    } finally {
      input.fill(0);
    }
  }

  /**
   * Opens ciphertext ‖ tag in the token into `into` (wiped by the caller); undefined when it does
   * not authenticate. Tokens report a bad tag differently (SoftHSM: CKR_GENERAL_ERROR), so any
   * failure is followed by a liveness check: a token that went away throws instead.
   */
  gcmDecrypt(key: Handle, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
    if (sealed.length < 16) return undefined;
    const mech = this.gcm(nonce, aad);
    const lib = this.lib();
    const session = this.sessionHandle();
    const out = Buffer.alloc(sealed.length);
    try {
      lib.C_DecryptInit(session, mech, key);
      const plain = lib.C_Decrypt(session, Buffer.from(sealed), out);
      const copy = new Uint8Array(plain);
      out.fill(0);
      return copy;
    } catch {
      out.fill(0);
      this.assertAlive(key);
      return undefined;
    }
  }

  /** Throws token-removed when the key object (and so the token) is no longer reachable. */
  assertAlive(key: Handle): void {
    this.call('check the token', (lib) => lib.C_GetAttributeValue(this.sessionHandle(), key, [{ type: this.p11.CKA_CLASS }]));
  }

  /** Values of the private data objects of this package under `label`. */
  findData(label: string): Array<{ handle: Handle; value: Uint8Array }> {
    const handles = this.find([
      { type: this.p11.CKA_CLASS, value: this.p11.CKO_DATA },
      { type: this.p11.CKA_APPLICATION, value: APPLICATION },
      { type: this.p11.CKA_LABEL, value: label },
    ]);
    return handles.map((handle) => {
      const [attr] = this.call('read a data object', (lib) => lib.C_GetAttributeValue(this.sessionHandle(), handle, [{ type: this.p11.CKA_VALUE }]));
      return { handle, value: new Uint8Array(attr.value) };
    });
  }

  createData(label: string, value: Uint8Array): Handle {
    const a = this.p11;
    return this.call('store a data object', (lib) => lib.C_CreateObject(this.sessionHandle(), [
      { type: a.CKA_CLASS, value: a.CKO_DATA },
      { type: a.CKA_TOKEN, value: true },
      { type: a.CKA_PRIVATE, value: true },
      { type: a.CKA_APPLICATION, value: APPLICATION },
      { type: a.CKA_LABEL, value: label },
      { type: a.CKA_VALUE, value: Buffer.from(value) },
    ]));
  }

  destroy(handle: Handle): void {
    this.call('delete an object', (lib) => lib.C_DestroyObject(this.sessionHandle(), handle));
  }

  /** Ends the session; idempotent. The module is finalised when its last user closes. */
  close(): void {
    const module = this.module;
    if (!module) return;
    this.module = undefined;
    if (this.session) {
      try {
        module.lib.C_CloseSession(this.session);
      } catch {
        // a removed token has no session left to close
      }
      this.session = undefined;
    }
    // The last session of the process on a token ends its login (PKCS#11 §5.6).
    const slotKey = this.slot.toString('hex');
    const login = module.logins.get(slotKey);
    if (login && --login.sessions <= 0) module.logins.delete(slotKey);
    releaseModule(module);
  }

  private gcm(nonce: Uint8Array, aad: Uint8Array): Pkcs11Js.Mechanism {
    const params: Pkcs11Js.GcmParams = { type: this.p11.CK_PARAMS_GCM, iv: Buffer.from(nonce), ivBits: nonce.length * 8, aad: Buffer.from(aad), tagBits: 128 };
    return { mechanism: this.p11.CKM_AES_GCM, parameter: params };
  }

  private find(template: Pkcs11Js.Template): Handle[] {
    return this.call('search objects', (lib) => {
      const session = this.sessionHandle();
      lib.C_FindObjectsInit(session, template);
      try {
        return lib.C_FindObjects(session, 64);
      } finally {
        lib.C_FindObjectsFinal(session);
      }
    });
  }

  private lib(): Pkcs11Js.PKCS11 {
    if (this.gone) throw this.gone;
    if (!this.module) throw new Pkcs11ProviderError('closed', `the session on token ${JSON.stringify(this.tokenLabel)} is closed`);
    return this.module.lib;
  }

  private sessionHandle(): Handle {
    this.lib();
    return this.session!;
  }

  /** Runs one binding call; maps its failure to a provider error, remembering a removed token. */
  private call<T>(what: string, fn: (lib: Pkcs11Js.PKCS11) => T): T {
    const lib = this.lib();
    try {
      return fn(lib);
    } catch (err) {
      if (err instanceof Pkcs11ProviderError) throw err;
      const name = rvName(err);
      if (LIVE_CHECK_ERRORS.has(name)) {
        this.gone = new Pkcs11ProviderError(
          'token-removed',
          `token ${JSON.stringify(this.tokenLabel)} was removed or re-initialised while in use (${name}); ` +
            'reconnect it and restart the flow',
        );
        throw this.gone;
      }
      throw new Pkcs11ProviderError('token-error', `token ${JSON.stringify(this.tokenLabel)}: cannot ${what} (${name})`);
    }
  }
}

function findSlot(lib: Pkcs11Js.PKCS11, token: string, modulePath: string): Handle {
  let slots: Handle[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw new Pkcs11ProviderError('token-error', `PKCS#11 module ${modulePath} cannot list its slots (${rvName(err)})`);
  }
  const labels: string[] = [];
  const matches: Handle[] = [];
  for (const slot of slots) {
    let label: string;
    try {
      label = lib.C_GetTokenInfo(slot).label.trim();
    } catch {
      continue; // a token being removed or initialised right now
    }
    if (label === token) matches.push(slot);
    else if (label !== '') labels.push(label);
  }
  if (matches.length > 1) {
    throw new Pkcs11ProviderError('token-error', `${matches.length} tokens are labelled ${JSON.stringify(token)}; give each token a unique label`);
  }
  if (matches.length === 0) {
    const present = labels.length === 0 ? 'no initialised token is present' : `tokens present: ${labels.slice(0, 8).map((l) => JSON.stringify(l)).join(', ')}`;
    throw new Pkcs11ProviderError('token-not-found', `no token labelled ${JSON.stringify(token)} in ${modulePath} (${present})`);
  }
  return matches[0];
}

/** How many modules this process holds loaded (tests check that every provider released its own). */
export function loadedModuleCount(): number {
  return modules.size;
}
