// The sidecar's outbound route table: one virtual host per service port and per routed ServiceEntry
// host port, with the VirtualService that wins the host for sidecars (the `mesh` gateway), or a
// default route without one.
import type { Resource } from '../api/resource.ts';
import { type ClusterRef, ClusterSet } from './clusters.ts';
import { entryVisible, serviceVisible, virtualServiceVisible } from './export-to.ts';
import { hostMatches, resolveHost, serviceDomains } from './hosts.ts';
import type { MeshIndex, MeshService, VirtualServiceSpec } from './mesh-index.ts';
import { outboundTrafficPolicyHost } from './outbound-traffic-policy.ts';
import { portProxying } from './protocol.ts';
import { defaultRoute, vsRoutes } from './routes.ts';
import { type EntryPort, entryDomains, routedEntries } from './service-entries.ts';
import { inScope, type SidecarScope } from './sidecar-scope.ts';
import type { ProxyNode, RouteTable, VirtualHost } from './snapshot.ts';
import { l4Routing } from './tcp-routes.ts';

/** A VirtualService that may win a host, and whether its routes depend on who asks. */
interface Candidate {
  vs: Resource<VirtualServiceSpec>;
  /** `namespace/name`. */
  id: string;
  scoped: boolean;
}

/**
 * What the sidecar outbound side works out once per mesh index and shares between proxies. Keyed by
 * the index, which is immutable, so compile stays a pure function of (index, node).
 */
interface OutboundMemo {
  /** VirtualServices that apply to sidecars, oldest first. */
  meshVs: Resource<VirtualServiceSpec>[];
  /**
   * Services sorted by FQDN, each with the VirtualServices for its host, oldest first: the first one
   * the proxy sees (its Sidecar may hide some) wins the host.
   */
  sidecarServices: { svc: MeshService; candidates: Candidate[] }[];
  /** ServiceEntry host ports the same way, in host order. */
  sidecarEntries: { entry: EntryPort; candidates: Candidate[] }[];
  /**
   * `fqdn:port|same` or `|other` (is the proxy in the service's namespace?) and the winning
   * VirtualService → a sidecar's virtual host for it and the clusters its routes name, when the routes
   * depend on no proxy. The clusters are named, not shared: which DestinationRule shapes one depends
   * on the proxy's namespace.
   */
  virtualHosts: Map<string, { virtualHost: VirtualHost; clusters: ClusterRef[] }>;
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
  // Host patterns of the mesh VirtualServices, by age: the oldest that matches a host wins it.
  const exact = new Map<string, Candidate[]>();
  const wildcards: { pattern: string; candidate: Candidate }[] = [];
  const age = new Map<Candidate, number>();
  meshVs.forEach((vs, i) => {
    const candidate = { vs, id: `${vs.metadata.namespace}/${vs.metadata.name}`, scoped: sourceScoped(vs) };
    age.set(candidate, i);
    for (const h of vs.spec.hosts ?? []) {
      const pattern = resolveHost(h, vs.metadata.namespace);
      if (pattern.startsWith('*')) wildcards.push({ pattern, candidate });
      else {
        const list = exact.get(pattern);
        if (!list) exact.set(pattern, [candidate]);
        else if (list.at(-1) !== candidate) list.push(candidate);
      }
    }
  });
  const candidatesFor = (fqdn: string): Candidate[] => {
    const found = new Set(exact.get(fqdn));
    for (const w of wildcards) if (hostMatches(w.pattern, fqdn)) found.add(w.candidate);
    return [...found].sort((a, b) => age.get(a)! - age.get(b)!);
  };
  const sidecarServices = [...index.services.values()]
    .sort((a, b) => (a.fqdn < b.fqdn ? -1 : 1))
    .map((svc) => ({ svc, candidates: candidatesFor(svc.fqdn) }));
  const sidecarEntries = [...routedEntries(index).values()].map((entry) => ({
    entry,
    candidates: candidatesFor(entry.host),
  }));
  memo = { meshVs, sidecarServices, sidecarEntries, virtualHosts: new Map() };
  memos.set(index, memo);
  return memo;
}

/** How many sidecar virtual hosts were built for an index (shared ones once). */
export function virtualHostCount(index: MeshIndex): number {
  return memos.get(index)?.virtualHosts.size ?? 0;
}

/**
 * The VirtualService that wins a host port for this proxy: the oldest exported to its namespace that
 * its Sidecar lets it see.
 */
function winner(
  index: MeshIndex,
  candidates: Candidate[],
  node: ProxyNode,
  scope: SidecarScope | undefined,
  port: number,
): Candidate | undefined {
  return candidates.find(
    (c) =>
      virtualServiceVisible(index, c.vs, node.namespace) &&
      inScope(scope, c.vs.metadata.namespace, vsHosts(c.vs), port),
  );
}

function vsHosts(vs: Resource<VirtualServiceSpec>): string[] {
  return (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace));
}

/**
 * `scope` is the proxy's Sidecar, if one applies: host ports it does not import get no virtual host
 * (a request for them is for an unknown host), and VirtualServices it does not import win no host.
 */
export function sidecarOutbound(
  index: MeshIndex,
  node: ProxyNode,
  clusters: ClusterSet,
  scope?: SidecarScope,
): RouteTable {
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
    const used = new ClusterSet(index, node.namespace);
    const virtualHost = build(used);
    const refs = [...used.refs.values()];
    for (const c of refs) clusters.add(c);
    virtualHosts.push(virtualHost);
    if (!scoped) memo.virtualHosts.set(key, { virtualHost, clusters: refs });
  };
  for (const { svc, candidates } of memo.sidecarServices) {
    // Unless its routes depend on the proxy, a service port's virtual host differs between proxies
    // only in whether the short name is among its domains: built once per index for each case.
    const same = svc.namespace === node.namespace;
    if (!serviceVisible(index, svc, node.namespace)) continue;
    for (const sp of svc.ports) {
      if (!inScope(scope, svc.namespace, [svc.fqdn], sp.port)) continue;
      const name = `${svc.fqdn}:${sp.port}`;
      const won = winner(index, candidates, node, scope, sp.port);
      const vs = won?.vs;
      const owner = `Service ${svc.namespace}/${svc.name}`;
      const proxying = portProxying(sp.protocol);
      add(`${name}|${same ? 'same' : 'other'}|${won?.id ?? ''}`, won?.scoped ?? false, (used) => {
        const at = { node, port: sp.port };
        const l4 = l4Routing(proxying, vs, used, index, at, svc.fqdn, owner);
        return {
          name,
          domains: serviceDomains(svc.fqdn, sp.port, node.namespace),
          // A TCP or TLS port has no HTTP routes; a sniffed one has both.
          routes:
            proxying === 'TCP' || proxying === 'TLS'
              ? []
              : vs
                ? vsRoutes(vs, used, index, at)
                : [defaultRoute(index, used, svc.fqdn, sp.port, owner)],
          ...(l4 ? { l4 } : {}),
        };
      });
      if (won) claimed.add(won.id);
    }
  }
  for (const { entry: e, candidates } of memo.sidecarEntries) {
    if (!entryVisible(index, e.entry, node.namespace)) continue;
    if (!inScope(scope, e.entry.metadata.namespace, [e.host], e.port)) continue;
    const name = `${e.host}:${e.port}`;
    const owner = `ServiceEntry ${e.entry.metadata.namespace}/${e.entry.metadata.name}`;
    const won = winner(index, candidates, node, scope, e.port);
    const vs = won?.vs;
    add(`${name}|entry|${won?.id ?? ''}`, won?.scoped ?? false, (used) => ({
      name,
      domains: entryDomains(e),
      routes: vs
        ? vsRoutes(vs, used, index, { node, port: e.port })
        : [defaultRoute(index, used, e.host, e.port, owner)],
    }));
    if (won) claimed.add(won.id);
  }
  // VirtualServices for hosts that are not services (e.g. a name that only exists in the mesh).
  for (const vs of memo.meshVs) {
    const id = `${vs.metadata.namespace}/${vs.metadata.name}`;
    if (claimed.has(id) || !virtualServiceVisible(index, vs, node.namespace)) continue;
    const hosts = vsHosts(vs).filter((h) => !index.services.has(h));
    if (hosts.length === 0 || !inScope(scope, vs.metadata.namespace, hosts)) continue;
    virtualHosts.push({ name: id, domains: hosts, routes: vsRoutes(vs, clusters, index, { node }) });
  }
  virtualHosts.push(outboundTrafficPolicyHost(index, clusters, scope));
  return { name: 'outbound', virtualHosts };
}
