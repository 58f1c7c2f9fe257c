// Validators and types shared by several kinds: string matches, regexes, header names, host names,
// label selectors, percentages, destinations, header edits, exportTo and policy target references.

import { re2Problem } from '../../lib/re2/syntax.ts';
import {
  array,
  describe,
  fail,
  hint,
  int,
  isObject,
  join,
  map,
  number,
  object,
  port,
  string,
  type Validator,
} from '../schema.ts';
import {
  isDns1123Label,
  isDns1123Subdomain,
  isIPOrCIDR,
  isWildcardHost,
  labelKeyProblem,
  labelValueProblem,
} from './syntax.ts';

export const NOT_ENFORCED = 'accepted but not yet enforced by Trellis';

// ---- shared types --------------------------------------------------------------------------------

/** Exactly one of exact, prefix or regex (RE2, matched against the whole value); `{}` tests presence. */
export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

export interface PortSelector {
  number?: number;
}

export interface Destination {
  host: string;
  subset?: string;
  port?: PortSelector;
}

/** Istio's `Percent`: a double in 0..100. */
export interface Percent {
  value?: number;
}

export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

/** security.istio.io / type.v1beta1 selector. */
export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

// ---- strings -------------------------------------------------------------------------------------

export function nonEmptyString(): Validator {
  return string({ minLength: 1 });
}

export function stringList(item: Validator = string(), opts: { min?: number; max?: number } = {}): Validator {
  return array(item, opts);
}

/** An RE2 regex, within the length limit. */
export function regex(): Validator {
  return string({
    check: (v, path, ctx) => {
      if (v === '') return fail(ctx, path, 'regex must not be empty');
      const problem = re2Problem(v);
      if (problem) fail(ctx, path, `${describe(v)}: ${problem}`);
    },
  });
}

export function stringMatch(): Validator {
  return object(
    {
      exact: string(),
      prefix: string({
        check: (v, path, ctx) => {
          if (v === '') fail(ctx, path, 'prefix must not be empty: use prefix "/" to match every path');
        },
      }),
      regex: regex(),
    },
    { oneOf: [['exact', 'prefix', 'regex']] },
  );
}

// ---- headers -------------------------------------------------------------------------------------

const headerNameRe = /^[-_A-Za-z0-9]+$/;

export function isHeaderName(name: string): boolean {
  return headerNameRe.test(name);
}

export function headerName(): Validator {
  return string({
    check: (v, path, ctx) => {
      if (v === '') return fail(ctx, path, 'header name must not be empty');
      if (!isHeaderName(v)) {
        fail(ctx, path, `header name ${v} is not a valid header name: expected letters, digits, "-" or "_"`);
      }
    },
  });
}

function headerOperations(): Validator {
  const value = string();
  return object({
    set: map(value, { key: headerName() }),
    add: map(value, { key: headerName() }),
    remove: array(headerName()),
  });
}

export function headers(): Validator {
  return object({ request: headerOperations(), response: headerOperations() });
}

// ---- names and hosts -----------------------------------------------------------------------------

export function dns1123Label(what = 'name'): Validator {
  return string({
    check: (v, path, ctx) => {
      if (!isDns1123Label(v)) {
        fail(
          ctx,
          path,
          `${what} ${JSON.stringify(v)} is not valid: expected a DNS-1123 label (at most 63 lower-case letters, digits or "-", starting and ending with a letter or digit)`,
        );
      }
    },
  });
}

export function dns1123Subdomain(what = 'name'): Validator {
  return string({
    check: (v, path, ctx) => {
      if (!isDns1123Subdomain(v)) {
        fail(
          ctx,
          path,
          `${what} ${JSON.stringify(v)} is not valid: expected a DNS-1123 subdomain (at most 253 lower-case letters, digits, "-" or ".", starting and ending with a letter or digit)`,
        );
      }
    },
  });
}

/** A host name, optionally with a left-most wildcard (`*.example.com`); `*` alone only when allowed. */
export function host(opts: { allowStar?: boolean; allowIP?: boolean; what?: string } = {}): Validator {
  const what = opts.what ?? 'host';
  return string({
    check: (v, path, ctx) => {
      if (v === '') return fail(ctx, path, `${what} must not be empty`);
      if (v === '*' && !opts.allowStar) {
        return fail(
          ctx,
          path,
          `${what} "*" is not allowed here: name a host or a wildcard such as "*.example.com"`,
        );
      }
      if (opts.allowIP && isIPOrCIDR(v) && !v.includes('/')) return;
      if (!isWildcardHost(v)) {
        fail(
          ctx,
          path,
          `${what} ${JSON.stringify(v)} is not valid: expected a DNS name such as "reviews", "reviews.default.svc.cluster.local" or "*.example.com"`,
        );
      }
    },
  });
}

/** A Gateway server host: `[namespace/]dnsName`, where namespace is `*`, `.` or a namespace name. */
export function gatewayHost(): Validator {
  return string({
    check: (v, path, ctx) => {
      const slash = v.indexOf('/');
      const ns = slash >= 0 ? v.slice(0, slash) : '*';
      const dns = slash >= 0 ? v.slice(slash + 1) : v;
      if (ns === '' || dns === '') {
        return fail(ctx, path, `host ${JSON.stringify(v)}: namespace and DNS name must not be empty`);
      }
      if (ns !== '*' && ns !== '.' && !isDns1123Label(ns)) {
        return fail(
          ctx,
          path,
          `host ${JSON.stringify(v)} has an invalid namespace ${JSON.stringify(ns)}: expected "*", "." or a namespace name`,
        );
      }
      if (!isWildcardHost(dns)) {
        fail(
          ctx,
          path,
          `host ${JSON.stringify(v)} is not valid: expected "[namespace/]dnsName" such as "*", "bookinfo.example.com" or "prod/*.example.com"`,
        );
      }
    },
  });
}

/** `mesh`, `<gateway>` or `<namespace>/<gateway>`. */
export function gatewayRef(): Validator {
  return string({
    check: (v, path, ctx) => {
      if (v === 'mesh') return;
      const parts = v.split('/');
      const ok =
        (parts.length === 1 && isDns1123Subdomain(parts[0])) ||
        (parts.length === 2 && isDns1123Label(parts[0]) && isDns1123Subdomain(parts[1]));
      if (!ok) {
        fail(
          ctx,
          path,
          `gateway ${JSON.stringify(v)} is not valid: expected "mesh", "<gateway name>" or "<namespace>/<gateway name>"`,
        );
      }
    },
  });
}

export function ipOrCidr(what = 'address'): Validator {
  return string({
    check: (v, path, ctx) => {
      if (!isIPOrCIDR(v)) {
        fail(
          ctx,
          path,
          `${what} ${JSON.stringify(v)} is not an IP address or CIDR block such as "10.0.0.0/8"`,
        );
      }
    },
  });
}

// ---- labels and selectors ------------------------------------------------------------------------

/** A Kubernetes label map; also Istio's selectors, whose CEL rules forbid `*` and empty keys. */
export function labels(): Validator {
  return map(
    string({
      check: (v, path, ctx) => {
        const problem = labelValueProblem(v);
        if (problem) fail(ctx, path, problem);
      },
    }),
    {
      key: (k, path, ctx) => {
        const problem = labelKeyProblem(k as string);
        if (problem) fail(ctx, path, problem);
      },
    },
  );
}

/** security.istio.io `selector: {matchLabels}`. */
export function workloadSelector(): Validator {
  return object({ matchLabels: labels() });
}

/** networking.istio.io `workloadSelector: {labels}`. */
export function networkingWorkloadSelector(): Validator {
  return object({ labels: labels() });
}

export function targetRef(): Validator {
  return object(
    {
      group: string(),
      kind: nonEmptyString(),
      name: nonEmptyString(),
      namespace: string({
        check: (v, path, ctx) => {
          if (v !== '')
            fail(ctx, path, 'cross namespace referencing is not currently supported: leave namespace empty');
        },
      }),
    },
    { required: ['kind', 'name'] },
  );
}

/** The fields AuthorizationPolicy and RequestAuthentication use to pick their workloads. */
export const selectorFields = {
  selector: workloadSelector(),
  targetRef: targetRef(),
  targetRefs: array(targetRef(), { max: 16 }),
};
export const selectorOneOf = ['selector', 'targetRef', 'targetRefs'] as const;
export const selectorDeprecated = { targetRef: 'use targetRefs' };

// ---- numbers -------------------------------------------------------------------------------------

/** A percentage value as Istio checks it: 0, or within [0.0001, 100]. */
export function percentValue(): Validator {
  return number({
    check: (v, path, ctx) => {
      if (v < 0 || v > 100 || (v > 0 && v < 0.0001)) {
        fail(ctx, path, `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`);
      }
    },
  });
}

export function percent(): Validator {
  return object({ value: percentValue() });
}

export function intPercent(): Validator {
  return int({ min: 0, max: 100 });
}

export function portSelector(): Validator {
  return object({ number: portNumber() });
}

/** A port number with Istio's message. */
export function portNumber(): Validator {
  const inRange = port();
  return (v, path, ctx) => {
    if (typeof v === 'number' && Number.isInteger(v) && (v < 1 || v > 65535)) {
      return fail(ctx, path, `port number ${v} must be in the range 1..65535`);
    }
    inRange(v, path, ctx);
  };
}

export const INT32_MAX = 2147483647;

export function int32(opts: { min?: number } = {}): Validator {
  return int({ min: opts.min ?? -2147483648, max: INT32_MAX });
}

// ---- routing -------------------------------------------------------------------------------------

export function destination(): Validator {
  return object(
    {
      host: host({ what: 'destination host' }),
      subset: dns1123Label('subset'),
      port: portSelector(),
    },
    { required: ['host'] },
  );
}

/**
 * Weighted destinations: weights are relative, none may be negative, and several destinations must
 * not all weigh 0.
 */
export function weightedDestinations(item: Validator, opts: { min?: number } = {}): Validator {
  const list = array(item, { min: opts.min ?? 1 });
  return (v, path, ctx) => {
    const before = ctx.errors.length;
    list(v, path, ctx);
    if (ctx.errors.length !== before || !Array.isArray(v)) return;
    let total = 0;
    v.forEach((d, i) => {
      const w = isObject(d) && typeof d.weight === 'number' ? d.weight : 0;
      if (w < 0) fail(ctx, join(join(path, i), 'weight'), `weight ${w} < 0`);
      total += w;
    });
    if (v.length > 1 && total === 0) {
      fail(ctx, path, 'total destination weight = 0: give at least one destination a positive weight');
    }
    if (total > INT32_MAX) fail(ctx, path, `total destination weight ${total} exceeds ${INT32_MAX}`);
  };
}

/** Istio's annotation that gives a core Service its exportTo: a comma-separated list. */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

/** The annotation's list, as Istio splits it: on commas, blanks trimmed, empty entries dropped. */
export function exportToAnnotation(value: string): string[] {
  return value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/**
 * `exportTo`: `.` (own namespace), `*` (all), `~` (none) or a namespace name, as Istio accepts them
 * for every kind that has the field.
 */
export function exportTo(): Validator {
  const entry = string({
    check: (v, path, ctx) => {
      if (v === '.' || v === '*' || v === '~') return;
      if (!isDns1123Label(v)) {
        fail(
          ctx,
          path,
          `exportTo ${JSON.stringify(v)} is not valid: expected ".", "*", "~" or a namespace name`,
        );
      }
    },
  });
  const list = array(entry, { unique: true });
  return (v, path, ctx) => {
    const before = ctx.errors.length;
    list(v, path, ctx);
    if (ctx.errors.length !== before || !Array.isArray(v)) return;
    if (v.includes('*') && v.length > 1) {
      fail(ctx, path, 'exportTo "*" already exports to every namespace: list it alone');
    }
    if (v.includes('~') && v.length > 1)
      fail(ctx, path, 'exportTo "~" exports to no namespace: list it alone');
  };
}

// ---- messages ------------------------------------------------------------------------------------

/** An enum compared case-insensitively, as Istio parses protocol names. */
export function caseInsensitiveEnum(values: readonly string[], what: string): Validator {
  return string({
    check: (v, path, ctx) => {
      if (!values.some((x) => x.toLowerCase() === v.toLowerCase())) {
        fail(ctx, path, `${what} ${JSON.stringify(v)} is not one of ${values.join(', ')}${hint(v, values)}`);
      }
    },
  });
}

export function eachString(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
