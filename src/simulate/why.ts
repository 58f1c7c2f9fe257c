// `trellis why`: the decision the mesh would make on one request, hop by hop, from the snapshots the
// proxies run. A request from a workload passes its sidecar's outbound listener (route, cluster) and
// then the inbound listener of each sidecar it may land on (authentication, authorization); one from
// outside the mesh passes the gateway and then the sidecar the gateway forwards to. Every hop is
// simulate.ts, the proxy's own phases, so this cannot disagree with what the proxies do.
import { outboundSni, serviceDomains } from '../compile/hosts.ts';
import type { Endpoint, ProxyNode, ProxySnapshot } from '../compile/snapshot.ts';
import { TrellisError } from '../lib/errors.ts';
import { type SimulatedRequest, type Simulation, simulateSnapshot } from './simulate.ts';

/** What `why` reads of the running mesh. */
export interface MeshView {
  /** Every proxy the platform registered. */
  nodes: readonly ProxyNode[];
  /** The snapshot a proxy runs. */
  snapshot(id: string): Promise<ProxySnapshot>;
}

export interface WhyRequest {
  /**
   * A workload (`name` or `namespace/name`), a proxy id, a SPIFFE identity (`spiffe://td/ns/x/sa/y`
   * or `td/ns/x/sa/y`), or `external` for a client outside the mesh.
   */
  source: string;
  method: string;
  /** `http://host[:port]/path?query`, the path as sent (dot segments and escapes are kept). */
  url: string;
  headers?: Record<string, string>;
}

export type WhySource =
  | { kind: 'workload'; proxy: string; identity: string }
  | { kind: 'identity'; identity: string }
  | { kind: 'external' };

/** One proxy's part: which listener took the request and what each phase decided there. */
export interface Hop {
  proxy: string;
  /** outbound, gateway or inbound. */
  kind: 'outbound' | 'gateway' | 'inbound';
  /** Inbound: the client proxy's mTLS identity; none when it comes in plaintext. */
  peer?: string;
  simulation: Simulation;
  /** The next hops, one per destination proxy the route may pick (a proxy answers or forwards). */
  next?: Hop[];
}

export interface WhyAnswer {
  source: WhySource;
  request: { method: string; authority: string; path: string };
  hops: Hop[];
}

/** Where a request path ends: a proxy's own answer, or the app beside a sidecar. */
export type Outcome =
  | { proxy: string; answered: { status: number; flag: string; reason: string } }
  | { proxy: string; app: { port: number } };

export async function why(mesh: MeshView, req: WhyRequest): Promise<WhyAnswer> {
  const { authority, path, port } = parseUrl(req.url);
  const source = resolveSource(mesh.nodes, req.source);
  const request: SimulatedRequest = {
    authority,
    path,
    method: req.method.toUpperCase(),
    headers: req.headers,
  };
  const named = { method: request.method!, authority, path };

  const gateway = gatewayAt(mesh.nodes, authority, port);
  if (gateway) {
    const snap = await mesh.snapshot(gateway.node.id);
    const sim = await simulateSnapshot(snap, { ...request, port: gateway.serverPort });
    const hop: Hop = { proxy: gateway.node.id, kind: 'gateway', simulation: sim };
    hop.next = await forwarded(mesh, snap, sim, request, gateway.node.address);
    // The gateway sees a client from outside the mesh, whoever it is: no identity.
    return { source: { kind: 'external' }, request: named, hops: [hop] };
  }
  if (source.kind === 'external')
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${authority} is not a gateway's address: a client outside the mesh reaches it through a gateway ` +
        `(${gatewayUrls(mesh.nodes).join(', ') || 'this mesh has none'})`,
    );
  const node = sourceProxy(mesh.nodes, source);
  const snap = node && (await mesh.snapshot(node.id));
  // An identity is a workload's when one of its sidecars runs as it: the request leaves from there.
  if (!snap || (source.kind === 'identity' && snap.proxy.identity !== source.identity)) {
    if (source.kind !== 'identity') throw new Error('unreachable: a workload has a proxy');
    return { source, request: named, hops: await fromIdentity(mesh, source.identity, request, port) };
  }
  const sim = await simulateSnapshot(snap, request);
  const hop: Hop = { proxy: node.id, kind: 'outbound', simulation: sim };
  hop.next = await forwarded(mesh, snap, sim, request, node.address);
  return {
    source: { kind: 'workload', proxy: node.id, identity: snap.proxy.identity },
    request: named,
    hops: [hop],
  };
}

/** The sidecar a workload's or an identity's requests leave from; the first replica speaks for all. */
function sourceProxy(nodes: readonly ProxyNode[], source: NamedSource): ProxyNode | undefined {
  const sidecars = nodes.filter((n) => n.role === 'sidecar').sort((a, b) => a.id.localeCompare(b.id));
  if (source.kind === 'workload') return sidecars.find((n) => n.id === source.proxy);
  if (source.kind !== 'identity') return undefined;
  const [, , ns, sa] = SPIFFE.exec(source.identity)!;
  return sidecars.find((n) => n.namespace === ns && n.serviceAccount === sa);
}

/** Every end the request may come to, in hop order. */
export function outcomes(hops: readonly Hop[]): Outcome[] {
  const out: Outcome[] = [];
  for (const hop of hops) {
    const sim = hop.simulation;
    const abort = sim.action?.type === 'forward' ? sim.action.fault?.abort : undefined;
    if (sim.refused) out.push({ proxy: hop.proxy, answered: sim.refused });
    // An abort for every request answers there; a share of them is shown with the route.
    else if (abort && abort.percent >= 100)
      out.push({
        proxy: hop.proxy,
        answered: { status: abort.status, flag: 'FI', reason: `${sim.route?.origin} fault abort` },
      });
    else if (hop.kind === 'inbound') out.push({ proxy: hop.proxy, app: { port: sim.targetPort! } });
    else if (hop.next?.length) out.push(...outcomes(hop.next));
    else if (sim.action && sim.action.type !== 'forward')
      out.push({
        proxy: hop.proxy,
        answered: { status: sim.action.status, flag: '-', reason: sim.route?.origin ?? '' },
      });
    else
      out.push({
        proxy: hop.proxy,
        answered: { status: 503, flag: 'UH', reason: 'no healthy upstream' },
      });
  }
  return out;
}

function parseUrl(url: string): { authority: string; path: string; port: number } {
  // Not `new URL`: it would resolve dot segments and escapes the proxy must see as sent.
  const m = /^(https?):\/\/([^/?#\s]+)([^#\s]*)$/i.exec(url);
  if (!m)
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${JSON.stringify(url)} is not an http:// URL; write it as http://host[:port]/path`,
    );
  const authority = m[2];
  const colon = authority.lastIndexOf(':');
  const explicit = colon > authority.lastIndexOf(']') ? Number(authority.slice(colon + 1)) : undefined;
  if (explicit !== undefined && !(Number.isInteger(explicit) && explicit > 0 && explicit < 65536))
    throw new TrellisError('TRL_INVALID_ARGUMENT', `${url}: the port must be 1..65535`);
  const path = m[3] === '' ? '/' : m[3].startsWith('?') ? `/${m[3]}` : m[3];
  return { authority, path, port: explicit ?? (m[1].toLowerCase() === 'https' ? 443 : 80) };
}

const SPIFFE = /^(?:spiffe:\/\/)?([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** The source as named; a workload's identity comes with its snapshot. */
type NamedSource = { kind: 'workload'; proxy: string } | Exclude<WhySource, { kind: 'workload' }>;

function resolveSource(nodes: readonly ProxyNode[], source: string): NamedSource {
  if (source === 'external') return { kind: 'external' };
  const id = SPIFFE.exec(source);
  if (id) return { kind: 'identity', identity: `spiffe://${id[1]}/ns/${id[2]}/sa/${id[3]}` };
  const sidecars = nodes.filter((n) => n.role === 'sidecar');
  const byId = sidecars.find((n) => n.id === source);
  const slash = source.indexOf('/');
  const ns = slash < 0 ? undefined : source.slice(0, slash);
  const name = slash < 0 ? source : source.slice(slash + 1);
  const inNs = sidecars.filter((n) => ns === undefined || n.namespace === ns);
  // A workload by its name, else by its app label, as Istio's tools name one (`productpage`).
  const matches = byId
    ? [byId]
    : inNs.some((n) => n.workload === name)
      ? inNs.filter((n) => n.workload === name)
      : inNs.filter((n) => n.labels.app === name);
  if (matches.length === 0) {
    const known = [...new Set(sidecars.map((n) => `${n.namespace}/${n.workload}`))].sort();
    throw new TrellisError(
      'TRL_NOT_FOUND',
      `no workload with a sidecar is called ${JSON.stringify(source)}; name a workload ` +
        `(${known.join(', ')}), a SPIFFE identity, or external`,
    );
  }
  const workloads = new Set(matches.map((n) => `${n.namespace}/${n.workload}`));
  if (workloads.size > 1)
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${source} names ${[...workloads].sort().join(', ')}; name one of them`,
    );
  // Every replica runs the same snapshot: the first one speaks for the workload.
  const node = matches.sort((a, b) => a.id.localeCompare(b.id))[0];
  return { kind: 'workload', proxy: node.id };
}

/** The gateway whose host port the URL names, if any: a gateway is reached at its bound port. */
function gatewayAt(
  nodes: readonly ProxyNode[],
  authority: string,
  port: number,
): { node: ProxyNode; serverPort: number } | undefined {
  const host = authority
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase();
  for (const node of nodes) {
    if (node.role !== 'gateway' || !node.gatewayPorts) continue;
    if (host !== 'localhost' && host !== node.address && !isLoopback(host)) continue;
    for (const [server, bound] of Object.entries(node.gatewayPorts))
      if (bound === port) return { node, serverPort: Number(server) };
  }
  return undefined;
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function gatewayUrls(nodes: readonly ProxyNode[]): string[] {
  return nodes
    .filter((n) => n.role === 'gateway')
    .flatMap((n) =>
      Object.entries(n.gatewayPorts ?? {}).map(([port, bound]) => {
        const name = n.ports.find((p) => p.port === Number(port))?.name;
        return `${name?.startsWith('https') ? 'https' : 'http'}://localhost:${bound}`;
      }),
    );
}

/**
 * The inbound hops of the sidecars a forwarding route leads to, each seeing the request as the
 * client proxy sends it: over mTLS with the client's identity and the cluster's SNI.
 */
async function forwarded(
  mesh: MeshView,
  client: ProxySnapshot,
  sim: Simulation,
  request: SimulatedRequest,
  clientAddress: string,
): Promise<Hop[] | undefined> {
  if (sim.refused || !sim.clusters) return undefined;
  const hops: Hop[] = [];
  for (const c of sim.clusters) {
    const cluster = client.clusters.find((x) => x.name === c.name);
    const sni = cluster?.tls.mode === 'ISTIO_MUTUAL' ? cluster.tls.sni : undefined;
    for (const node of destinations(mesh.nodes, c.endpoints)) {
      if (hops.some((h) => h.proxy === node.id)) continue;
      const snap = await mesh.snapshot(node.id);
      const inbound = await simulateSnapshot(
        snap,
        {
          ...request,
          path: sim.path ?? request.path,
          peer: sni ? { identity: client.proxy.identity, sni } : undefined,
          remoteAddress: clientAddress,
        },
        'inbound',
      );
      const hop: Hop = { proxy: node.id, kind: 'inbound', simulation: inbound };
      if (sni) hop.peer = client.proxy.identity;
      hops.push(hop);
    }
  }
  return hops;
}

/** The sidecars behind a cluster's endpoints (an endpoint is a sidecar's inbound listener). */
function destinations(nodes: readonly ProxyNode[], endpoints: readonly Endpoint[]): ProxyNode[] {
  const out: ProxyNode[] = [];
  for (const ep of endpoints) {
    const node = nodes.find(
      (n) => n.role === 'sidecar' && n.address === ep.address && n.inboundPort === ep.port,
    );
    if (node && !out.includes(node)) out.push(node);
  }
  return out;
}

/**
 * From an identity no sidecar of this mesh runs as (a client that holds a mesh certificate): straight
 * to the inbound listener of every sidecar that serves the URL's service, as that client would come.
 */
async function fromIdentity(
  mesh: MeshView,
  identity: string,
  request: SimulatedRequest,
  port: number,
): Promise<Hop[]> {
  const namespace = SPIFFE.exec(identity)![2];
  const authority = request.authority.toLowerCase();
  const hops: Hop[] = [];
  for (const node of mesh.nodes) {
    if (node.role !== 'sidecar') continue;
    const snap = await mesh.snapshot(node.id);
    const inbound = snap.listeners.find((l) => l.type === 'inbound');
    // The service as the client's DNS would find it: `details`, `details.default`, the FQDN, ...
    const service =
      inbound?.type === 'inbound'
        ? inbound.services.find(
            (s) => s.port === port && serviceDomains(s.host, s.port, namespace).includes(authority),
          )
        : undefined;
    if (!service) continue;
    const host = service.host;
    const sni = outboundSni(port, undefined, host);
    const sim = await simulateSnapshot(snap, { ...request, peer: { identity, sni } }, 'inbound');
    hops.push({ proxy: node.id, kind: 'inbound', peer: identity, simulation: sim });
  }
  if (hops.length === 0)
    throw new TrellisError(
      'TRL_NOT_FOUND',
      `no sidecar serves ${authority}${authority.includes(':') ? '' : `:${port}`} for a client in ` +
        `namespace ${namespace}; name the service as its clients do (host and port)`,
    );
  return hops;
}
