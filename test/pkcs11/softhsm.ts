/**
 * A throwaway SoftHSM2 for the PKCS#11 provider tests: its own config and token directory in a
 * temporary directory (SOFTHSM2_CONF points there for this process), tokens initialised with
 * softhsm2-util. Debian: `apt-get install softhsm2` (module /usr/lib/softhsm/libsofthsm2.so).
 *
 * SoftHSM reads SOFTHSM2_CONF and scans its token directory at C_Initialize, which the provider
 * runs when the first session of the process opens and undoes when the last one closes: so
 * tokens are created while no provider is open, and every test closes what it opens
 * (loadedModuleCount() === 0 between tests).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

export const SO_PIN = '86427531';

/** Path of the SoftHSM2 module, or undefined when SoftHSM2 is not installed. */
export function softHsmModule(): string | undefined {
  const fromEnv = process.env.SOFTHSM2_MODULE;
  if (fromEnv && fs.existsSync(fromEnv)) return fromEnv;
  const found = MODULE_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found) return undefined;
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return found;
}

export class SoftHsm {
  readonly dir: string;
  readonly tokenDir: string;
  readonly conf: string;
  private readonly previousConf: string | undefined;

  constructor(readonly module: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-softhsm-'));
    this.tokenDir = path.join(this.dir, 'tokens');
    fs.mkdirSync(this.tokenDir, { mode: 0o700 });
    this.conf = path.join(this.dir, 'softhsm2.conf');
    fs.writeFileSync(this.conf, `directories.tokendir = ${this.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    this.previousConf = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = this.conf;
  }

  /** Initialises a new token in a free slot; returns its label. */
  initToken(label: string, pin: string): string {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', SO_PIN, '--pin', pin], {
      env: { ...process.env, SOFTHSM2_CONF: this.conf }, stdio: 'ignore',
    });
    return label;
  }

  /** Re-initialises an existing token (all its objects are gone; same label and PIN). */
  reinitToken(label: string, pin: string): void {
    execFileSync('softhsm2-util', ['--init-token', '--token', label, '--label', label, '--so-pin', SO_PIN, '--pin', pin], {
      env: { ...process.env, SOFTHSM2_CONF: this.conf }, stdio: 'ignore',
    });
  }

  /** The directory SoftHSM keeps a token's objects in (one per token, named by a UUID). */
  tokenDirOf(label: string): string {
    for (const entry of fs.readdirSync(this.tokenDir)) {
      const file = path.join(this.tokenDir, entry, 'token.object');
      // token.object holds the label in clear, padded to 32 characters.
      if (fs.existsSync(file) && fs.readFileSync(file).includes(Buffer.from(label.padEnd(32, ' ')))) return path.join(this.tokenDir, entry);
    }
    throw new Error(`no SoftHSM token directory for ${label}`);
  }

  /** Every file under the temporary directory (token objects included). */
  files(): string[] {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) out.push(p);
      }
    };
    walk(this.dir);
    return out;
  }

  cleanup(): void {
    if (this.previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = this.previousConf;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * True when `haystack` holds a 32-byte window of `secret`, raw, hex or base64. Windows that also
 * occur in a public key are skipped: an ML-KEM secret key embeds its public key, an ML-DSA secret
 * key starts with the public seed rho.
 */
export function containsSecret(haystack: Buffer, secret: Uint8Array, publicKeys: readonly Uint8Array[]): boolean {
  const s = Buffer.from(secret);
  let checked = 0;
  for (let i = 0; i + 32 <= s.length; i += 96) {
    const w = s.subarray(i, i + 32);
    if (publicKeys.some((pk) => Buffer.from(pk).includes(w))) continue;
    checked++;
    if (haystack.includes(w) || haystack.includes(w.toString('hex')) || haystack.includes(w.toString('base64').slice(0, 40))) return true;
  }
  if (checked < 10) throw new Error('too few secret windows checked');
  return false;
}
