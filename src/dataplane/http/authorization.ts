// AuthorizationPolicy in the proxy: a snapshot's resolved policies compiled into predicates once,
// when the snapshot is applied, and evaluated per request in Istio's order: CUSTOM, then DENY, then
// ALLOW (no ALLOW policy: allowed; some but none matching: denied). AUDIT and dry-run policies never
// change the decision; they are evaluated only when asked (`audited`, `dryRun`).
import { BlockList, isIPv6 } from 'node:net';
import type {
  Authorization,
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicyRules,
  AuthorizationRule,
  AuthorizationSource,
} from '../../compile/snapshot.ts';

/** What a policy can ask about a request. Absent values never match a value and always match a `not*`. */
export interface AuthorizationAttributes {
  /** The mTLS peer's SPIFFE ID without `spiffe://`: `<td>/ns/<ns>/sa/<sa>`. */
  readonly principal: string | undefined;
  readonly namespace: string | undefined;
  /** `<ns>/<sa>`. */
  readonly serviceAccount: string | undefined;
  readonly trustDomain: string | undefined;
  readonly sourceIp: string | undefined;
  readonly remoteIp: string | undefined;
  readonly destinationIp: string | undefined;
  readonly sni: string | undefined;
  /** From the verified JWT (RequestAuthentication). */
  readonly requestPrincipal: string | undefined;
  readonly audiences: readonly string[] | undefined;
  readonly presenter: string | undefined;
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** A request header by lower-case name, repeated values joined with `,`. */
  header(name: string): string | undefined;
  readonly method: string;
  /** Lower-case. */
  readonly host: string;
  /** Normalized, without the query. */
  readonly path: string;
  readonly port: number;
}

export interface Verdict {
  readonly allow: boolean;
  /** The policy and rule that decided, for the log and the rule header; empty when no policy applies. */
  readonly rule: string;
  /** For the metrics: the action of the rule that decided (ALLOW when no ALLOW rule matched)... */
  readonly action?: Action;
  /** ...its policy (`ns/name`) and the rule's index; absent when no rule matched. */
  readonly policy?: string;
  readonly index?: number;
}

type Pred = (a: AuthorizationAttributes) => boolean;
type Action = 'CUSTOM' | 'DENY' | 'ALLOW' | 'AUDIT';

// ---- values ----------------------------------------------------------------------------------------

/** Istio's string values: `*` any non-empty value, `*abc` suffix, `abc*` prefix, else exact. */
export function stringMatcher(values: readonly string[]): (s: string | undefined) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let any = false;
  for (const v of values) {
    // The order is Istio's: "*" first, then a leading "*", so `*abc*` is the suffix `abc*`.
    if (v === '*') any = true;
    else if (v.startsWith('*')) suffixes.push(v.slice(1));
    else if (v.endsWith('*')) prefixes.push(v.slice(0, -1));
    else exact.add(v);
  }
  return (s) => {
    if (s === undefined || s === '') return false;
    if (any || exact.has(s)) return true;
    for (const p of prefixes) if (s.startsWith(p)) return true;
    for (const x of suffixes) if (s.endsWith(x)) return true;
    return false;
  };
}

/** Envoy's URI templates: `{*}` is one path segment, `{**}` zero or more characters, slashes included. */
export function pathTemplate(template: string): RegExp {
  let re = '^';
  for (const part of template.split(/(\{\*\*\}|\{\*\})/)) {
    if (part === '{*}') re += '[^/]+';
    else if (part === '{**}') re += '.*';
    else re += part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`);
}

function pathMatcher(values: readonly string[]): (s: string | undefined) => boolean {
  const templates = values.filter((v) => v.includes('{')).map(pathTemplate);
  const plain = stringMatcher(values.filter((v) => !v.includes('{')));
  if (templates.length === 0) return plain;
  return (s) => s !== undefined && (plain(s) || templates.some((t) => t.test(s)));
}

/** Strips the IPv4-mapped prefix Node gives dual-stack sockets, so `10.0.0.0/8` matches them. */
function plainAddress(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** A dotted quad as an unsigned 32-bit number, or -1: addresses are parsed per request, without a regex. */
function ipv4(ip: string): number {
  let n = 0;
  let part = -1;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (part < 0 || ++dots > 3) return -1;
      n = n * 256 + part;
      part = -1;
    } else if (c >= 48 && c <= 57) {
      part = part < 0 ? c - 48 : part * 10 + c - 48;
      if (part > 255) return -1;
    } else return -1;
  }
  return dots === 3 && part >= 0 ? n * 256 + part : -1;
}

export function cidrMatcher(blocks: readonly string[]): (ip: string | undefined) => boolean {
  const v4: { net: number; shift: number }[] = [];
  const v6 = new BlockList();
  let anyV6 = false;
  for (const b of blocks) {
    const slash = b.indexOf('/');
    const addr = plainAddress(slash < 0 ? b : b.slice(0, slash));
    const n = ipv4(addr);
    if (n >= 0) {
      const bits = slash < 0 ? 32 : Number(b.slice(slash + 1));
      // `>>> 32` is `>>> 0`: a /0 block is written as a shift that keeps nothing.
      v4.push(bits === 0 ? { net: 0, shift: -1 } : { net: n >>> (32 - bits), shift: 32 - bits });
    } else {
      v6.addSubnet(addr, slash < 0 ? 128 : Number(b.slice(slash + 1)), 'ipv6');
      anyV6 = true;
    }
  }
  return (ip) => {
    if (!ip) return false;
    const a = plainAddress(ip);
    const n = ipv4(a);
    if (n >= 0) {
      for (const b of v4) if (b.shift < 0 || n >>> b.shift === b.net) return true;
      return false;
    }
    return anyV6 && isIPv6(a) && v6.check(a, 'ipv6');
  };
}

function portMatcher(ports: readonly number[]): (p: number) => boolean {
  const set = new Set(ports);
  return (p) => set.has(p);
}

/** A list attribute (audiences, a list claim) matches when one of its elements does. */
function anyOf(m: (s: string | undefined) => boolean): (v: unknown) => boolean {
  return (v) => {
    if (typeof v === 'string') return m(v);
    if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && m(x));
    return false;
  };
}

// ---- rules -----------------------------------------------------------------------------------------

/** `values` match (when given) and `notValues` do not. */
function both<T>(
  get: (a: AuthorizationAttributes) => T,
  make: (vs: string[]) => (v: T) => boolean,
  values: string[] | undefined,
  notValues: string[] | undefined,
  out: Pred[],
): void {
  if (values?.length) {
    const m = make(values);
    out.push((a) => m(get(a)));
  }
  if (notValues?.length) {
    const m = make(notValues);
    out.push((a) => !m(get(a)));
  }
}

function all(preds: Pred[]): Pred {
  if (preds.length === 0) return () => true;
  if (preds.length === 1) return preds[0];
  return (a) => {
    for (const p of preds) if (!p(a)) return false;
    return true;
  };
}

function some(preds: Pred[]): Pred {
  if (preds.length === 1) return preds[0];
  return (a) => {
    for (const p of preds) if (p(a)) return true;
    return false;
  };
}

function source(s: AuthorizationSource): Pred {
  const p: Pred[] = [];
  both((a) => a.principal, stringMatcher, s.principals, s.notPrincipals, p);
  both((a) => a.requestPrincipal, stringMatcher, s.requestPrincipals, s.notRequestPrincipals, p);
  both((a) => a.namespace, stringMatcher, s.namespaces, s.notNamespaces, p);
  both((a) => a.serviceAccount, stringMatcher, s.serviceAccounts, s.notServiceAccounts, p);
  both((a) => a.trustDomain, stringMatcher, s.trustDomains, s.notTrustDomains, p);
  both((a) => a.sourceIp, cidrMatcher, s.ipBlocks, s.notIpBlocks, p);
  both((a) => a.remoteIp, cidrMatcher, s.remoteIpBlocks, s.notRemoteIpBlocks, p);
  return all(p);
}

function operation(o: AuthorizationOperation): Pred {
  const p: Pred[] = [];
  both((a) => a.host, stringMatcher, o.hosts, o.notHosts, p);
  if (o.ports?.length) {
    const m = portMatcher(o.ports);
    p.push((a) => m(a.port));
  }
  if (o.notPorts?.length) {
    const m = portMatcher(o.notPorts);
    p.push((a) => !m(a.port));
  }
  both((a) => a.method, stringMatcher, o.methods, o.notMethods, p);
  both((a) => a.path, pathMatcher, o.paths, o.notPaths, p);
  return all(p);
}

/** `[a][b]` → `['a', 'b']`. */
function claimPath(key: string): string[] {
  return [...key.slice('request.auth.claims'.length).matchAll(/\[([^[\]]+)\]/g)].map((m) => m[1]);
}

function claim(claims: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): unknown {
  let v: unknown = claims;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** Undefined for a key this proxy cannot evaluate. */
function condition(c: AuthorizationCondition): Pred | undefined {
  const p: Pred[] = [];
  const { key, values, notValues } = c;
  const str = (get: (a: AuthorizationAttributes) => string | undefined) =>
    both(get, stringMatcher, values, notValues, p);
  const ip = (get: (a: AuthorizationAttributes) => string | undefined) =>
    both(get, cidrMatcher, values, notValues, p);
  const header = /^request\.headers\[(.+)\]$/.exec(key);
  if (header) {
    const name = header[1];
    str((a) => a.header(name));
  } else if (key.startsWith('request.auth.claims[')) {
    const path = claimPath(key);
    both(
      (a) => claim(a.claims, path),
      (vs) => anyOf(stringMatcher(vs)),
      values,
      notValues,
      p,
    );
  } else if (key === 'request.auth.audiences') {
    both(
      (a) => a.audiences,
      (vs) => anyOf(stringMatcher(vs)),
      values,
      notValues,
      p,
    );
  } else if (key === 'destination.port') {
    both(
      (a) => a.port,
      (vs) => portMatcher(vs.map(Number)),
      values,
      notValues,
      p,
    );
  } else if (key === 'source.ip') ip((a) => a.sourceIp);
  else if (key === 'remote.ip') ip((a) => a.remoteIp);
  else if (key === 'destination.ip') ip((a) => a.destinationIp);
  else if (key === 'source.namespace') str((a) => a.namespace);
  else if (key === 'source.principal') str((a) => a.principal);
  else if (key === 'source.serviceAccount') str((a) => a.serviceAccount);
  else if (key === 'source.trustDomain') str((a) => a.trustDomain);
  else if (key === 'request.auth.principal') str((a) => a.requestPrincipal);
  else if (key === 'request.auth.presenter') str((a) => a.presenter);
  else if (key === 'connection.sni') str((a) => a.sni);
  else return undefined;
  return all(p);
}

/**
 * A rule matches when one of its sources, one of its operations and every condition does. A
 * condition the proxy cannot evaluate fails closed: it holds in a DENY or CUSTOM rule (which then
 * denies) and never in an ALLOW rule.
 */
function compileRule(r: AuthorizationRule, action: Action): Pred {
  const parts: Pred[] = [];
  if (r.from?.length) parts.push(some(r.from.map(source)));
  if (r.to?.length) parts.push(some(r.to.map(operation)));
  const unknown = action === 'DENY' || action === 'CUSTOM';
  for (const c of r.when ?? []) parts.push(condition(c) ?? (() => unknown));
  return all(parts);
}

interface CompiledPolicy {
  name: string;
  rules: { match: Pred; verdict: Verdict }[];
}

function compilePolicy(p: AuthorizationPolicyRules, action: Action): CompiledPolicy {
  return {
    name: p.name,
    rules: p.rules.map((r, i) => {
      const at = `AuthorizationPolicy ${p.name} rules[${i}]`;
      const rule =
        action === 'CUSTOM' ? `${at} (CUSTOM, provider ${p.provider ?? '<none>'})` : `${at} (${action})`;
      return {
        match: compileRule(r, action),
        verdict: { allow: action !== 'DENY' && action !== 'CUSTOM', rule, action, policy: p.name, index: i },
      };
    }),
  };
}

function firstMatch(policies: readonly CompiledPolicy[], a: AuthorizationAttributes): Verdict | undefined {
  for (const p of policies) for (const r of p.rules) if (r.match(a)) return r.verdict;
  return undefined;
}

/** Every ALLOW and DENY of the snapshot, in evaluation order, with the dry-run and AUDIT ones apart. */
export class CompiledAuthorization {
  private readonly customs: CompiledPolicy[];
  private readonly deny: CompiledPolicy[];
  private readonly allow: CompiledPolicy[];
  private readonly noAllowMatched: Verdict;
  private readonly audit: CompiledPolicy[];
  private readonly shadow: { deny: CompiledPolicy[]; allow: CompiledPolicy[] };
  private readonly shadowNoAllowMatched: Verdict;
  /** Whether any AUDIT or dry-run policy applies: only then is there anything to record. */
  readonly records: boolean;

  constructor(a: Authorization) {
    const split = (list: AuthorizationPolicyRules[] | undefined, action: Action, dryRun: boolean) =>
      (list ?? []).filter((p) => (p.dryRun === true) === dryRun).map((p) => compilePolicy(p, action));
    // Dry run is for ALLOW and DENY only (Istio): a CUSTOM policy is enforced whatever it says.
    this.customs = (a.custom ?? []).map((p) => compilePolicy(p, 'CUSTOM'));
    this.deny = split(a.deny, 'DENY', false);
    this.allow = split(a.allow, 'ALLOW', false);
    this.audit = (a.audit ?? []).map((p) => compilePolicy(p, 'AUDIT'));
    this.shadow = {
      deny: split(a.deny, 'DENY', true),
      allow: split(a.allow, 'ALLOW', true),
    };
    const none = (ps: CompiledPolicy[]): Verdict => ({
      allow: false,
      rule: `no ALLOW policy matched (AuthorizationPolicy ${ps.map((p) => p.name).join(', ')})`,
      action: 'ALLOW',
    });
    this.noAllowMatched = none(this.allow);
    this.shadowNoAllowMatched = none(this.shadow.allow);
    this.records = this.audit.length + this.shadow.deny.length + this.shadow.allow.length > 0;
  }

  /** The first CUSTOM rule the request matches: the external authorizer decides, then `decide`. */
  custom(a: AuthorizationAttributes): Verdict | undefined {
    return this.customs.length ? firstMatch(this.customs, a) : undefined;
  }

  /** The enforced DENY and ALLOW decision, once CUSTOM has allowed (or matched nothing). */
  decide(a: AuthorizationAttributes): Verdict {
    return evaluate(this.deny, this.allow, this.noAllowMatched, a);
  }

  /** What the dry-run policies alone would decide; undefined when there are none. */
  dryRun(a: AuthorizationAttributes): Verdict | undefined {
    const s = this.shadow;
    if (s.deny.length + s.allow.length === 0) return undefined;
    return evaluate(s.deny, s.allow, this.shadowNoAllowMatched, a);
  }

  /**
   * The dry-run policies as Envoy's two shadow engines see them (Istio's `istio_dry_run_allow_` and
   * `istio_dry_run_deny_` stats): the ALLOW ones alone, and the DENY ones alone (CUSTOM has no dry
   * run, as in Istio); undefined for an engine without policies.
   */
  shadowAllow(a: AuthorizationAttributes): Verdict | undefined {
    const s = this.shadow;
    if (s.allow.length === 0) return undefined;
    return firstMatch(s.allow, a) ?? this.shadowNoAllowMatched;
  }

  shadowDeny(a: AuthorizationAttributes): Verdict | undefined {
    const s = this.shadow;
    if (s.deny.length === 0) return undefined;
    return firstMatch(s.deny, a) ?? NO_POLICY;
  }

  /** The AUDIT rules the request matches, one per policy. */
  audited(a: AuthorizationAttributes): string[] {
    const out: string[] = [];
    for (const p of this.audit) {
      const r = p.rules.find((x) => x.match(a));
      if (r) out.push(r.verdict.rule);
    }
    return out;
  }
}

const NO_POLICY: Verdict = { allow: true, rule: '' };

function evaluate(
  deny: CompiledPolicy[],
  allow: CompiledPolicy[],
  noAllowMatched: Verdict,
  a: AuthorizationAttributes,
): Verdict {
  const denied = firstMatch(deny, a);
  if (denied) return denied;
  if (allow.length === 0) return NO_POLICY;
  return firstMatch(allow, a) ?? noAllowMatched;
}
