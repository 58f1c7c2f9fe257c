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
import type { DeltaList, SnapshotDelta } from './protocol.ts';
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

/**
 * What compile works out once per mesh index and shares between proxies: clusters (they do not
 * depend on who looks at them), each service's VirtualService, each proxy's inbound services, and the
 * shared part of the snapshots themselves, by view key. Keyed by the index, which is immutable, so
 * compile stays a pure function of (index, node): the memo only saves repeating the same work.
 */
interface Memo {
  clusters: Map<string, Cluster>;
  views: Map<string, View>;
  /** VirtualServices that apply to sidecars, oldest first. */
  meshVs: Resource<VirtualServiceSpec>[];
  /**
   * Services sorted by FQDN, each with the VirtualService that wins its host for sidecars and whether
   * that VirtualService's routes depend on who asks (sourceLabels, sourceNamespace).
   */
  sidecarServices: { svc: MeshService; vs?: Resource<VirtualServiceSpec>; scoped: boolean }[];
  /**
   * `fqdn:port|same` or `|other` (is the proxy in the service's namespace?) → a sidecar's virtual host
   * for it and the clusters its routes use, when the routes depend on no proxy.
   */
  virtualHosts: Map<string, { virtualHost: VirtualHost; clusters: string[] }>;
  /** Every label key some VirtualService's sourceLabels tests: a sidecar's view depends on no other. */
  sourceLabelKeys: string[];
  /** Proxy id → the service ports it serves (sidecar inbound). */
  inbound: Map<string, InboundService[]>;
}

const memos = new WeakMap<MeshIndex, Memo>();

/** Does any rule of the VirtualService depend on the calling proxy (sourceLabels, sourceNamespace)? */
function sourceScoped(vs: Resource<VirtualServiceSpec>): boolean {
  return (vs.spec.http ?? []).some((rule) =>
    (rule.match ?? []).some((m) => m.sourceLabels !== undefined || m.sourceNamespace !== undefined),
  );
}

function memoOf(index: MeshIndex): Memo {
  let memo = memos.get(index);
  if (memo) return memo;
  const meshVs = index.virtualServices.filter(appliesToMesh);
  // Host patterns of the mesh VirtualServices, oldest VirtualService first: the first match wins.
  const exact = new Map<string, Resource<VirtualServiceSpec>>();
  const wildcards: { pattern: string; vs: Resource<VirtualServiceSpec>; age: number }[] = [];
  meshVs.forEach((vs, age) => {
    for (const h of vs.spec.hosts ?? []) {
      const pattern = resolveHost(h, vs.metadata.namespace);
      if (pattern.startsWith('*')) wildcards.push({ pattern, vs, age });
      else if (!exact.has(pattern)) exact.set(pattern, vs);
    }
  });
  const ageOf = new Map(meshVs.map((vs, i) => [vs, i]));
  const vsFor = (fqdn: string) => {
    let best = exact.get(fqdn);
    for (const w of wildcards) {
      if (best && ageOf.get(best)! <= w.age) break;
      if (hostMatches(w.pattern, fqdn)) best = w.vs;
    }
    return best;
  };
  const sidecarServices = [...index.services.values()]
    .sort((a, b) => (a.fqdn < b.fqdn ? -1 : 1))
    .map((svc) => {
      const vs = vsFor(svc.fqdn);
      return { svc, vs, scoped: vs ? sourceScoped(vs) : false };
    });
  const sourceLabelKeys = new Set<string>();
  for (const vs of index.virtualServices)
    for (const rule of vs.spec.http ?? [])
      for (const m of rule.match ?? [])
        for (const k of Object.keys(m.sourceLabels ?? {})) sourceLabelKeys.add(k);
  const inbound = new Map<string, InboundService[]>();
  for (const svc of index.services.values()) {
    for (const inst of svc.instances) {
      let list = inbound.get(inst.node.id);
      if (!list) {
        list = [];
        inbound.set(inst.node.id, list);
      }
      for (const [port, targetPort] of inst.targetPorts) list.push({ host: svc.fqdn, port, targetPort });
    }
  }
  for (const list of inbound.values())
    list.sort((a, b) => (a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1));
  memo = {
    clusters: new Map(),
    views: new Map(),
    virtualHosts: new Map(),
    meshVs,
    sidecarServices,
    sourceLabelKeys: [...sourceLabelKeys].sort(),
    inbound,
  };
  memos.set(index, memo);
  return memo;
}

/** What an index's memo holds: how many views, virtual hosts and clusters were compiled for it. */
export function compileStats(index: MeshIndex): { views: number; virtualHosts: number; clusters: number } {
  const memo = memoOf(index);
  return { views: memo.views.size, virtualHosts: memo.virtualHosts.size, clusters: memo.clusters.size };
}

/** Collects the clusters routes refer to, so a proxy gets exactly the clusters it can use. */
class ClusterSet {
  readonly clusters = new Map<string, Cluster>();
  private readonly index: MeshIndex;
  private readonly memo: Memo;
  constructor(index: MeshIndex) {
    this.index = index;
    this.memo = memoOf(index);
  }

  outbound(fqdn: string, port: number, subset: string | undefined): string {
    const name = outboundClusterName(port, subset, fqdn);
    if (this.clusters.has(name)) return name;
    let cluster = this.memo.clusters.get(name);
    if (!cluster) {
      cluster = outboundCluster(this.index, name, fqdn, port, subset);
      this.memo.clusters.set(name, cluster);
    }
    this.clusters.set(name, cluster);
    return name;
  }

  /** Adds a cluster another ClusterSet of the same index already built. */
  add(name: string): void {
    this.clusters.set(name, this.memo.clusters.get(name)!);
  }

  /** Sorted by name. */
  list(): Cluster[] {
    return [...this.clusters.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }
}

function outboundCluster(
  index: MeshIndex,
  name: string,
  fqdn: string,
  port: number,
  subset: string | undefined,
): Cluster {
  const svc = index.services.get(fqdn);
  const dr = index.destinationRules.get(fqdn);
  const subsetLabels = subset ? dr?.spec.subsets?.find((s) => s.name === subset)?.labels : undefined;
  const instances = svc?.instances.filter((i) => i.targetPorts.has(port)) ?? [];
  // A subset the DestinationRule does not define selects nothing: requests get 503 (no healthy upstream).
  const selected = subset
    ? subsetLabels
      ? instances.filter((i) => labelsMatch(subsetLabels, i.node.labels))
      : []
    : instances;
  const identities = [
    ...new Set(instances.map((i) => endpointIdentity(index.mesh.trustDomain, i.node))),
  ].sort();
  return {
    name,
    direction: 'outbound',
    service: fqdn,
    port,
    subset,
    origin: dr ? `DestinationRule ${dr.metadata.namespace}/${dr.metadata.name}` : undefined,
    lb: { type: 'ROUND_ROBIN' },
    tls: { mode: 'ISTIO_MUTUAL', sni: outboundSni(port, subset, fqdn), identities },
    endpoints: selected.map((i) => endpointOf(index, i.node)),
  };
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
  const memo = memoOf(index);
  const claimed = new Set<string>();
  const virtualHosts: VirtualHost[] = [];
  for (const { svc, vs, scoped } of memo.sidecarServices) {
    // Unless its routes depend on the proxy, a service port's virtual host differs between proxies
    // only in whether the short name is among its domains: built once per index for each case.
    const same = svc.namespace === node.namespace;
    for (const sp of svc.ports) {
      const name = `${svc.fqdn}:${sp.port}`;
      const key = `${name}|${same ? 'same' : 'other'}`;
      const hit = scoped ? undefined : memo.virtualHosts.get(key);
      if (hit) {
        virtualHosts.push(hit.virtualHost);
        for (const c of hit.clusters) clusters.add(c);
      } else {
        const used = new ClusterSet(index);
        const routes = vs
          ? vsRoutes(vs, used, index, { node, port: sp.port })
          : [defaultRoute(used, svc, sp.port)];
        const names = [...used.clusters.keys()];
        for (const c of names) clusters.add(c);
        const virtualHost = { name, domains: serviceDomains(svc.fqdn, sp.port, node.namespace), routes };
        virtualHosts.push(virtualHost);
        if (!scoped) memo.virtualHosts.set(key, { virtualHost, clusters: names });
      }
      if (vs) claimed.add(`${vs.metadata.namespace}/${vs.metadata.name}`);
    }
  }
  // VirtualServices for hosts that are not services (e.g. a name that only exists in the mesh).
  for (const vs of memo.meshVs) {
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
  return {
    name: 'inbound',
    type: 'inbound',
    ...inboundMtls(index.peerAuthentications, node),
    services: memoOf(index).inbound.get(node.id) ?? [],
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
      lb: { type: 'ROUND_ROBIN' as const },
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

/**
 * The part of a snapshot that proxies with the same view share: route tables and outbound clusters.
 * It is compiled, serialized and hashed once per mesh index and view; a proxy's own part (its name,
 * listeners, inbound clusters) is small.
 */
export interface SharedConfig {
  routeTables: RouteTable[];
  /** Sorted by name. */
  clusters: Cluster[];
  /** Content hash of both, part of every version that includes them. */
  hash: string;
}

/** A compiled snapshot kept in its two parts; `assembleSnapshot` gives the ProxySnapshot. */
export interface SnapshotParts {
  schema: number;
  version: string;
  revision: number;
  proxy: ProxySnapshot['proxy'];
  trustDomain: string;
  listeners: Listener[];
  shared: SharedConfig;
  /** This proxy's own clusters, after the shared ones (a sidecar's inbound clusters). */
  clusters: Cluster[];
}

interface View {
  shared: SharedConfig;
  /** A gateway's listeners (sidecars build theirs per proxy). */
  listeners?: GatewayListener[];
}

/**
 * Proxies with equal view keys get equal shared configs. A sidecar's outbound side depends on its
 * namespace (short names) and on the labels some sourceLabels match tests; a gateway's on its labels
 * (the Gateway selectors) and namespace.
 */
export function viewKey(index: MeshIndex, node: ProxyNode): string {
  if (node.role === 'gateway') {
    const labels = Object.keys(node.labels)
      .sort()
      .map((k) => [k, node.labels[k]]);
    return JSON.stringify(['gateway', node.namespace, labels]);
  }
  const labels = memoOf(index).sourceLabelKeys.map((k) => node.labels[k] ?? null);
  return JSON.stringify(['sidecar', node.namespace, labels]);
}

// Serialized pieces, cached by object: snapshot parts are never modified once compiled, and a virtual
// host or cluster is shared by every view (and so every proxy) of a mesh index that uses it.
const virtualHostJson = new WeakMap<VirtualHost, { json: string; hash: string }>();
const clusterJson = new WeakMap<Cluster, { json: string; hash: string }>();

function cachedJson<T extends object>(cache: WeakMap<T, { json: string; hash: string }>, value: T) {
  let entry = cache.get(value);
  if (!entry) {
    const json = JSON.stringify(value);
    entry = { json, hash: contentHash(json) };
    cache.set(value, entry);
  }
  return entry;
}

/** A hash of the shared part, from its pieces' hashes: a view costs little beyond what only it has. */
function sharedConfig(routeTables: RouteTable[], clusters: Cluster[]): SharedConfig {
  const hashes: string[] = [];
  for (const t of routeTables) {
    for (const vh of t.virtualHosts) hashes.push(cachedJson(virtualHostJson, vh).hash);
    hashes.push(`|${JSON.stringify(t.name)}`);
  }
  hashes.push('|');
  for (const c of clusters) hashes.push(cachedJson(clusterJson, c).hash);
  return { routeTables, clusters, hash: contentHash(hashes.join('\n')) };
}

/**
 * `JSON.stringify` of the shared route tables and of the shared clusters, joined from the pieces
 * serialized when the version was computed. Built when the shared part is first encoded, not kept.
 */
export function sharedConfigJson(shared: SharedConfig): { routeTables: string; clusters: string } {
  const tables = shared.routeTables.map((t) => {
    const hosts = t.virtualHosts.map((vh) => cachedJson(virtualHostJson, vh).json);
    return `{"name":${JSON.stringify(t.name)},"virtualHosts":[${hosts.join(',')}]}`;
  });
  const clusters = shared.clusters.map((c) => cachedJson(clusterJson, c).json);
  return { routeTables: `[${tables.join(',')}]`, clusters: `[${clusters.join(',')}]` };
}

/** A shared part as changes to another one (see SnapshotDelta); its clusters come before the proxy's own. */
export interface SharedDelta {
  routeTables: SnapshotDelta['routeTables'];
  clusters: DeltaList<Cluster>;
}

/** (new shared part → (base → delta)): every proxy of a view moves between the same two parts. */
const sharedDeltas = new WeakMap<SharedConfig, WeakMap<SharedConfig, SharedDelta | null>>();

/**
 * The shared part `next` as changes to `base`, or undefined when it reuses nothing of it (a full
 * snapshot is then as small). Pieces are matched by the hashes of their JSON, cached when the versions
 * were computed. Worked out once per pair of shared parts, however many proxies make that move.
 */
export function sharedDelta(base: SharedConfig, next: SharedConfig): SharedDelta | undefined {
  let byBase = sharedDeltas.get(next);
  if (!byBase) {
    byBase = new WeakMap();
    sharedDeltas.set(next, byBase);
  }
  let delta = byBase.get(base);
  if (delta === undefined) {
    delta = diffShared(base, next);
    byBase.set(base, delta);
  }
  return delta ?? undefined;
}

function diffShared(base: SharedConfig, next: SharedConfig): SharedDelta | null {
  let reused = false;
  const diff = <T extends object>(cache: WeakMap<T, { json: string; hash: string }>, from: T[], to: T[]) => {
    // The same hash means the same content, as for versions.
    const at = new Map<string, number>();
    for (const [i, p] of from.entries()) at.set(cachedJson(cache, p).hash, i);
    const list: DeltaList<T> = [];
    let run: [number, number] | undefined;
    for (const piece of to) {
      const j = at.get(cachedJson(cache, piece).hash);
      if (j === undefined) {
        list.push(piece);
        run = undefined;
      } else if (run && run[0] + run[1] === j) {
        run[1]++;
      } else {
        run = [j, 1];
        list.push(run);
        reused = true;
      }
    }
    return list;
  };
  const tables = new Map(base.routeTables.map((t) => [t.name, t.virtualHosts]));
  const routeTables = next.routeTables.map((t) => ({
    name: t.name,
    virtualHosts: diff(virtualHostJson, tables.get(t.name) ?? [], t.virtualHosts),
  }));
  const clusters = diff(clusterJson, base.clusters, next.clusters);
  return reused ? { routeTables, clusters } : null;
}

/** A shared delta's JSON as `sharedConfigJson` gives a shared part's; the pieces' JSON is reused. */
export function sharedDeltaJson(delta: SharedDelta): { routeTables: string; clusters: string } {
  const list = <T extends object>(cache: WeakMap<T, { json: string; hash: string }>, items: DeltaList<T>) =>
    `[${items.map((item) => (Array.isArray(item) ? `[${item}]` : cachedJson(cache, item).json)).join(',')}]`;
  const tables = delta.routeTables.map(
    (t) => `{"name":${JSON.stringify(t.name)},"virtualHosts":${list(virtualHostJson, t.virtualHosts)}}`,
  );
  return { routeTables: `[${tables.join(',')}]`, clusters: list(clusterJson, delta.clusters) };
}

function viewOf(index: MeshIndex, node: ProxyNode): View {
  const memo = memoOf(index);
  const key = viewKey(index, node);
  let view = memo.views.get(key);
  if (view) return view;
  // Compiled for the first proxy with this key; by construction it gives every other one the same.
  const clusters = new ClusterSet(index);
  if (node.role === 'gateway') {
    const gw = gatewayConfig(index, node, clusters);
    view = { shared: sharedConfig(gw.tables, clusters.list()), listeners: gw.listeners };
  } else {
    const outbound = sidecarOutbound(index, node, clusters);
    view = { shared: sharedConfig([outbound], clusters.list()) };
  }
  memo.views.set(key, view);
  return view;
}

export function compileParts(index: MeshIndex, node: ProxyNode): SnapshotParts {
  const view = viewOf(index, node);
  const listeners: Listener[] =
    node.role === 'gateway'
      ? view.listeners!
      : [{ name: 'outbound', type: 'outbound', routeTable: 'outbound' }, sidecarInbound(index, node)];
  const own = {
    schema: SNAPSHOT_SCHEMA_VERSION,
    proxy: {
      id: node.id,
      role: node.role,
      namespace: node.namespace,
      identity: endpointIdentity(index.mesh.trustDomain, node),
    },
    trustDomain: index.mesh.trustDomain,
    listeners,
    clusters: node.role === 'gateway' ? [] : inboundClusters(node),
  };
  // Equal versions are equal snapshots: the hash covers this proxy's part and the shared part's hash.
  const version = contentHash(`${JSON.stringify(own)}\n${view.shared.hash}`);
  return { ...own, version, revision: index.revision, shared: view.shared };
}

/** The ProxySnapshot the parts make up (shared arrays are referenced, not copied). */
export function assembleSnapshot(p: SnapshotParts): ProxySnapshot {
  return {
    schema: p.schema,
    proxy: p.proxy,
    trustDomain: p.trustDomain,
    listeners: p.listeners,
    routeTables: p.shared.routeTables,
    clusters: p.clusters.length ? p.shared.clusters.concat(p.clusters) : p.shared.clusters,
    version: p.version,
    revision: p.revision,
  };
}

export function compileProxy(index: MeshIndex, node: ProxyNode): ProxySnapshot {
  return assembleSnapshot(compileParts(index, node));
}
