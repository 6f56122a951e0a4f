/**
 * Drives `pqc-iiot` verbs in-process: captured stdout/stderr, stdin from bytes, a temporary
 * working directory and a fixed clock. Every output is kept so a suite can check at the end
 * that no secret key ever reached the terminal. Also the assertions the CLI suites share.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CA_FORMAT, IDENTITY_FORMAT, parseCaPublicKeyText, parseIdentityJson, type CaPublicKey, type IdentityBundle,
} from '../../lib/index';
import { EXIT, run } from '../../lib/cli/main';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: Uint8Array | string;
  /** Pretend stdin is a terminal (nothing piped). */
  stdinIsTty?: boolean;
  now?: number;
}

export class CliSandbox {
  readonly dir: string;
  readonly outputs: string[] = [];
  /** base64 of every secret key found in files this sandbox's runs wrote. */
  readonly secrets = new Set<string>();

  constructor(readonly now: number = Date.now()) {
    this.dir = tempDir('pqc-cli-');
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  /** Parses the identity file at `parts` (relative to the sandbox). */
  readIdentity(...parts: string[]): IdentityBundle {
    return parseIdentityJson(fs.readFileSync(this.path(...parts), 'utf8'));
  }

  /** Parses the CA public key text at `parts` (relative to the sandbox); fails the test if it does not parse. */
  readCaPub(...parts: string[]): CaPublicKey {
    const r = parseCaPublicKeyText(fs.readFileSync(this.path(...parts), 'utf8'));
    assert.ok(r.ok, `ca.pub does not parse: ${show(r)}`);
    return r.value;
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<CliResult> {
    let stdout = '';
    let stderr = '';
    const chunks = opts.stdin === undefined ? [] : [typeof opts.stdin === 'string' ? Buffer.from(opts.stdin) : Buffer.from(opts.stdin)];
    const stdin = Object.assign(Readable.from(chunks), { isTTY: opts.stdinIsTty ?? false });
    const code = await run(argv, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin,
      cwd: this.dir,
      now: () => opts.now ?? this.now,
    });
    this.outputs.push(stdout, stderr);
    this.collectSecrets();
    return { code, stdout, stderr };
  }

  /** Records the secret keys of every identity or CA file under the sandbox. */
  collectSecrets(): void {
    for (const file of walk(this.dir)) {
      if (!file.endsWith('.json')) continue;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (o.format === IDENTITY_FORMAT) {
        for (const k of ['kemSecretKey', 'sigSecretKey']) if (typeof o[k] === 'string') this.secrets.add(o[k] as string);
      } else if (o.format === CA_FORMAT && typeof o.secretKey === 'string') {
        this.secrets.add(o.secretKey);
      }
    }
  }

  /** Every output that contains a secret key in base64 or hex, whole or its first 32 bytes. */
  leaks(): string[] {
    const needles: string[] = [];
    for (const b64 of this.secrets) {
      const hex = Buffer.from(b64, 'base64').toString('hex');
      needles.push(b64, b64.slice(0, 43), hex, hex.slice(0, 64));
    }
    return this.outputs.filter((out) => needles.some((n) => out.includes(n)));
  }

  cleanup(): void {
    removeDir(this.dir);
  }

  /**
   * For a suite's `after` hook: runs `check` (if any), then asserts that no secret key appeared
   * in any output, and removes the sandbox whatever happened. Only the count is asserted:
   * printing the offending output would put the (test) secret into the log too.
   */
  finish(check?: () => void): void {
    try {
      check?.();
      assert.equal(this.leaks().length, 0, 'a secret key appeared in CLI output');
    } finally {
      this.cleanup();
    }
  }
}

/** A new, empty folder under the system's temporary directory. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Asserts exit 0 (showing both streams otherwise) and passes the result on. */
export function ok(r: CliResult): CliResult {
  assert.equal(r.code, EXIT.ok, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Asserts exit `code` (showing both streams otherwise) and a stderr matching `message`. */
export function fails(r: CliResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, message);
}

/** Results of the core carry bigints and bytes, which JSON.stringify refuses: for assertion messages. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? `<${v.length} bytes>` : v));
}

function* walk(dir: string): Generator<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(p);
    else if (entry.isFile()) yield p;
  }
}

export function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}
