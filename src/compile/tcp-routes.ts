// VirtualService `tcp` and `tls` rules → a service port's L4 routing, as pilot builds a sidecar's TCP
// and TLS filter chains. The static parts of a match (port, sourceLabels, sourceNamespace, gateways)
// are settled here for the proxy being compiled; what only a connection can tell (its destination
// address, its SNI) is left for the proxy.
import type { L4MatchAttributes, RouteDestination, TLSMatchAttributes } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import type { ClusterSet } from './clusters.ts';
import { labelsMatch, type MeshIndex, type VirtualServiceSpec } from './mesh-index.ts';
import type { PortProxying } from './protocol.ts';
import { destinationOf, type RouteScope } from './routes.ts';
import type { L4Match, L4Routing, TcpRoute, TlsMatch, TlsRoute, WeightedCluster } from './snapshot.ts';

/** Does a match's static part hold for this proxy on this port? */
function inScope(
  m: L4MatchAttributes | TLSMatchAttributes,
  scope: RouteScope & { port: number },
  vsNamespace: string,
): boolean {
  if (m.port !== undefined && m.port !== scope.port) return false;
  if (m.sourceLabels && !labelsMatch(m.sourceLabels, scope.node.labels)) return false;
  if (m.sourceNamespace && m.sourceNamespace !== scope.node.namespace) return false;
  if (m.gateways?.length) {
    const applies = scope.gateway
      ? m.gateways.some((g) => (g.includes('/') ? g : `${vsNamespace}/${g}`) === scope.gateway)
      : m.gateways.includes('mesh');
    if (!applies) return false;
  }
  return true;
}

function weighted(
  route: RouteDestination[],
  ns: string,
  clusters: ClusterSet,
  index: MeshIndex,
  port: number,
): WeightedCluster[] {
  return route
    .map((d) => ({
      cluster: destinationOf(d.destination, ns, clusters, index, port),
      // One destination takes all connections whatever its weight; otherwise weights are relative.
      weight: route.length === 1 ? 100 : (d.weight ?? 0),
    }))
    .filter((w) => w.weight > 0);
}

/**
 * The tcp rules in order; a rule whose every match is out of scope does not exist here. A match
 * without destination subnets catches every connection: the rules after it are never reached.
 */
function tcpRoutes(
  vs: Resource<VirtualServiceSpec>,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope & { port: number },
): { routes: TcpRoute[]; catchAll: boolean } {
  const ns = vs.metadata.namespace;
  const routes: TcpRoute[] = [];
  for (const [i, rule] of (vs.spec.tcp ?? []).entries()) {
    let matches: L4Match[] = [];
    let catchAll = !rule.match?.length;
    for (const m of rule.match ?? []) {
      if (!inScope(m, scope, ns)) continue;
      if (!m.destinationSubnets?.length) catchAll = true;
      else matches.push({ destinationSubnets: m.destinationSubnets });
    }
    if (catchAll) matches = [];
    else if (matches.length === 0) continue;
    routes.push({
      name: `${ns}/${vs.metadata.name}#tcp${i}`,
      origin: `VirtualService ${ns}/${vs.metadata.name} tcp[${i}]`,
      matches,
      clusters: weighted(rule.route, ns, clusters, index, scope.port),
    });
    if (catchAll) return { routes, catchAll: true };
  }
  return { routes, catchAll: false };
}

/** The tls rules in order, each with the matches in scope; SNI hosts lower-cased. */
function tlsRoutes(
  vs: Resource<VirtualServiceSpec>,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope & { port: number },
): TlsRoute[] {
  const ns = vs.metadata.namespace;
  const routes: TlsRoute[] = [];
  for (const [i, rule] of (vs.spec.tls ?? []).entries()) {
    const matches: TlsMatch[] = rule.match
      .filter((m) => inScope(m, scope, ns))
      .map((m) => ({
        sniHosts: m.sniHosts.map((h) => h.toLowerCase()),
        ...(m.destinationSubnets?.length ? { destinationSubnets: m.destinationSubnets } : {}),
      }));
    if (matches.length === 0) continue;
    routes.push({
      name: `${ns}/${vs.metadata.name}#tls${i}`,
      origin: `VirtualService ${ns}/${vs.metadata.name} tls[${i}]`,
      matches,
      clusters: weighted(rule.route, ns, clusters, index, scope.port),
    });
  }
  return routes;
}

/**
 * A service port's L4 routing; undefined for an HTTP port. Without a VirtualService, or past its
 * rules, connections go to the service's own cluster on that port — except on a TLS port whose tls
 * rules apply here: a ClientHello none of them matches is refused, as pilot builds no fallback then.
 */
export function l4Routing(
  proxying: PortProxying,
  vs: Resource<VirtualServiceSpec> | undefined,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope & { port: number },
  fqdn: string,
  owner: string,
): L4Routing | undefined {
  if (proxying === 'HTTP') return undefined;
  const fallback: TcpRoute = {
    name: 'default',
    origin: `${owner} (no ${vs ? 'matching tcp route' : 'VirtualService'})`,
    matches: [],
    clusters: [{ cluster: clusters.outbound(fqdn, scope.port, undefined), weight: 100 }],
  };
  if (!vs) return { protocol: proxying, tcp: [fallback] };
  const tls = tlsRoutes(vs, clusters, index, scope);
  if (proxying === 'TLS' && tls.length > 0) return { protocol: proxying, tls, tcp: [] };
  const tcp = tcpRoutes(vs, clusters, index, scope);
  return {
    protocol: proxying,
    ...(tls.length ? { tls } : {}),
    tcp: tcp.catchAll ? tcp.routes : [...tcp.routes, fallback],
  };
}
