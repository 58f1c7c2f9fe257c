// A small, complete validator DSL. Kind schemas (api/kinds/) are written with it; it checks types,
// rejects unknown fields with a "did you mean" hint, and runs cross-field rules. Validation is pure
// and reports every problem it finds, each with its field path.

export interface Problem {
  path: string;
  message: string;
  /** Inside a document embedded in the string at `path` (a ConfigMap's mesh config): where in that text. */
  at?: { line: number; column: number };
}

export interface Ctx {
  errors: Problem[];
  /** Accepted, but worth telling the user (deprecated, not yet enforced). */
  warnings: Problem[];
}

export type Validator = (value: unknown, path: string, ctx: Ctx) => void;

export function fail(ctx: Ctx, path: string, message: string): void {
  ctx.errors.push({ path, message });
}

export function warn(ctx: Ctx, path: string, message: string): void {
  ctx.warnings.push({ path, message });
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- scalars ----------------------------------------------------------------

export interface StringOpts {
  enum?: readonly string[];
  pattern?: RegExp;
  /** Said after "expected" when the pattern fails, e.g. "a DNS-1123 label". */
  patternName?: string;
  minLength?: number;
  maxLength?: number;
  check?: (v: string, path: string, ctx: Ctx) => void;
}

export function string(opts: StringOpts = {}): Validator {
  return (v, path, ctx) => {
    if (typeof v !== 'string') return fail(ctx, path, `expected a string, found ${describe(v)}`);
    if (opts.enum && !opts.enum.includes(v)) {
      return fail(ctx, path, `${describe(v)} is not one of ${opts.enum.join(', ')}${hint(v, opts.enum)}`);
    }
    if (opts.minLength !== undefined && v.length < opts.minLength) {
      return fail(
        ctx,
        path,
        opts.minLength === 1 ? 'must not be empty' : `must be at least ${opts.minLength} characters`,
      );
    }
    if (opts.maxLength !== undefined && v.length > opts.maxLength) {
      return fail(ctx, path, `must be at most ${opts.maxLength} characters, found ${v.length}`);
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      return fail(
        ctx,
        path,
        `${describe(v)} is not valid: expected ${opts.patternName ?? `a match of ${opts.pattern}`}`,
      );
    }
    opts.check?.(v, path, ctx);
  };
}

export interface NumberOpts {
  min?: number;
  max?: number;
  integer?: boolean;
  check?: (v: number, path: string, ctx: Ctx) => void;
}

export function number(opts: NumberOpts = {}): Validator {
  return (v, path, ctx) => {
    if (typeof v !== 'number' || Number.isNaN(v))
      return fail(ctx, path, `expected a number, found ${describe(v)}`);
    if (opts.integer && !Number.isInteger(v)) return fail(ctx, path, `expected an integer, found ${v}`);
    if (opts.min !== undefined && v < opts.min)
      return fail(ctx, path, `${v} is below the minimum ${opts.min}`);
    if (opts.max !== undefined && v > opts.max)
      return fail(ctx, path, `${v} is above the maximum ${opts.max}`);
    opts.check?.(v, path, ctx);
  };
}

export const int = (opts: Omit<NumberOpts, 'integer'> = {}): Validator => number({ ...opts, integer: true });
export const uint32 = (opts: Omit<NumberOpts, 'integer'> = {}): Validator =>
  number({ min: 0, max: 4294967295, ...opts, integer: true });
export const port = (): Validator => number({ integer: true, min: 1, max: 65535 });

export function boolean(): Validator {
  return (v, path, ctx) => {
    if (typeof v !== 'boolean') fail(ctx, path, `expected true or false, found ${describe(v)}`);
  };
}

/** Anything goes (opaque values such as `google.protobuf.Struct`). */
export function any(): Validator {
  return () => {};
}

// ---- durations ----------------------------------------------------------------

const durationRe = /^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$/;
const unitMs: Record<string, number> = {
  h: 3600000,
  m: 60000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 0.000001,
};

/** Parses a protobuf/Go duration ("1.5s", "1h30m", "250ms") into milliseconds, or undefined. */
export function parseDuration(v: string): number | undefined {
  if (!durationRe.test(v)) return undefined;
  let total = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) total += Number(m[1]) * unitMs[m[2]];
  return total;
}

/** A Duration; Istio's CRDs require at least 1ms for every duration field. */
export function duration(opts: { minMs?: number } = {}): Validator {
  const minMs = opts.minMs ?? 1;
  return (v, path, ctx) => {
    if (typeof v !== 'string')
      return fail(ctx, path, `expected a duration such as "5s" or "250ms", found ${describe(v)}`);
    const ms = parseDuration(v);
    if (ms === undefined)
      return fail(ctx, path, `${describe(v)} is not a duration: expected e.g. "5s", "250ms", "1h30m"`);
    if (ms < minMs) fail(ctx, path, `duration must be at least ${minMs}ms, found ${v}`);
  };
}

// ---- containers -------------------------------------------------------------

export function array(
  item: Validator,
  opts: { min?: number; max?: number; unique?: boolean } = {},
): Validator {
  return (v, path, ctx) => {
    if (!Array.isArray(v)) return fail(ctx, path, `expected a list, found ${describe(v)}`);
    if (opts.min !== undefined && v.length < opts.min) {
      fail(
        ctx,
        path,
        opts.min === 1 ? 'must have at least one entry' : `must have at least ${opts.min} entries`,
      );
    }
    if (opts.max !== undefined && v.length > opts.max)
      fail(ctx, path, `must have at most ${opts.max} entries`);
    if (opts.unique) {
      const seen = new Set<string>();
      v.forEach((e, i) => {
        const k = JSON.stringify(e);
        if (seen.has(k)) fail(ctx, join(path, i), `duplicate entry ${describe(e)}`);
        seen.add(k);
      });
    }
    for (let i = 0; i < v.length; i++) item(v[i], join(path, i), ctx);
  };
}

export function map(value: Validator, opts: { key?: Validator; min?: number } = {}): Validator {
  return (v, path, ctx) => {
    if (!isObject(v)) return fail(ctx, path, `expected a map, found ${describe(v)}`);
    if (opts.min !== undefined && Object.keys(v).length < opts.min)
      fail(ctx, path, 'must have at least one entry');
    for (const [k, e] of Object.entries(v)) {
      const p = join(path, k);
      opts.key?.(k, p, ctx);
      value(e, p, ctx);
    }
  };
}

export interface ObjectOpts {
  required?: readonly string[];
  /** Groups of fields of which at most one may be set (protobuf oneofs). */
  oneOf?: readonly (readonly string[])[];
  /** Groups of fields of which exactly one must be set. */
  exactlyOneOf?: readonly (readonly string[])[];
  /** Fields that are accepted but whose behaviour Trellis does not implement yet. */
  notEnforced?: readonly string[];
  deprecated?: Readonly<Record<string, string>>;
  /** Cross-field rules, run only when the fields themselves are valid. */
  check?: (v: Record<string, unknown>, path: string, ctx: Ctx) => void;
}

export function object(fields: Record<string, Validator>, opts: ObjectOpts = {}): Validator {
  const names = Object.keys(fields);
  return (v, path, ctx) => {
    if (!isObject(v)) return fail(ctx, path, `expected an object, found ${describe(v)}`);
    const before = ctx.errors.length;
    for (const [k, e] of Object.entries(v)) {
      const p = join(path, k);
      const f = fields[k];
      if (!f) {
        fail(ctx, p, `unknown field "${k}"${hint(k, names)}`);
        continue;
      }
      if (e === null || e === undefined) continue; // YAML `field:` with no value means unset, as in protobuf JSON
      f(e, p, ctx);
      if (opts.notEnforced?.includes(k)) warn(ctx, p, 'accepted but not yet enforced by Trellis');
      if (opts.deprecated?.[k]) warn(ctx, p, `deprecated: ${opts.deprecated[k]}`);
    }
    const set = (k: string) => v[k] !== undefined && v[k] !== null;
    for (const r of opts.required ?? []) if (!set(r)) fail(ctx, join(path, r), 'required field is missing');
    for (const group of opts.oneOf ?? []) {
      const present = group.filter(set);
      if (present.length > 1)
        fail(ctx, path, `only one of ${group.join(', ')} may be set, found ${present.join(' and ')}`);
    }
    for (const group of opts.exactlyOneOf ?? []) {
      const present = group.filter(set);
      if (present.length !== 1) {
        fail(
          ctx,
          path,
          present.length === 0
            ? `one of ${group.join(', ')} is required`
            : `only one of ${group.join(', ')} may be set, found ${present.join(' and ')}`,
        );
      }
    }
    if (opts.check && ctx.errors.length === before) opts.check(v, path, ctx);
  };
}

/** Runs several validators on the same value. */
export function all(...vs: Validator[]): Validator {
  return (v, path, ctx) => {
    for (const f of vs) f(v, path, ctx);
  };
}

/** A schema that refers to itself or is defined later. */
export function lazy(get: () => Validator): Validator {
  return (v, path, ctx) => get()(v, path, ctx);
}

// ---- hints -------------------------------------------------------------------

export function hint(found: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(found.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(2, Math.floor(found.length / 3));
  return best !== undefined && bestD <= limit ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
