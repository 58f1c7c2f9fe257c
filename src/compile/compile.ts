// (mesh index, proxy) → ProxySnapshot. Pure: no I/O, no clock, no randomness; the same input always
// gives the same snapshot and the same version.

import type { HTTPRoute, StringMatch as StringMatchSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { parseDuration } from '../api/schema.ts';
import { contentHash } from './hash.ts';
import { hostMatches, outboundClusterName, outboundSni, resolveHost, serviceDomains } from './hosts.ts';
import {
  buildMeshIndex,
  type CompileInput,
  endpointIdentity,
  endpointOf,
  type GatewaySpec,
  labelsMatch,
  type MeshIndex,
  type MeshService,
  type VirtualServiceSpec,
} from './index.ts';
import { inboundMtls } from './peer-authentication.ts';
import type {
  Cluster,
  GatewayListener,
  HeaderMatch,
  InboundService,
  Listener,
  ProxyNode,
  ProxySnapshot,
  Route,
  RouteAction,
  RouteMatch,
  RouteTable,
  StringMatch,
  VirtualHost,
} from './snapshot.ts';
import { SNAPSHOT_SCHEMA_VERSION } from './snapshot.ts';

export function compile(input: CompileInput, node: ProxyNode): ProxySnapshot {
  return compileProxy(buildMeshIndex(input), node);
}

/** Collects the clusters routes refer to, so a proxy gets exactly the clusters it can use. */
class ClusterSet {
  readonly clusters = new Map<string, Cluster>();
  private readonly index: MeshIndex;
  constructor(index: MeshIndex) {
    this.index = index;
  }

  outbound(fqdn: string, port: number, subset: string | undefined): string {
    const name = outboundClusterName(port, subset, fqdn);
    if (this.clusters.has(name)) return name;
    const svc = this.index.services.get(fqdn);
    const dr = this.index.destinationRules.get(fqdn);
    const subsetLabels = subset ? dr?.spec.subsets?.find((s) => s.name === subset)?.labels : undefined;
    const instances = svc?.instances.filter((i) => i.targetPorts.has(port)) ?? [];
    // A subset the DestinationRule does not define selects nothing: requests get 503 (no healthy upstream).
    const selected = subset
      ? subsetLabels
        ? instances.filter((i) => labelsMatch(subsetLabels, i.node.labels))
        : []
      : instances;
    const identities = [
      ...new Set(instances.map((i) => endpointIdentity(this.index.mesh.trustDomain, i.node))),
    ].sort();
    this.clusters.set(name, {
      name,
      direction: 'outbound',
      service: fqdn,
      port,
      subset,
      origin: dr ? `DestinationRule ${dr.metadata.namespace}/${dr.metadata.name}` : undefined,
      lb: 'ROUND_ROBIN',
      tls: { mode: 'ISTIO_MUTUAL', sni: outboundSni(port, subset, fqdn), identities },
      endpoints: selected.map((i) => endpointOf(this.index, i.node)),
    });
    return name;
  }
}

function stringMatch(m: StringMatchSpec): StringMatch {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { regex: m.regex };
  return {}; // `{}`: present with any value
}

function headerMatches(map: Record<string, StringMatchSpec> | undefined): HeaderMatch[] {
  return (
    Object.entries(map ?? {})
      // Istio ignores these pseudo-header keys in `headers`: they have their own match fields.
      .filter(([k]) => !['uri', 'scheme', 'method', 'authority'].includes(k.toLowerCase()))
      .map(([k, v]) => ({ name: k.toLowerCase(), match: stringMatch(v) }))
  );
}

/** Who a route is being compiled for: the source-scoped match fields are settled here. */
interface RouteScope {
  node: ProxyNode;
  /** `ns/name` of the Gateway whose listener this is; undefined for the sidecar (`mesh`). */
  gateway?: string;
  /** The port requests on this virtual host were addressed to, when known. */
  port?: number;
}

function matchGatewayApplies(gateways: string[], vsNamespace: string, scope: RouteScope): boolean {
  if (!scope.gateway) return gateways.includes('mesh');
  return gateways.some((g) => (g.includes('/') ? g : `${vsNamespace}/${g}`) === scope.gateway);
}

/**
 * The runtime matches of a rule, or undefined when every match block is out of scope for this proxy:
 * such a rule must not become a catch-all, it simply does not exist here.
 */
function routeMatches(rule: HTTPRoute, vsNamespace: string, scope: RouteScope): RouteMatch[] | undefined {
  if (!rule.match || rule.match.length === 0) return [];
  const out: RouteMatch[] = [];
  for (const m of rule.match) {
    if (m.gateways && !matchGatewayApplies(m.gateways, vsNamespace, scope)) continue;
    if (m.sourceLabels && !labelsMatch(m.sourceLabels, scope.node.labels)) continue;
    if (m.sourceNamespace && m.sourceNamespace !== scope.node.namespace) continue;
    if (m.port !== undefined && scope.port !== undefined && m.port !== scope.port) continue;
    const rm: RouteMatch = {};
    if (m.uri) rm.uri = stringMatch(m.uri);
    if (m.ignoreUriCase) rm.ignoreUriCase = true;
    if (m.scheme) rm.scheme = stringMatch(m.scheme);
    if (m.method) rm.method = stringMatch(m.method);
    if (m.authority) rm.authority = stringMatch(m.authority);
    const headers = headerMatches(m.headers);
    if (headers.length) rm.headers = headers;
    const without = headerMatches(m.withoutHeaders);
    if (without.length) rm.withoutHeaders = without;
    const query = Object.entries(m.queryParams ?? {}).map(([k, v]) => ({ name: k, match: stringMatch(v) }));
    if (query.length) rm.queryParams = query;
    if (m.port !== undefined && scope.port === undefined) rm.port = m.port;
    out.push(rm);
  }
  return out.length ? out : undefined;
}

/**
 * Routes for one VirtualService as seen by one proxy on one port. A destination without a port goes
 * to the service's only port, or to the port the request was addressed to.
 */
function vsRoutes(
  vs: Resource<VirtualServiceSpec>,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope,
): Route[] {
  const ns = vs.metadata.namespace;
  const routes: Route[] = [];
  (vs.spec.http ?? []).forEach((rule, i) => {
    const matches = routeMatches(rule, ns, scope);
    if (!matches) return;
    const name = `${ns}/${vs.metadata.name}${rule.name ? `.${rule.name}` : ''}#${i}`;
    const origin = `VirtualService ${ns}/${vs.metadata.name} http[${i}]`;
    routes.push({
      name,
      origin,
      matches,
      action: routeAction(rule, ns, clusters, index, scope.port, origin),
    });
  });
  return routes;
}

function routeAction(
  rule: HTTPRoute,
  ns: string,
  clusters: ClusterSet,
  index: MeshIndex,
  listenPort: number | undefined,
  origin: string,
): RouteAction {
  if (rule.directResponse) {
    const body = rule.directResponse.body?.string ?? decodeBase64(rule.directResponse.body?.bytes);
    return { type: 'direct', status: rule.directResponse.status, body };
  }
  if (rule.redirect) {
    const r = rule.redirect;
    return {
      type: 'redirect',
      status: r.redirectCode ?? 301,
      ...(r.uri !== undefined ? { uri: r.uri } : {}),
      ...(r.authority !== undefined ? { authority: r.authority } : {}),
      ...(r.scheme !== undefined ? { scheme: r.scheme } : {}),
      ...(r.port !== undefined
        ? { port: r.port }
        : r.derivePort === 'FROM_PROTOCOL_DEFAULT'
          ? { port: 'protocol-default' as const }
          : {}),
    };
  }
  const dests = rule.route ?? [];
  if (dests.length === 0) {
    // Only a delegate can leave a rule without an action; delegation is not served yet (warned at apply).
    return {
      type: 'direct',
      status: 500,
      body: `${origin} delegates to another VirtualService, which Trellis does not serve yet\n`,
    };
  }
  const weighted = dests.map((d) => {
    const fqdn = resolveHost(d.destination.host, ns);
    const svc = index.services.get(fqdn);
    const port =
      d.destination.port?.number ??
      (svc?.ports.length === 1 ? svc.ports[0].port : (listenPort ?? svc?.ports[0]?.port ?? 80));
    // One destination takes all traffic whatever its weight; otherwise weights are relative.
    const weight = dests.length === 1 ? 100 : (d.weight ?? 0);
    return { cluster: clusters.outbound(fqdn, port, d.destination.subset), weight };
  });
  const timeoutMs = rule.timeout ? parseDuration(rule.timeout) : undefined;
  return {
    type: 'forward',
    clusters: weighted.filter((w) => w.weight > 0),
    ...(timeoutMs ? { timeoutMs } : {}),
  };
}

function decodeBase64(b?: string): string | undefined {
  if (b === undefined) return undefined;
  return new TextDecoder().decode(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
}

function defaultRoute(clusters: ClusterSet, svc: MeshService, port: number): Route {
  return {
    name: 'default',
    origin: `Service ${svc.namespace}/${svc.name} (no VirtualService)`,
    matches: [],
    action: {
      type: 'forward',
      clusters: [{ cluster: clusters.outbound(svc.fqdn, port, undefined), weight: 100 }],
    },
  };
}

function appliesToMesh(vs: Resource<VirtualServiceSpec>): boolean {
  const gws = vs.spec.gateways;
  return !gws || gws.length === 0 || gws.includes('mesh');
}

/** The sidecar's outbound route table: one virtual host per service port, VirtualServices applied. */
function sidecarOutbound(index: MeshIndex, node: ProxyNode, clusters: ClusterSet): RouteTable {
  const meshVs = index.virtualServices.filter(appliesToMesh);
  const claimed = new Set<string>();
  const virtualHosts: VirtualHost[] = [];
  const vsFor = (fqdn: string) =>
    meshVs.find((vs) =>
      (vs.spec.hosts ?? []).some((h) => hostMatches(resolveHost(h, vs.metadata.namespace), fqdn)),
    );

  for (const svc of [...index.services.values()].sort((a, b) => (a.fqdn < b.fqdn ? -1 : 1))) {
    const vs = vsFor(svc.fqdn);
    for (const sp of svc.ports) {
      virtualHosts.push({
        name: `${svc.fqdn}:${sp.port}`,
        domains: serviceDomains(svc.fqdn, sp.port, node.namespace),
        routes: vs
          ? vsRoutes(vs, clusters, index, { node, port: sp.port })
          : [defaultRoute(clusters, svc, sp.port)],
      });
      if (vs) claimed.add(`${vs.metadata.namespace}/${vs.metadata.name}`);
    }
  }
  // VirtualServices for hosts that are not services (e.g. a name that only exists in the mesh).
  for (const vs of meshVs) {
    const id = `${vs.metadata.namespace}/${vs.metadata.name}`;
    if (claimed.has(id)) continue;
    const hosts = (vs.spec.hosts ?? [])
      .map((h) => resolveHost(h, vs.metadata.namespace))
      .filter((h) => !index.services.has(h));
    if (hosts.length === 0) continue;
    virtualHosts.push({ name: id, domains: hosts, routes: vsRoutes(vs, clusters, index, { node }) });
  }
  return { name: 'outbound', virtualHosts };
}

function sidecarInbound(index: MeshIndex, node: ProxyNode): Listener {
  const services: InboundService[] = [];
  for (const svc of index.services.values()) {
    const inst = svc.instances.find((i) => i.node.id === node.id);
    if (!inst) continue;
    for (const [port, targetPort] of inst.targetPorts) services.push({ host: svc.fqdn, port, targetPort });
  }
  services.sort((a, b) => (a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1));
  return {
    name: 'inbound',
    type: 'inbound',
    ...inboundMtls(index.peerAuthentications, node),
    services,
    ports: node.ports.map((p) => p.port).sort((a, b) => a - b),
  };
}

function inboundClusters(node: ProxyNode): Cluster[] {
  return node.ports
    .map((p) => p.port)
    .sort((a, b) => a - b)
    .map((port) => ({
      name: `inbound|${port}||`,
      direction: 'inbound' as const,
      port,
      lb: 'ROUND_ROBIN' as const,
      tls: { mode: 'DISABLE' as const },
      // The app beside the proxy; the proxy maps the workload port to where the app really listens.
      endpoints: [{ address: '127.0.0.1', port, healthy: node.healthy }],
    }));
}

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

function gatewayConfig(
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
    // Gateways merge the routes of every VirtualService for a host, in age order.
    const hosts = new Map<string, Route[]>();
    for (const vs of index.virtualServices) {
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
    listeners.push({
      name: `0.0.0.0_${port}`,
      type: 'gateway',
      port,
      protocol: 'HTTP',
      routeTable: tableName,
      gateways: entry.gateways,
    });
  }
  return { listeners, tables };
}

export function compileProxy(index: MeshIndex, node: ProxyNode): ProxySnapshot {
  const clusters = new ClusterSet(index);
  let listeners: Listener[];
  let routeTables: RouteTable[];
  let extraClusters: Cluster[] = [];
  if (node.role === 'gateway') {
    const gw = gatewayConfig(index, node, clusters);
    listeners = gw.listeners;
    routeTables = gw.tables;
  } else {
    routeTables = [sidecarOutbound(index, node, clusters)];
    listeners = [{ name: 'outbound', type: 'outbound', routeTable: 'outbound' }, sidecarInbound(index, node)];
    extraClusters = inboundClusters(node);
  }
  const body = {
    schema: SNAPSHOT_SCHEMA_VERSION,
    proxy: {
      id: node.id,
      role: node.role,
      namespace: node.namespace,
      identity: endpointIdentity(index.mesh.trustDomain, node),
    },
    trustDomain: index.mesh.trustDomain,
    listeners,
    routeTables,
    clusters: [...clusters.clusters.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .concat(extraClusters),
  };
  return { ...body, version: contentHash(JSON.stringify(body)), revision: index.revision };
}
