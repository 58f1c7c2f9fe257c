// A gateway proxy's listeners and route tables: one listener per port the servers of the Gateways
// that select it resolve to, plain HTTP or HTTPS (gateway-tls.ts), with the routes of every
// VirtualService bound to them, merged per host.
import type { Resource } from '../api/resource.ts';
import { authorizationFor } from './authorization.ts';
import type { ClusterSet } from './clusters.ts';
import { virtualServiceVisible } from './export-to.ts';
import { addExtAuthzCluster, extAuthzCluster } from './ext-authz.ts';
import { gatewayTlsServer, terminatesTls } from './gateway-tls.ts';
import { hostMatches, resolveHost } from './hosts.ts';
import { type GatewaySpec, labelsMatch, type MeshIndex, type VirtualServiceSpec } from './mesh-index.ts';
import { jwtRules } from './request-authentication.ts';
import { vsRoutes } from './routes.ts';
import type { GatewayListener, GatewayTlsServer, ProxyNode, Route, RouteTable } from './snapshot.ts';

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

/**
 * Istio's port resolution: a server port that is a port of a Service selecting this gateway listens
 * on that port's targetPort (Service 80 → container 8080); any other server port is listened on as is.
 */
function listenPorts(index: MeshIndex, node: ProxyNode): Map<number, number[]> {
  const ports = new Map<number, number[]>();
  for (const svc of index.services.values()) {
    if (svc.namespace !== node.namespace || Object.keys(svc.selector).length === 0) continue;
    if (!labelsMatch(svc.selector, node.labels)) continue;
    for (const sp of svc.ports) {
      const target =
        typeof sp.targetPort === 'number'
          ? sp.targetPort
          : node.ports.find((p) => p.name === sp.targetPort)?.port;
      if (target === undefined) continue;
      const list = ports.get(sp.port) ?? [];
      if (!list.includes(target)) list.push(target);
      ports.set(
        sp.port,
        list.sort((a, b) => a - b),
      );
    }
  }
  return ports;
}

interface BoundServer {
  gw: Resource<GatewaySpec>;
  index: number;
  redirect: boolean;
}

/** The servers that make up one listener: HTTP ones share its route table, HTTPS ones have one each. */
interface ListenerEntry {
  protocol: 'HTTP' | 'HTTPS';
  /** The first server's port number: Istio names the HTTP route table after it. */
  serverPort: number;
  gateways: string[];
  servers: BoundServer[];
}

export function gatewayConfig(
  index: MeshIndex,
  node: ProxyNode,
  clusters: ClusterSet,
): { listeners: GatewayListener[]; tables: RouteTable[] } {
  const resolved = listenPorts(index, node);
  const byPort = new Map<number, ListenerEntry>();
  for (const gw of index.gateways) {
    if (!labelsMatch(gw.spec.selector, node.labels)) continue;
    (gw.spec.servers ?? []).forEach((server, i) => {
      const protocol = HTTP_PROTOCOLS.has(server.port.protocol.toUpperCase())
        ? 'HTTP'
        : terminatesTls(server)
          ? 'HTTPS'
          : undefined;
      if (!protocol) return; // TCP, TLS passthrough, ISTIO_MUTUAL: not yet served (warned at apply)
      for (const port of resolved.get(server.port.number) ?? [server.port.number]) {
        let entry = byPort.get(port);
        if (!entry) {
          entry = { protocol, serverPort: server.port.number, gateways: [], servers: [] };
          byPort.set(port, entry);
        }
        // As in Istio's gateway merge, a port keeps the protocol of its first server.
        if (entry.protocol !== protocol) continue;
        const id = `${gw.metadata.namespace}/${gw.metadata.name}`;
        if (!entry.gateways.includes(id)) entry.gateways.push(id);
        entry.servers.push({ gw, index: i, redirect: server.tls?.httpsRedirect === true });
      }
    });
  }
  const listeners: GatewayListener[] = [];
  const tables: RouteTable[] = [];
  for (const [port, entry] of [...byPort].sort((a, b) => a[0] - b[0])) {
    const jwt = jwtRules(index, { node, targets: entry.gateways });
    const authorization = authorizationFor(index, node, entry.gateways);
    addExtAuthzCluster(clusters, extAuthzCluster(index, authorization?.extAuthz));
    const tail = {
      gateways: entry.gateways,
      ...(jwt && { jwtRules: jwt }),
      ...(authorization && { authorization }),
    };
    const head = { name: `0.0.0.0_${port}`, type: 'gateway' as const, port };
    if (entry.protocol === 'HTTP') {
      const name = `http.${entry.serverPort}`;
      tables.push(routeTable(index, node, clusters, name, entry.serverPort, entry.servers));
      listeners.push({ ...head, protocol: 'HTTP', routeTable: name, ...tail });
      continue;
    }
    const tls: GatewayTlsServer[] = [];
    for (const bound of entry.servers) {
      const server = bound.gw.spec.servers[bound.index];
      const t = gatewayTlsServer(index, node, bound.gw, bound.index);
      tables.push(routeTable(index, node, clusters, t.routeTable, server.port.number, [bound]));
      tls.push(t);
    }
    listeners.push({ ...head, protocol: 'HTTPS', routeTable: tls[0].routeTable, tls, ...tail });
  }
  return { listeners, tables };
}

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

/**
 * The routes of every VirtualService bound to these servers and exported to the gateway's namespace,
 * merged per host in age order, as gateways merge them. A host of an `httpsRedirect` server answers every request with a 301 to https
 * (Envoy's `require_tls: ALL`), whether or not a VirtualService routes it.
 */
function routeTable(
  index: MeshIndex,
  node: ProxyNode,
  clusters: ClusterSet,
  name: string,
  port: number,
  servers: BoundServer[],
): RouteTable {
  const hosts = new Map<string, Route[]>();
  const redirected = new Map<string, string>();
  for (const vs of index.virtualServices) {
    if (!virtualServiceVisible(index, vs, node.namespace)) continue;
    for (const { gw, index: i, redirect } of servers) {
      if (!bindsTo(vs, gw)) continue;
      for (const raw of vs.spec.hosts ?? []) {
        const host = raw === '*' ? '*' : resolveHost(raw, vs.metadata.namespace);
        if (!serverAdmits(gw.spec.servers[i].hosts, vs, host)) continue;
        if (redirect) redirected.set(host, origin(gw, i));
        const scope = { node, gateway: `${gw.metadata.namespace}/${gw.metadata.name}`, port };
        hosts.set(host, [...(hosts.get(host) ?? []), ...vsRoutes(vs, clusters, index, scope)]);
      }
    }
  }
  for (const { gw, index: i, redirect } of servers) {
    if (!redirect) continue;
    for (const h of gw.spec.servers[i].hosts) {
      const host = (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h).toLowerCase();
      if (!hosts.has(host)) hosts.set(host, []);
      if (!redirected.has(host)) redirected.set(host, origin(gw, i));
    }
  }
  const virtualHosts = [...hosts].map(([host, routes]) => {
    const by = redirected.get(host);
    return {
      name: `${host}:${port}`,
      domains: host === '*' ? ['*'] : [host, `${host}:${port}`],
      routes: by ? [httpsRedirect(by)] : routes,
    };
  });
  return { name, virtualHosts };
}

function origin(gw: Resource<GatewaySpec>, i: number): string {
  return `Gateway ${gw.metadata.namespace}/${gw.metadata.name} servers[${i}]`;
}

function httpsRedirect(origin: string): Route {
  return {
    name: 'https-redirect',
    origin: `${origin} tls.httpsRedirect`,
    matches: [],
    action: { type: 'redirect', status: 301, scheme: 'https' },
  };
}
