// What a proxy would do with a request: which virtual host and route it matches, and which clusters
// and endpoints it would forward to. It runs the proxy's own code on the snapshot (ProxyConfig.build,
// the compiled route table, path normalization), so the answer cannot drift from what the proxy does.
// `trellis why` is built on it.
import { compile } from '../compile/compile.ts';
import type { CompileInput } from '../compile/mesh-index.ts';
import type { Endpoint, Listener, ProxyNode, ProxySnapshot, RouteAction } from '../compile/snapshot.ts';
import { ProxyConfig } from '../dataplane/config.ts';
import { normalizeRequestTarget } from '../dataplane/http/normalize.ts';
import { CompiledRouteTable, RequestView } from '../dataplane/http/route-table.ts';
import { TrellisError } from '../lib/errors.ts';

export interface SimulatedRequest {
  /** The Host header or `:authority`, as the client sent it. */
  authority: string;
  /** The request target in origin form: path and query, as sent (it is normalized here). */
  path: string;
  method?: string;
  /** Header names in any case. */
  headers?: Record<string, string>;
  /** A gateway's listener port (its Gateway server port); unset when it has one listener. */
  port?: number;
}

export interface SimulatedCluster {
  name: string;
  weight: number;
  /** The endpoints its load balancer picks from (the healthy ones). */
  endpoints: Endpoint[];
}

export interface Simulation {
  /** The listener that takes the request and the route table it looks up. */
  listener: string;
  routeTable: string;
  /** Normalized path (and query) the routes were matched against. */
  path?: string;
  virtualHost?: string;
  route?: { name: string; origin: string };
  action?: RouteAction;
  /** For a forwarding route: its weighted clusters. */
  clusters?: SimulatedCluster[];
  /** Set when the proxy answers itself before any route: status, response flag and why. */
  refused?: { status: number; flag: string; reason: string };
}

/** Compiles the proxy's snapshot from the resources and registry, then simulates the request on it. */
export function simulate(input: CompileInput, node: ProxyNode, request: SimulatedRequest): Simulation {
  return simulateSnapshot(compile(input, node), request);
}

/** The request on a given snapshot, e.g. the one a proxy reports it runs. */
export function simulateSnapshot(snapshot: ProxySnapshot, request: SimulatedRequest): Simulation {
  const cfg = ProxyConfig.build(snapshot);
  const listener = listenerFor(snapshot, request.port);
  const sim: Simulation = { listener: listener.name, routeTable: listener.routeTable };
  const authority = request.authority.toLowerCase();
  const norm = normalizeRequestTarget(request.path);
  if (!norm.ok) {
    sim.refused = { status: 400, flag: 'DPE', reason: `normalize: ${norm.reason}` };
    return sim;
  }
  sim.path = norm.path + norm.query;
  const vh = cfg.routeTables.get(listener.routeTable)?.virtualHost(authority);
  if (!vh) {
    sim.refused = {
      status: 404,
      flag: 'NR',
      reason: `no virtual host for ${authority} in ${listener.routeTable}`,
    };
    return sim;
  }
  sim.virtualHost = vh.name;
  const headers = Object.fromEntries(
    Object.entries(request.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const view = new RequestView(norm.path, norm.query, request.method ?? 'GET', 'http', authority, headers);
  const route = CompiledRouteTable.route(vh, view);
  if (!route) {
    sim.refused = { status: 404, flag: 'NR', reason: `no route matched in ${vh.name}` };
    return sim;
  }
  sim.route = { name: route.name, origin: route.origin };
  sim.action = route.action;
  if (route.action.type === 'forward') {
    sim.clusters = route.action.clusters.map((w) => ({
      name: w.cluster,
      weight: w.weight,
      endpoints: cfg.clusters.get(w.cluster)!.cluster.endpoints.filter((e) => e.healthy),
    }));
  }
  return sim;
}

type RoutingListener = Extract<Listener, { routeTable: string }>;

/** A sidecar's requests from its app land on the outbound listener; a gateway's on the port's. */
function listenerFor(snapshot: ProxySnapshot, port: number | undefined): RoutingListener {
  const routing = snapshot.listeners.filter((l): l is RoutingListener => 'routeTable' in l);
  const pick =
    port === undefined
      ? routing.length === 1
        ? routing[0]
        : undefined
      : routing.find((l) => l.type === 'gateway' && l.port === port);
  if (!pick) {
    const have = routing.map((l) => (l.type === 'gateway' ? `${l.name} (port ${l.port})` : l.name));
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${snapshot.proxy.id}: ${port === undefined ? 'name a listener port' : `no listener on port ${port}`}; ` +
        `it has ${have.join(', ') || 'no routing listener'}`,
    );
  }
  return pick;
}
