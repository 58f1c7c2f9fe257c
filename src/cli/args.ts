// A small flag parser for the CLI: `--flag value`, `--flag=value`, `-f value`, `-fvalue`, `-f=value`,
// booleans (`--dry-run`, `-A`, `-AR`), repeatable list flags (`-f a -f b`), `--` ends flags, and `-`
// is a value (stdin). Flags may come before or after positionals. Unknown flags are usage errors.
import { hint, parseDuration } from '../api/schema.ts';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 64;
export const EXIT_DATA = 65;

/** A mistake in how the CLI was invoked: exit 64 with a pointer to the command's help. */
export class UsageError extends Error {
  /** The command whose help to point at, e.g. `get`. */
  readonly command?: string;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

export type FlagType = 'string' | 'boolean' | 'list';

export interface FlagSpec {
  type: FlagType;
  short?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<T extends FlagType> = T extends 'boolean'
  ? boolean
  : T extends 'list'
    ? string[]
    : string | undefined;

export type Flags<S extends FlagSpecs> = { -readonly [K in keyof S]: ValueOf<S[K]['type']> };

export interface Parsed<S extends FlagSpecs> {
  flags: Flags<S>;
  positionals: string[];
}

/** Flags every command that talks to the control plane accepts. */
export const CONNECTION_FLAGS = {
  api: { type: 'string' },
  'state-dir': { type: 'string' },
  'token-file': { type: 'string' },
} as const satisfies FlagSpecs;

/** ` (did you mean "x"?)` or empty. */
export function didYouMean(found: string, candidates: readonly string[]): string {
  return hint(found, candidates);
}

export function parseArgs<S extends FlagSpecs>(
  argv: readonly string[],
  specs: S,
  command?: string,
): Parsed<S> {
  const flags: Record<string, string | boolean | string[] | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    flags[name] = spec.type === 'boolean' ? false : spec.type === 'list' ? [] : undefined;
  }
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.short) byShort.set(spec.short, name);
  const positionals: string[] = [];
  const known = [...Object.keys(specs).map((n) => `--${n}`), ...[...byShort.keys()].map((s) => `-${s}`)];

  const set = (name: string, display: string, value: string | undefined, next: () => string | undefined) => {
    const spec = specs[name];
    if (spec.type === 'boolean') {
      if (value === undefined) flags[name] = true;
      else if (value === 'true' || value === 'false') flags[name] = value === 'true';
      else throw new UsageError(`flag ${display} takes no value (or true/false), found "${value}"`, command);
      return;
    }
    const v = value ?? next();
    if (v === undefined) throw new UsageError(`flag ${display} needs a value`, command);
    if (spec.type === 'list') (flags[name] as string[]).push(v);
    else flags[name] = v;
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : undefined);
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const value = eq < 0 ? undefined : arg.slice(eq + 1);
      if (!Object.hasOwn(specs, name)) {
        throw new UsageError(`unknown flag --${name}${didYouMean(`--${name}`, known)}`, command);
      }
      set(name, `--${name}`, value, next);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // -f value | -fvalue | -f=value | -AR (booleans combined)
      let j = 1;
      while (j < arg.length) {
        const s = arg[j];
        const name = byShort.get(s);
        if (name === undefined) {
          throw new UsageError(
            `unknown flag -${s}${j === 1 ? didYouMean(arg, known) : ` in ${arg}`}`,
            command,
          );
        }
        if (specs[name].type === 'boolean') {
          flags[name] = true;
          j++;
          continue;
        }
        let rest = arg.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        set(name, `-${s}`, rest === '' ? undefined : rest, next);
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { flags: flags as Flags<S>, positionals };
}

/** Throws a usage error unless `value` is one of `allowed`. */
export function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
  command?: string,
): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(
    `${flag} must be one of ${allowed.join(', ')}, found "${value}"${didYouMean(value, allowed)}`,
    command,
  );
}

/** Throws a usage error when there are more positionals than `max`. */
export function maxPositionals(positionals: string[], max: number, command: string): void {
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument "${positionals[max]}"`, command);
  }
}

/** A port flag: 0..65535 (0 lets the OS pick). */
export function portFlag(value: string | undefined, fallback: number, flag: string, command: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`--${flag} must be a port number 0-65535, found "${value}"`, command);
  return n;
}

/** A duration flag such as `24h` or `30s`, in milliseconds. */
export function durationFlag(
  value: string | undefined,
  fallback: string,
  flag: string,
  command: string,
): number {
  const v = value ?? fallback;
  const ms = parseDuration(v);
  if (ms === undefined)
    throw new UsageError(`--${flag} must be a duration such as 24h or 30s, found "${v}"`, command);
  return ms;
}
