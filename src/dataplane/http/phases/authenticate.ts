// authenticate: who the peer is, and who the end user is.
// - mTLS: the handshake has proven the peer already; what is left is PeerAuthentication's per-port
//   mode: plaintext to a STRICT port is refused. When no port is PERMISSIVE the listener cuts plaintext
//   at accept, and this check is not on the path at all.
// - JWT (RequestAuthentication, sidecar inbound and gateways): a token found at one of the rules'
//   locations must verify (jwt.ts), or the request is refused with Envoy's reason; a request without
//   a token passes with no `ex.auth`, and authorization decides. Verification is asynchronous on a
//   cache miss: the step holds the exchange and resumes the chain when it is done.
import type { JwtRule } from '../../../compile/snapshot.ts';
import type { ProxyConfig } from '../../config.ts';
import type { Exchange, ListenerKind } from '../context.ts';
import {
  JWT_ERRORS,
  JwtError,
  TokenCache,
  type Verified,
  type VerifyingRule,
  verifyingRule,
  verifyToken,
} from '../jwt.ts';
import type { Phase, Step } from '../phase.ts';

/** Envoy's jwt_cache_config default is 100 tokens per provider; a proxy-wide bound of this many. */
const TOKEN_CACHE_SIZE = 1000;

function strictPorts(cfg: ProxyConfig): Step {
  return (ex) => {
    const port = ex.targetPort!;
    if (ex.peerTls.identity === undefined && cfg.inboundMtls(port) === 'STRICT') {
      ex.reply(403, 'DPE', `plaintext to port ${port}, which requires mTLS (STRICT)`);
      return false;
    }
    return true;
  };
}

/** One place a token may be, with the rules that look there. */
interface Location {
  kind: 'header' | 'param' | 'cookie';
  name: string;
  prefix?: string;
  rules: VerifyingRule[];
}

function locationsOf(rules: VerifyingRule[]): Location[] {
  const byKey = new Map<string, Location>();
  const add = (kind: Location['kind'], name: string, v: VerifyingRule, prefix?: string) => {
    const key = `${kind}\n${name}\n${prefix ?? ''}`;
    let loc = byKey.get(key);
    if (!loc) {
      loc = prefix === undefined ? { kind, name, rules: [] } : { kind, name, prefix, rules: [] };
      byKey.set(key, loc);
    }
    if (!loc.rules.includes(v)) loc.rules.push(v);
  };
  for (const v of rules) {
    const l = v.rule.locations;
    for (const h of l.headers) add('header', h.name, v, h.prefix);
    for (const p of l.params) add('param', p, v);
    for (const c of l.cookies) add('cookie', c, v);
  }
  return [...byKey.values()];
}

function headerValue(ex: Exchange, name: string): string | undefined {
  const v = ex.down.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function startsWith(value: string, prefix: string, ignoreCase: boolean): boolean {
  return ignoreCase
    ? value.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()
    : value.startsWith(prefix);
}

/** The query's `name=value` pairs, as sent (a query is `?a=b&c=d` or empty). */
function queryPairs(query: string): string[] {
  return query.length > 1 ? query.slice(1).split('&') : [];
}

function pairName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = eq < 0 ? pair : pair.slice(0, eq);
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return raw;
  }
}

function extract(ex: Exchange, loc: Location): string | undefined {
  if (loc.kind === 'header') {
    const v = headerValue(ex, loc.name);
    if (v === undefined) return undefined;
    if (loc.prefix === undefined) return v.trim() || undefined;
    // The auth scheme of `Authorization` is case-insensitive (RFC 9110 §11.1); other prefixes are literal.
    if (!startsWith(v, loc.prefix, loc.name === 'authorization')) return undefined;
    return v.slice(loc.prefix.length).trim() || undefined;
  }
  if (loc.kind === 'param') {
    if (!ex.query) return undefined;
    for (const pair of queryPairs(ex.query)) {
      if (pairName(pair) !== loc.name) continue;
      const eq = pair.indexOf('=');
      if (eq < 0) return undefined;
      try {
        return decodeURIComponent(pair.slice(eq + 1)) || undefined;
      } catch {
        return pair.slice(eq + 1) || undefined;
      }
    }
    return undefined;
  }
  const cookie = headerValue(ex, 'cookie');
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === loc.name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** forwardOriginalToken false: the token does not go on (Envoy removes the header or the parameter). */
function strip(ex: Exchange, loc: Location): void {
  // Unset rather than deleted: a delete would turn the headers object into a slow dictionary.
  if (loc.kind === 'header') ex.down.headers[loc.name] = undefined;
  else if (loc.kind === 'param') {
    const kept = queryPairs(ex.query).filter((p) => pairName(p) !== loc.name);
    ex.query = kept.length ? `?${kept.join('&')}` : '';
  }
}

/** A claim by its dotted path, as a header value: strings, numbers and booleans only (Istio's ClaimToHeader). */
function claimHeader(claims: Record<string, unknown>, path: string): string | undefined {
  let v: unknown = claims;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

interface Found {
  token: string;
  loc: Location;
}

function accept(ex: Exchange, found: Found[], verified: Verified[]): void {
  ex.auth = verified[0].auth;
  const headers = ex.down.headers;
  for (let i = 0; i < found.length; i++) {
    const v = verified[i];
    const rule = v.rule;
    if (rule.outputPayloadToHeader) headers[rule.outputPayloadToHeader] = v.payload;
    for (const c of rule.outputClaimToHeaders ?? []) {
      const value = claimHeader(v.auth.claims, c.claim);
      if (value !== undefined) headers[c.header] = value;
    }
    if (!rule.forwardOriginalToken) strip(ex, found[i].loc);
  }
}

function refuse(ex: Exchange, err: unknown, rules: readonly JwtRule[]): void {
  const e = err instanceof JwtError ? err : new JwtError(JWT_ERRORS.verification);
  const by =
    e.rule?.origin ??
    `RequestAuthentication (issuers ${[...new Set(rules.map((r) => r.issuer))].join(', ')})`;
  const details = `jwt_authn_access_denied{${e.message.replaceAll(' ', '_')}}`;
  const why = e.rule?.jwksError ? ` (${e.rule.jwksError})` : '';
  // Envoy sets no response flag for jwt_authn: the reason is in the response code details.
  ex.reply(e.status, '-', `${by}: ${details}${why}`, e.message, {
    'www-authenticate': `Bearer realm="http://${ex.hostHeader}${ex.path}", error="invalid_token"`,
  });
}

function jwtStep(rules: JwtRule[], resume: (ex: Exchange) => void): Step {
  const verifying = rules.map(verifyingRule);
  const locations = locationsOf(verifying);
  // Only the proxy writes these: a client's own copy would pass for a verified claim upstream.
  const outputs = [
    ...new Set(
      rules.flatMap((r) => [
        ...(r.outputPayloadToHeader ? [r.outputPayloadToHeader] : []),
        ...(r.outputClaimToHeaders ?? []).map((c) => c.header),
      ]),
    ),
  ];
  const cache = new TokenCache(TOKEN_CACHE_SIZE);
  return (ex) => {
    const headers = ex.down.headers;
    for (const h of outputs) if (headers[h] !== undefined) delete headers[h];
    let found: Found[] | undefined;
    for (const loc of locations) {
      const token = extract(ex, loc);
      if (token === undefined) continue;
      if (found) found.push({ token, loc });
      else found = [{ token, loc }];
    }
    if (!found) return true;
    const now = Date.now();
    const hits: Verified[] = [];
    for (const f of found) {
      const hit = cache.get(f.token, now);
      if (!hit || !f.loc.rules.some((v) => v.rule === hit.rule)) break;
      hits.push(hit);
    }
    if (hits.length === found.length) {
      accept(ex, found, hits);
      return true;
    }
    const all = found;
    Promise.all(
      all.map(async (f) => {
        const v = await verifyToken(f.token, f.loc.rules, now);
        cache.set(f.token, v);
        return v;
      }),
    ).then(
      (verified) => {
        if (ex.flags === 'DC') return; // the client went away meanwhile
        accept(ex, all, verified);
        resume(ex);
      },
      (err: unknown) => {
        if (ex.flags !== 'DC') refuse(ex, err, rules);
      },
    );
    return false;
  };
}

function jwtRulesOf(cfg: ProxyConfig, kind: ListenerKind, tableName: string): JwtRule[] | undefined {
  if (kind === 'inbound') return cfg.inbound?.jwtRules;
  if (kind !== 'gateway') return undefined;
  for (const l of cfg.snapshot.listeners)
    if (l.type === 'gateway' && l.routeTable === tableName && l.jwtRules) return l.jwtRules;
  return undefined;
}

export const authenticate: Phase = {
  name: 'authenticate',
  setup({ kind, cfg, tableName, resume }) {
    if (!cfg) return undefined;
    const mtls = kind === 'inbound' && cfg.acceptsPlaintext ? strictPorts(cfg) : undefined;
    const rules = jwtRulesOf(cfg, kind, tableName);
    const jwt = rules ? jwtStep(rules, resume) : undefined;
    if (!mtls || !jwt) return mtls ?? jwt;
    return (ex) => mtls(ex) && jwt(ex);
  },
};
