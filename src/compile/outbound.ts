// The sidecar's outbound route table: one virtual host per service port and per routed ServiceEntry
// host port, with the VirtualService that wins the host for sidecars (the `mesh` gateway), or a
// default route without one.
import type { Resource } from '../api/resource.ts';
import { ClusterSet } from './clusters.ts';
import { hostMatches, resolveHost, serviceDomains } from './hosts.ts';
import type { MeshIndex, MeshService, VirtualServiceSpec } from './mesh-index.ts';
import { portProxying } from './protocol.ts';
import { defaultRoute, vsRoutes } from './routes.ts';
import { type EntryPort, routedEntries } from './service-entries.ts';
import type { ProxyNode, RouteTable, VirtualHost } from './snapshot.ts';
import { l4Routing } from './tcp-routes.ts';

/**
 * What the sidecar outbound side works out once per mesh index and shares between proxies. Keyed by
 * the index, which is immutable, so compile stays a pure function of (index, node).
 */
interface OutboundMemo {
  /** VirtualServices that apply to sidecars, oldest first. */
  meshVs: Resource<VirtualServiceSpec>[];
  /**
   * Services sorted by FQDN, each with the VirtualService that wins its host for sidecars and whether
   * that VirtualService's routes depend on who asks (sourceLabels, sourceNamespace).
   */
  sidecarServices: { svc: MeshService; vs?: Resource<VirtualServiceSpec>; scoped: boolean }[];
  /** ServiceEntry host ports the same way, in host order. */
  sidecarEntries: { entry: EntryPort; vs?: Resource<VirtualServiceSpec>; scoped: boolean }[];
  /**
   * `fqdn:port|same` or `|other` (is the proxy in the service's namespace?) → a sidecar's virtual host
   * for it and the clusters its routes use, when the routes depend on no proxy.
   */
  virtualHosts: Map<string, { virtualHost: VirtualHost; clusters: string[] }>;
}

const memos = new WeakMap<MeshIndex, OutboundMemo>();

/** Does any rule of the VirtualService depend on the calling proxy (sourceLabels, sourceNamespace)? */
function sourceScoped(vs: Resource<VirtualServiceSpec>): boolean {
  const { http = [], tcp = [], tls = [] } = vs.spec;
  return [...http, ...tcp, ...tls].some((rule) =>
    (rule.match ?? []).some((m) => m.sourceLabels !== undefined || m.sourceNamespace !== undefined),
  );
}

function appliesToMesh(vs: Resource<VirtualServiceSpec>): boolean {
  const gws = vs.spec.gateways;
  return !gws || gws.length === 0 || gws.includes('mesh');
}

function memoOf(index: MeshIndex): OutboundMemo {
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
  const sidecarEntries = [...routedEntries(index).values()].map((entry) => {
    const vs = vsFor(entry.host);
    return { entry, vs, scoped: vs ? sourceScoped(vs) : false };
  });
  memo = { meshVs, sidecarServices, sidecarEntries, virtualHosts: new Map() };
  memos.set(index, memo);
  return memo;
}

/** How many sidecar virtual hosts were built for an index (shared ones once). */
export function virtualHostCount(index: MeshIndex): number {
  return memos.get(index)?.virtualHosts.size ?? 0;
}

export function sidecarOutbound(index: MeshIndex, node: ProxyNode, clusters: ClusterSet): RouteTable {
  const memo = memoOf(index);
  const claimed = new Set<string>();
  const virtualHosts: VirtualHost[] = [];
  /** A host port's virtual host, shared through the memo under `key` unless its routes are scoped. */
  const add = (key: string, scoped: boolean, build: (used: ClusterSet) => VirtualHost) => {
    const hit = scoped ? undefined : memo.virtualHosts.get(key);
    if (hit) {
      virtualHosts.push(hit.virtualHost);
      for (const c of hit.clusters) clusters.add(c);
      return;
    }
    const used = new ClusterSet(index);
    const virtualHost = build(used);
    const names = [...used.clusters.keys()];
    for (const c of names) clusters.add(c);
    virtualHosts.push(virtualHost);
    if (!scoped) memo.virtualHosts.set(key, { virtualHost, clusters: names });
  };
  for (const { svc, vs, scoped } of memo.sidecarServices) {
    // Unless its routes depend on the proxy, a service port's virtual host differs between proxies
    // only in whether the short name is among its domains: built once per index for each case.
    const same = svc.namespace === node.namespace;
    for (const sp of svc.ports) {
      const name = `${svc.fqdn}:${sp.port}`;
      const owner = `Service ${svc.namespace}/${svc.name}`;
      const proxying = portProxying(sp.protocol);
      add(`${name}|${same ? 'same' : 'other'}`, scoped, (used) => {
        const scope = { node, port: sp.port };
        const l4 = l4Routing(proxying, vs, used, index, scope, svc.fqdn, owner);
        return {
          name,
          domains: serviceDomains(svc.fqdn, sp.port, node.namespace),
          // A TCP or TLS port has no HTTP routes; a sniffed one has both.
          routes:
            proxying === 'TCP' || proxying === 'TLS'
              ? []
              : vs
                ? vsRoutes(vs, used, index, scope)
                : [defaultRoute(index, used, svc.fqdn, sp.port, owner)],
          ...(l4 ? { l4 } : {}),
        };
      });
      if (vs) claimed.add(`${vs.metadata.namespace}/${vs.metadata.name}`);
    }
  }
  for (const { entry: e, vs, scoped } of memo.sidecarEntries) {
    const name = `${e.host}:${e.port}`;
    const owner = `ServiceEntry ${e.entry.metadata.namespace}/${e.entry.metadata.name}`;
    add(`${name}|entry`, scoped, (used) => ({
      name,
      domains: [e.host, name],
      routes: vs
        ? vsRoutes(vs, used, index, { node, port: e.port })
        : [defaultRoute(index, used, e.host, e.port, owner)],
    }));
    if (vs) claimed.add(`${vs.metadata.namespace}/${vs.metadata.name}`);
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
