// A snapshot's L4 routing compiled for connections when the snapshot is applied: the outbound route
// table's service ports by every `host:port` an app may name them with, each with its protocol and its
// tcp and tls routes turned into subnet and SNI predicates over runtime clusters. Per connection this
// is one Map get and a walk over a port's few routes.
import type { L4Match, TcpRoute, TlsRoute } from '../../compile/snapshot.ts';
import type { ProxyConfig } from '../config.ts';
import { cidrMatcher } from '../http/authorization.ts';
import type { ClusterRuntime } from '../upstream/cluster.ts';

export interface L4Target {
  route: TcpRoute;
  clusters: ClusterRuntime[];
  weights: number[];
  total: number;
}

interface CompiledRoute extends L4Target {
  /** Undefined: every connection. */
  subnets?: (ip: string | undefined) => boolean;
}

interface CompiledTlsRoute extends L4Target {
  match(sni: string | undefined, ip: string | undefined): boolean;
}

export interface L4Port {
  /** `fqdn:port`, the virtual host's name. */
  name: string;
  /** The destination service's FQDN, for telemetry. */
  service: string;
  protocol: 'HTTP' | 'TCP' | 'TLS' | 'AUTO';
  tcp: CompiledRoute[];
  tls: CompiledTlsRoute[];
}

/** `*` any, `*.suffix` any name under it, else exact; names are lower-case. */
function sniMatcher(hosts: readonly string[]): (name: string | undefined) => boolean {
  const exact = new Set(hosts.filter((h) => !h.startsWith('*')));
  const suffixes = hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
  const any = hosts.includes('*');
  return (name) => {
    if (name === undefined) return false;
    if (any || exact.has(name)) return true;
    for (const s of suffixes) if (name.endsWith(s)) return true;
    return false;
  };
}

function subnetsOf(matches: readonly L4Match[]): CompiledRoute['subnets'] {
  if (matches.length === 0 || matches.some((m) => !m.destinationSubnets?.length)) return undefined;
  return cidrMatcher(matches.flatMap((m) => m.destinationSubnets!));
}

function target(cfg: ProxyConfig, route: TcpRoute): L4Target {
  const clusters = route.clusters.map((w) => {
    const c = cfg.clusters.get(w.cluster);
    if (!c) throw new Error(`route ${route.name} refers to unknown cluster ${w.cluster}`);
    return c;
  });
  const weights = route.clusters.map((w) => w.weight);
  return { route, clusters, weights, total: weights.reduce((a, b) => a + b, 0) };
}

function tlsRoute(cfg: ProxyConfig, route: TlsRoute): CompiledTlsRoute {
  // Each match is its own SNI and subnet pair: a connection matches when one of them does.
  const pairs = route.matches.map((m) => ({
    sni: sniMatcher(m.sniHosts),
    subnets: m.destinationSubnets?.length ? cidrMatcher(m.destinationSubnets) : undefined,
  }));
  return {
    ...target(cfg, route),
    match: (sni, ip) => pairs.some((p) => p.sni(sni) && (!p.subnets || p.subnets(ip))),
  };
}

export class L4Routes {
  private readonly ports = new Map<string, L4Port>();

  /** Throws on a dangling cluster: the snapshot is then rejected. */
  constructor(cfg: ProxyConfig | undefined) {
    const table = cfg?.snapshot.routeTables.find((t) => t.name === 'outbound');
    for (const vh of table?.virtualHosts ?? []) {
      const colon = vh.name.lastIndexOf(':');
      if (colon < 0) continue;
      const l4 = vh.l4;
      const port: L4Port = {
        name: vh.name,
        service: vh.name.slice(0, colon),
        protocol: l4?.protocol ?? 'HTTP',
        tcp: (l4?.tcp ?? []).map((r) => ({ ...target(cfg!, r), subnets: subnetsOf(r.matches) })),
        tls: (l4?.tls ?? []).map((r) => tlsRoute(cfg!, r)),
      };
      // Only names with the port: a bare name would pick one of the service's ports at random.
      for (const d of vh.domains)
        if (d.includes(':') && !this.ports.has(d.toLowerCase())) this.ports.set(d.toLowerCase(), port);
    }
  }

  /** `authority` is `host:port`, lower-case. */
  port(authority: string): L4Port | undefined {
    return this.ports.get(authority);
  }

  /** The first tcp route for a connection to `ip` (undefined for a name). */
  static tcp(p: L4Port, ip: string | undefined): L4Target | undefined {
    for (const r of p.tcp) if (!r.subnets || r.subnets(ip)) return r;
    return undefined;
  }

  /** The first tls route for the ClientHello's SNI. */
  static tls(p: L4Port, sni: string | undefined, ip: string | undefined): L4Target | undefined {
    for (const r of p.tls) if (r.match(sni, ip)) return r;
    return undefined;
  }
}

/** Weighted choice among a route's clusters; weights are relative. */
export function pickCluster(t: L4Target): ClusterRuntime | undefined {
  const n = t.clusters.length;
  if (n <= 1) return t.clusters[0];
  let r = Math.random() * t.total;
  for (let i = 0; i < n; i++) {
    r -= t.weights[i];
    if (r < 0) return t.clusters[i];
  }
  return t.clusters[n - 1];
}
