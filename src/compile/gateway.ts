// A gateway proxy's listeners and route tables: one listener per HTTP server port of the Gateways
// that select it, with the routes of every VirtualService bound to them, merged per host.
import type { Resource } from '../api/resource.ts';
import { authorizationFor } from './authorization.ts';
import type { ClusterSet } from './clusters.ts';
import { virtualServiceVisible } from './export-to.ts';
import { addExtAuthzCluster, extAuthzCluster } from './ext-authz.ts';
import { hostMatches, resolveHost } from './hosts.ts';
import { type GatewaySpec, labelsMatch, type MeshIndex, type VirtualServiceSpec } from './mesh-index.ts';
import { jwtRules } from './request-authentication.ts';
import { vsRoutes } from './routes.ts';
import type { GatewayListener, ProxyNode, Route, RouteTable } from './snapshot.ts';

/** Does a VirtualService bind to this Gateway (`<ns>/<name>` or `<name>` in the VS's namespace)? */
function bindsTo(vs: Resource<VirtualServiceSpec>, gw: Resource<GatewaySpec>): boolean {
  return (vs.spec.gateways ?? []).some((g) => {
    const [ns, name] = g.includes('/') ? g.split('/') : [vs.metadata.namespace, g];
    return ns === gw.metadata.namespace && name === gw.metadata.name;
  });
}

/** Gateway server hosts are `[ns/]host`; the VS host must fall within one of them. */
function serverAdmits(serverHosts: string[], vs: Resource<VirtualServiceSpec>, host: string): boolean {
  return serverHosts.some((sh) => {
    const [ns, h] = sh.includes('/') ? sh.split('/') : ['*', sh];
    if (ns !== '*' && ns !== '.' && ns !== vs.metadata.namespace) return false;
    return hostMatches(h.toLowerCase(), host) || (host.startsWith('*') && h === '*');
  });
}

export function gatewayConfig(
  index: MeshIndex,
  node: ProxyNode,
  clusters: ClusterSet,
): { listeners: GatewayListener[]; tables: RouteTable[] } {
  const byPort = new Map<
    number,
    { gateways: string[]; hostsByGateway: Map<Resource<GatewaySpec>, string[]> }
  >();
  for (const gw of index.gateways) {
    if (!labelsMatch(gw.spec.selector, node.labels)) continue;
    for (const server of gw.spec.servers ?? []) {
      if (server.port.protocol.toUpperCase() !== 'HTTP') continue; // other protocols: not yet served (warned at apply)
      let entry = byPort.get(server.port.number);
      if (!entry) {
        entry = { gateways: [], hostsByGateway: new Map() };
        byPort.set(server.port.number, entry);
      }
      const id = `${gw.metadata.namespace}/${gw.metadata.name}`;
      if (!entry.gateways.includes(id)) entry.gateways.push(id);
      entry.hostsByGateway.set(gw, [...(entry.hostsByGateway.get(gw) ?? []), ...server.hosts]);
    }
  }
  const listeners: GatewayListener[] = [];
  const tables: RouteTable[] = [];
  for (const [port, entry] of [...byPort].sort((a, b) => a[0] - b[0])) {
    // Gateways merge the routes of every VirtualService for a host exported to the gateway's
    // namespace, in age order.
    const hosts = new Map<string, Route[]>();
    for (const vs of index.virtualServices) {
      if (!virtualServiceVisible(index, vs, node.namespace)) continue;
      for (const [gw, serverHosts] of entry.hostsByGateway) {
        if (!bindsTo(vs, gw)) continue;
        for (const raw of vs.spec.hosts ?? []) {
          const host = raw === '*' ? '*' : resolveHost(raw, vs.metadata.namespace);
          if (!serverAdmits(serverHosts, vs, host)) continue;
          const scope = { node, gateway: `${gw.metadata.namespace}/${gw.metadata.name}`, port };
          hosts.set(host, [...(hosts.get(host) ?? []), ...vsRoutes(vs, clusters, index, scope)]);
        }
      }
    }
    const tableName = `http.${port}`;
    const virtualHosts = [...hosts].map(([host, routes]) => ({
      name: `${host}:${port}`,
      domains: host === '*' ? ['*'] : [host, `${host}:${port}`],
      routes,
    }));
    tables.push({ name: tableName, virtualHosts });
    const jwt = jwtRules(index, { node, targets: entry.gateways });
    const authorization = authorizationFor(index, node, entry.gateways);
    addExtAuthzCluster(clusters, extAuthzCluster(index, authorization?.extAuthz));
    listeners.push({
      name: `0.0.0.0_${port}`,
      type: 'gateway',
      port,
      protocol: 'HTTP',
      routeTable: tableName,
      gateways: entry.gateways,
      ...(jwt && { jwtRules: jwt }),
      ...(authorization && { authorization }),
    });
  }
  return { listeners, tables };
}
