/**
 * What every `pqc-iiot` verb shares: the I/O it is given (so tests drive verbs in-process with
 * fake streams and a fixed clock), exit codes, the error type that carries a user-facing message,
 * and file helpers that write secrets with mode 0600 and never leave a half-written file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { formatHelp, parseArgs, type CommandSpec, type ParsedArgs } from './args';

export interface TextSink {
  write(text: string): unknown;
}

export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  /** process.stdin, or any stream of chunks in tests (e.g. Readable.from([bytes])). */
  readonly stdin: AsyncIterable<Uint8Array | string> & { readonly isTTY?: boolean };
  /** Relative paths on the command line are resolved against this directory. */
  readonly cwd: string;
  /** Milliseconds since the Unix epoch; tests pass a fixed clock. Defaults to Date.now. */
  readonly now?: () => number;
}

export const EXIT = Object.freeze({
  ok: 0,
  /** Bad input data or a failed check: missing file, wrong CA, undecodable packet. */
  failure: 1,
  /** The command line itself is wrong: unknown verb or option, missing or malformed value. */
  usage: 2,
});

/** An error whose message is meant for the user as is (and never contains a secret). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

export interface Command {
  readonly spec: CommandSpec;
  run(args: ParsedArgs, io: CliIo): Promise<number>;
}

/** Parses argv for one command, answers --help, and turns thrown CliErrors into exit codes. */
export async function runCommand(command: Command, argv: readonly string[], io: CliIo): Promise<number> {
  const name = `pqc-iiot ${command.spec.command}`;
  const parsed = parseArgs(argv, command.spec);
  if (parsed.kind === 'help') {
    io.stdout.write(formatHelp(command.spec));
    return EXIT.ok;
  }
  if (parsed.kind === 'error') {
    io.stderr.write(`${name}: ${parsed.message}\nRun "${name} --help" for usage.\n`);
    return EXIT.usage;
  }
  try {
    return await command.run(parsed.args, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`${name}: ${err.message}\n`);
      if (err.exitCode === EXIT.usage) io.stderr.write(`Run "${name} --help" for usage.\n`);
      return err.exitCode;
    }
    // Only the message: core errors are written to be secret-free, stacks and objects may not be.
    io.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failure;
  }
}

export function nowOf(io: CliIo): number {
  return io.now ? io.now() : Date.now();
}

export function resolvePath(io: CliIo, file: string): string {
  return path.resolve(io.cwd, file);
}

/** Shows a path as the user typed it when it is relative to cwd, absolute otherwise. */
export function displayPath(io: CliIo, absolute: string): string {
  const rel = path.relative(io.cwd, absolute);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : absolute;
}

/** Untrusted files are size-checked before they are read whole (a bundle or packet is small). */
export const MAX_INPUT_BYTES = 8 * 1024 * 1024;

export function readFileChecked(io: CliIo, absolute: string, what: string): Buffer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(absolute);
  } catch (err) {
    throw new CliError(`${what} ${displayPath(io, absolute)}: ${describeFsError(err)}`);
  }
  if (stat.isDirectory()) throw new CliError(`${what} ${displayPath(io, absolute)} is a directory, expected a file`);
  if (stat.size > MAX_INPUT_BYTES) throw new CliError(`${what} ${displayPath(io, absolute)} is larger than ${MAX_INPUT_BYTES} bytes`);
  try {
    return fs.readFileSync(absolute);
  } catch (err) {
    throw new CliError(`${what} ${displayPath(io, absolute)}: ${describeFsError(err)}`);
  }
}

export async function readStdin(io: CliIo): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    size += b.length;
    if (size > MAX_INPUT_BYTES) throw new CliError(`stdin is larger than ${MAX_INPUT_BYTES} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Warns when a file holding private keys can be read by other users. */
export function warnIfExposed(io: CliIo, absolute: string, what: string): void {
  if (process.platform === 'win32') return;
  try {
    const mode = fs.statSync(absolute).mode & 0o777;
    if (mode & 0o077) {
      io.stderr.write(
        `warning: ${what} ${displayPath(io, absolute)} holds private keys but has mode ` +
          `${mode.toString(8).padStart(4, '0')}; restrict it with: chmod 600 ${displayPath(io, absolute)}\n`,
      );
    }
  } catch {
    // The caller reports unreadable files; nothing to warn about here.
  }
}

export interface WriteOptions {
  /** File mode, applied exactly (not reduced by the umask). */
  readonly mode: number;
  /** Replace an existing file; otherwise an existing file is an error. */
  readonly overwrite: boolean;
  readonly what: string;
}

/**
 * Writes through a temporary file in the same directory and renames it into place, so an
 * interrupted run never leaves a truncated key file, and the file has its final mode from the
 * first byte on (a secret is never readable by others, even briefly).
 */
export function writeFileAtomic(io: CliIo, absolute: string, data: string | Uint8Array, opts: WriteOptions): void {
  const dir = path.dirname(absolute);
  if (!fs.existsSync(dir)) throw new CliError(`${opts.what}: directory ${displayPath(io, dir)} does not exist`);
  if (!opts.overwrite && fs.existsSync(absolute)) {
    throw new CliError(`${opts.what} ${displayPath(io, absolute)} already exists; use --force to replace it`);
  }
  if (fs.existsSync(absolute) && fs.statSync(absolute).isDirectory()) {
    throw new CliError(`${opts.what} ${displayPath(io, absolute)} is a directory`);
  }
  const temp = path.join(dir, `.${path.basename(absolute)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx', opts.mode);
    fs.fchmodSync(fd, opts.mode);
    if (typeof data === 'string') fs.writeSync(fd, data);
    else fs.writeSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, absolute);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot write ${opts.what} ${displayPath(io, absolute)}: ${describeFsError(err)}`);
  }
}

export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent path is not a directory';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** Quotes a user value for an error message, shortened so a pasted blob cannot flood the terminal. */
export function quoteValue(value: string, max = 48): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

export function writeLines(sink: TextSink, lines: readonly string[]): void {
  sink.write(lines.join('\n') + '\n');
}
