/**
 * Drives `pqc-iiot` verbs in-process: captured stdout/stderr, stdin from bytes, a temporary
 * working directory and a fixed clock. Every output is kept so a suite can check at the end
 * that no secret key ever reached the terminal.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CA_FORMAT, IDENTITY_FORMAT } from '../../lib/index';
import { run } from '../../lib/cli/main';

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
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-cli-'));
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
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
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
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
