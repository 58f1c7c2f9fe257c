// A route table compiled for the hot path: host lookup is one Map get (with a wildcard fallback),
// matchers are precompiled closures built when the snapshot is applied, never per request.

import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMatch, Route, RouteMatch, RouteTable, StringMatch } from '../../compile/snapshot.ts';
import { compileRe2 } from '../../lib/re2/match.ts';

export type Matcher = (value: string | undefined) => boolean;

export function compileStringMatch(m: StringMatch, ignoreCase = false): Matcher {
  if (m.exact !== undefined) {
    const exact = ignoreCase ? m.exact.toLowerCase() : m.exact;
    return ignoreCase ? (v) => v?.toLowerCase() === exact : (v) => v === exact;
  }
  if (m.prefix !== undefined) {
    const prefix = ignoreCase ? m.prefix.toLowerCase() : m.prefix;
    return ignoreCase
      ? (v) => v?.toLowerCase().startsWith(prefix) === true
      : (v) => v?.startsWith(prefix) === true;
  }
  if (m.regex !== undefined) {
    // The RE2 rules the API validated with; linear in the value, whole-value as Envoy's safe_regex.
    const re = compileRe2(m.regex);
    return (v) => v !== undefined && re(v);
  }
  return (v) => v !== undefined; // `{}`: present, any value
}

/** What routing may look at; one per request, the query parsed only if a route asks for it. */
export class RequestView {
  readonly path: string;
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  /** The verified JWT's claims (RequestAuthentication), for `@request.auth.claims` matches. */
  readonly claims: Record<string, unknown> | undefined;
  private readonly headers: IncomingHttpHeaders;
  private readonly rawQuery: string;
  private params?: URLSearchParams;

  constructor(
    path: string,
    rawQuery: string,
    method: string,
    scheme: string,
    authority: string,
    headers: IncomingHttpHeaders,
    claims?: Record<string, unknown>,
  ) {
    this.path = path;
    this.rawQuery = rawQuery;
    this.method = method;
    this.scheme = scheme;
    this.authority = authority;
    this.headers = headers;
    this.claims = claims;
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  }

  query(name: string): string | undefined {
    this.params ??= new URLSearchParams(this.rawQuery);
    return this.params.get(name) ?? undefined;
  }

  /** The port the request was addressed to: from the authority, else the scheme's default. */
  get port(): number {
    const colon = this.authority.lastIndexOf(':');
    if (colon > 0 && !this.authority.endsWith(']')) return Number(this.authority.slice(colon + 1));
    return this.scheme === 'https' ? 443 : 80;
  }
}

type Predicate = (req: RequestView) => boolean;

export interface CompiledRoute {
  route: Route;
  matches: Predicate[];
}

function compileMatch(rm: RouteMatch): Predicate {
  const parts: Predicate[] = [];
  if (rm.uri) {
    const uri = compileStringMatch(rm.uri, rm.ignoreUriCase === true && rm.uri.regex === undefined);
    parts.push((req) => uri(req.path));
  }
  if (rm.method) {
    const m = compileStringMatch(rm.method);
    parts.push((req) => m(req.method));
  }
  if (rm.scheme) {
    const m = compileStringMatch(rm.scheme);
    parts.push((req) => m(req.scheme));
  }
  if (rm.authority) {
    const m = compileStringMatch(rm.authority);
    parts.push((req) => m(req.authority));
  }
  if (rm.port !== undefined) {
    const port = rm.port;
    parts.push((req) => req.port === port);
  }
  for (const h of rm.headers ?? []) parts.push(headerPredicate(h));
  for (const h of rm.withoutHeaders ?? []) {
    const p = headerPredicate(h);
    parts.push((req) => !p(req));
  }
  for (const q of rm.queryParams ?? []) {
    const m = compileStringMatch(q.match);
    const name = q.name;
    parts.push((req) => m(req.query(name)));
  }
  return (req) => {
    for (const p of parts) if (!p(req)) return false;
    return true;
  };
}

function headerPredicate(h: HeaderMatch): Predicate {
  const m = compileStringMatch(h.match);
  if (h.claim) return claimPredicate(h.claim, m);
  const name = h.name;
  return (req) => m(req.header(name));
}

/** As Envoy matches JWT claims in routes: a string, number or boolean claim, or any string of a list. */
function claimPredicate(path: string[], m: Matcher): Predicate {
  return (req) => {
    let v: unknown = req.claims;
    for (const key of path) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
      v = (v as Record<string, unknown>)[key];
    }
    if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && m(x));
    if (typeof v === 'string') return m(v);
    if (typeof v === 'number' || typeof v === 'boolean') return m(String(v));
    return false;
  };
}

function compileRoute(route: Route): CompiledRoute {
  return { route, matches: route.matches.map(compileMatch) };
}

export interface CompiledVirtualHost {
  name: string;
  routes: CompiledRoute[];
}

export class CompiledRouteTable {
  readonly name: string;
  private readonly exact = new Map<string, CompiledVirtualHost>();
  /** `*.suffix` wildcards, longest suffix first. */
  private readonly wildcards: [string, CompiledVirtualHost][] = [];
  private catchAll?: CompiledVirtualHost;

  constructor(table: RouteTable) {
    this.name = table.name;
    for (const vh of table.virtualHosts) {
      const compiled = { name: vh.name, routes: vh.routes.map(compileRoute) };
      for (const d of vh.domains) {
        const domain = d.toLowerCase();
        if (domain === '*') this.catchAll ??= compiled;
        else if (domain.startsWith('*.')) this.wildcards.push([domain.slice(1), compiled]);
        else if (!this.exact.has(domain)) this.exact.set(domain, compiled);
      }
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  /** `host` is the request's authority, lower-cased, possibly with `:port`. */
  virtualHost(host: string): CompiledVirtualHost | undefined {
    const hit = this.exact.get(host);
    if (hit) return hit;
    const colon = host.lastIndexOf(':');
    const bare = colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host;
    if (bare !== host) {
      const h = this.exact.get(bare);
      if (h) return h;
    }
    for (const [suffix, vh] of this.wildcards) if (bare.endsWith(suffix)) return vh;
    return this.catchAll;
  }

  /** First matching route wins, as in Istio. */
  static route(vh: CompiledVirtualHost, req: RequestView): Route | undefined {
    for (const r of vh.routes) {
      if (r.matches.length === 0) return r.route;
      for (const m of r.matches) if (m(req)) return r.route;
    }
    return undefined;
  }
}
