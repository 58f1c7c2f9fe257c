// A route table compiled for the hot path: host lookup is one Map get (with a wildcard fallback),
// matchers are precompiled closures built when the snapshot is applied, never per request.
import { compileRe2 } from '../../api/kinds/re2.ts';
import type { HeaderMatch, Route, RouteTable, StringMatch } from '../../compile/snapshot.ts';

export type Matcher = (value: string | undefined) => boolean;

export function compileStringMatch(m: StringMatch): Matcher {
  if (m.exact !== undefined) {
    const exact = m.exact;
    return (v) => v === exact;
  }
  if (m.prefix !== undefined) {
    const prefix = m.prefix;
    return (v) => v?.startsWith(prefix) === true;
  }
  // Same RE2 translation the API validated with; Envoy's safe_regex matches the whole value.
  const re = compileRe2(m.regex ?? '', { fullMatch: true });
  return (v) => v !== undefined && re.test(v);
}

export interface RequestView {
  /** Normalized path without query. */
  path: string;
  header(name: string): string | undefined;
}

export interface CompiledRoute {
  route: Route;
  matches: ((req: RequestView) => boolean)[];
}

function compileHeaderMatch(h: HeaderMatch): (req: RequestView) => boolean {
  const m = compileStringMatch(h.match);
  const name = h.name;
  return (req) => m(req.header(name));
}

function compileRoute(route: Route): CompiledRoute {
  const matches = route.matches.map((rm) => {
    const parts: ((req: RequestView) => boolean)[] = [];
    if (rm.uri) {
      const uri = compileStringMatch(rm.uri);
      parts.push((req) => uri(req.path));
    }
    for (const h of rm.headers ?? []) parts.push(compileHeaderMatch(h));
    return (req: RequestView) => {
      for (const p of parts) if (!p(req)) return false;
      return true;
    };
  });
  return { route, matches };
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
