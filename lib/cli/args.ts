/**
 * A small command-line parser for the `pqc-iiot` verbs, kept in the repository instead of a
 * dependency: each verb declares its options as data, and the same table produces the parser's
 * checks and the --help text, so the two cannot drift apart.
 *
 * Accepted forms: `--name value`, `--name=value`, `--flag`, `-h`/`--help`, `--` (end of options),
 * and `-` as a positional (stdin). Unknown, repeated or value-less options are usage errors.
 */

export interface OptionSpec {
  readonly name: string;
  /** Placeholder for the value in help (`--dir DIR`); absent for boolean flags. */
  readonly value?: string;
  readonly description: string;
  readonly required?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly optional?: boolean;
}

export interface CommandSpec {
  /** Words after `pqc-iiot`, e.g. "ca init". */
  readonly command: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  readonly positionals?: readonly PositionalSpec[];
  /** Extra help paragraphs (examples, file formats). */
  readonly notes?: readonly string[];
}

export interface ParsedArgs {
  /** Option values by name: a string for valued options, true for flags. */
  readonly options: Readonly<Record<string, string | true>>;
  readonly positionals: readonly string[];
}

export type ParseOutcome =
  | { readonly kind: 'ok'; readonly args: ParsedArgs }
  | { readonly kind: 'help' }
  | { readonly kind: 'error'; readonly message: string };

const HELP_FLAGS = new Set(['-h', '--help']);

export function parseArgs(argv: readonly string[], spec: CommandSpec): ParseOutcome {
  // Help wins over everything else, so `--help` works even next to a broken option.
  const endOfOptions = argv.indexOf('--');
  const optionPart = endOfOptions === -1 ? argv : argv.slice(0, endOfOptions);
  if (optionPart.some((a) => HELP_FLAGS.has(a))) return { kind: 'help' };

  const byName = new Map(spec.options.map((o) => [o.name, o]));
  const options: Record<string, string | true> = {};
  const positionals: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) return usageError(`unknown option ${quote(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const option = byName.get(name);
    if (option === undefined) return usageError(`unknown option --${name}`);
    if (Object.prototype.hasOwnProperty.call(options, name)) return usageError(`--${name} given more than once`);
    if (option.value === undefined) {
      if (eq !== -1) return usageError(`--${name} takes no value`);
      options[name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      // A following option is not taken as the value: `--dir --force` is a mistake, not a dir.
      if (next !== undefined && !(next.startsWith('--') && next.length > 2)) {
        value = next;
        i++;
      }
    }
    if (value === undefined || value === '') return usageError(`--${name} needs a value (${option.value})`);
    options[name] = value;
  }

  for (const option of spec.options) {
    if (option.required && !(option.name in options)) {
      return usageError(`missing --${option.name} ${option.value ?? ''}`.trimEnd());
    }
  }
  const allowed = spec.positionals ?? [];
  if (positionals.length > allowed.length) {
    return usageError(`unexpected argument ${quote(positionals[allowed.length])}`);
  }
  const requiredCount = allowed.filter((p) => !p.optional).length;
  if (positionals.length < requiredCount) return usageError(`missing ${allowed[positionals.length].name}`);
  return { kind: 'ok', args: { options, positionals } };
}

/** Reads a valued option; parseArgs has already enforced presence for required ones. */
export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const v = args.options[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.options[name] === true;
}

export function formatHelp(spec: CommandSpec): string {
  const positionals = (spec.positionals ?? []).map((p) => (p.optional ? `[${p.name}]` : p.name));
  const optionWords = spec.options.map((o) => {
    const word = o.value ? `--${o.name} ${o.value}` : `--${o.name}`;
    return o.required ? word : `[${word}]`;
  });
  const lines = [
    `Usage: pqc-iiot ${[spec.command, ...optionWords, ...positionals].join(' ')}`,
    '',
    spec.summary,
  ];
  const rows: Array<[string, string]> = [
    ...(spec.positionals ?? []).map((p): [string, string] => [p.name, p.description]),
    ...spec.options.map((o): [string, string] => [o.value ? `--${o.name} ${o.value}` : `--${o.name}`, o.description]),
    ['-h, --help', 'show this help'],
  ];
  const width = Math.max(...rows.map(([left]) => left.length));
  lines.push('', 'Options:');
  for (const [left, right] of rows) lines.push(`  ${left.padEnd(width)}  ${right}`);
  for (const note of spec.notes ?? []) lines.push('', note);
  return lines.join('\n') + '\n';
}

function usageError(message: string): ParseOutcome {
  return { kind: 'error', message };
}

function quote(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
