// What a proxy would do with a request: each deciding phase's verdict, the JWT it verified, the
// policy rule that allowed or denied, which virtual host and route it matches, and which clusters and
// endpoints it would forward to. It runs the proxy's own phases on the snapshot (every one before
// upstream, built by the same setup), so the answer cannot drift from what the proxy does. Outbound
// and gateway listeners take a request from a client; the inbound listener one from another proxy,
// whose identity and SNI the request names. `trellis why` (why.ts) is built on it.

import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { compile } from '../compile/compile.ts';
import { parseOutboundSni } from '../compile/hosts.ts';
import type { CompileInput } from '../compile/mesh-index.ts';
import type { Endpoint, Listener, ProxyNode, ProxySnapshot, RouteAction } from '../compile/snapshot.ts';
import { CredentialStore } from '../dataplane/agent/credentials.ts';
import { ProxyConfig } from '../dataplane/config.ts';
import { Exchange, type PeerTls, PLAINTEXT, type RequestAuth } from '../dataplane/http/context.ts';
import type { Downstream } from '../dataplane/http/downstream.ts';
import { Chain, type Phase, type PhaseDeps } from '../dataplane/http/phase.ts';
import { PHASES } from '../dataplane/http/pipeline.ts';
import { RequestTelemetry, UNKNOWN_PEER } from '../dataplane/telemetry.ts';
import { ExternalPool } from '../dataplane/upstream/external-pool.ts';
import { PeerPool } from '../dataplane/upstream/peer-pool.ts';
import { TrellisError } from '../lib/errors.ts';
import { SILENT } from '../lib/log.ts';
import { createIstioMetrics } from '../telemetry/istio.ts';
import { Registry } from '../telemetry/metrics.ts';

export interface SimulatedRequest {
  /** The Host header or `:authority`, as the client sent it. */
  authority: string;
  /** The request target in origin form: path and query, as sent (it is normalized here). */
  path: string;
  method?: string;
  /** Header names in any case. */
  headers?: Record<string, string>;
  /** A gateway's listener port (a server port, or its Service's targetPort); unset when it has one listener. */
  port?: number;
  /**
   * For the inbound listener of a sidecar: the client proxy's mTLS identity (a SPIFFE ID) and the SNI
   * it sent (`outbound_.<port>_.<subset>_.<host>`); no identity is a plaintext client.
   */
  peer?: { identity?: string; sni?: string };
  /** The client's address, for `source.ip` and `ipBlocks`. */
  remoteAddress?: string;
}

/** A phase on the listener's request path: it passed the request on, or answered it itself. */
export interface PhaseVerdict {
  phase: string;
  verdict: 'passed' | 'answered';
}

export interface SimulatedCluster {
  name: string;
  weight: number;
  /** The endpoints its load balancer picks from (the healthy ones). */
  endpoints: Endpoint[];
}

export interface Simulation {
  /** The listener that takes the request and the route table it looks up (none for inbound). */
  listener: string;
  routeTable?: string;
  /** The deciding phases on this listener's path, in order, up to the one that answered. */
  phases: PhaseVerdict[];
  /** The end user, from the JWT that verified. */
  auth?: RequestAuth;
  /** The authorization decision and the policy rule that made it (`''`: no policy applies). */
  authorization?: { allow: boolean; rule: string };
  /** Inbound: the workload port the request is for. */
  targetPort?: number;
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
export function simulate(
  input: CompileInput,
  node: ProxyNode,
  request: SimulatedRequest,
  kind?: 'inbound',
): Promise<Simulation> {
  return simulateSnapshot(compile(input, node), request, kind);
}

/**
 * The request on a given snapshot, e.g. the one a proxy reports it runs: on its outbound or gateway
 * listener, or with `kind` inbound on a sidecar's inbound listener. Asynchronous as the proxy is:
 * a JWT is verified on a cache miss.
 */
export async function simulateSnapshot(
  snapshot: ProxySnapshot,
  request: SimulatedRequest,
  kind?: 'inbound',
): Promise<Simulation> {
  const cfg = ProxyConfig.build(snapshot);
  const listener = kind === 'inbound' ? inboundOf(snapshot) : listenerFor(snapshot, request.port);
  const chainKind = kind ?? (listener.type === 'gateway' ? 'gateway' : 'outbound');
  const routeTable = 'routeTable' in listener ? listener.routeTable : 'inbound';
  const site = {
    kind: chainKind,
    edge: chainKind === 'gateway',
    reporter: chainKind === 'inbound' ? 'destination' : 'source',
    log: SILENT,
  } as const;
  const entered: string[] = [];
  const { promise: decided, resolve } = Promise.withResolvers<void>();
  const chain = new Chain(
    site,
    [...DECIDING_PHASES.map((p) => traced(p, entered)), decidedPhase(resolve)],
    { kind: chainKind, cfg, table: cfg.routeTables.get(routeTable), tableName: routeTable, deps: DEPS },
    () => {},
  );
  const down = new SimulatedDownstream(request, resolve);
  const ex = new Exchange(down, site, peerTls(request.peer));
  chain.run(ex);
  await decided;

  const sim: Simulation = {
    listener: listener.name,
    phases: entered.map((phase, i) => ({
      phase,
      verdict: ex.code !== 0 && i === entered.length - 1 ? 'answered' : 'passed',
    })),
  };
  if ('routeTable' in listener) sim.routeTable = listener.routeTable;
  if (ex.path) sim.path = ex.path + ex.query;
  if (ex.targetPort !== undefined) sim.targetPort = ex.targetPort;
  if (ex.auth) sim.auth = ex.auth;
  if (ex.authorization) sim.authorization = { allow: ex.authorization.allow, rule: ex.authorization.rule };
  if (ex.virtualHost) sim.virtualHost = ex.virtualHost;
  if (ex.route) {
    sim.route = { name: ex.route.name, origin: ex.route.origin };
    sim.action = ex.route.action;
  }
  if (ex.code !== 0) {
    sim.refused = { status: ex.code, flag: ex.flags, reason: ex.rule };
    return sim;
  }
  const action = ex.route?.action;
  if (action?.type === 'forward') {
    sim.clusters = action.clusters.map((w) => ({
      name: w.cluster,
      weight: w.weight,
      endpoints: healthy(cfg, w.cluster),
    }));
  }
  return sim;
}

/** The phase as the proxy builds it, noting when its step runs. */
function traced(phase: Phase, entered: string[]): Phase {
  return {
    name: phase.name,
    setup(s) {
      const step = phase.setup(s);
      if (!step) return undefined;
      return (ex) => {
        entered.push(phase.name);
        return step(ex);
      };
    },
  };
}

/** Last on the simulated chain: every deciding phase passed the request on. */
function decidedPhase(done: () => void): Phase {
  return {
    name: 'decided',
    setup: () => () => {
      done();
      return false;
    },
  };
}

function peerTls(peer: SimulatedRequest['peer']): PeerTls {
  if (!peer) return PLAINTEXT;
  const target = peer.sni ? parseOutboundSni(peer.sni) : undefined;
  return {
    identity: peer.identity,
    sni: peer.sni,
    service: target && `${target.host}:${target.port}`,
  };
}

function inboundOf(snapshot: ProxySnapshot): Listener {
  const l = snapshot.listeners.find((x) => x.type === 'inbound');
  if (!l)
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${snapshot.proxy.id} has no inbound listener: only a sidecar takes requests from other proxies`,
    );
  return l;
}

function healthy(cfg: ProxyConfig, cluster: string): Endpoint[] {
  return cfg.clusters
    .get(cluster)!
    .endpoints.filter((e) => e.endpoint.healthy)
    .map((e) => e.endpoint);
}

/**
 * Every phase that decides before the request goes upstream: what the proxy would do, without doing
 * it. Fault injection is left out: it waits and draws at random, so the route's `fault` is reported
 * with the route instead.
 */
const DECIDING_PHASES = PHASES.slice(
  0,
  PHASES.findIndex((p) => p.name === 'upstream'),
).filter((p) => p.name !== 'fault');

/** The deciding phases need none of this; it is there to satisfy their setup's shape. */
const DEPS: PhaseDeps = {
  peers: new PeerPool(new CredentialStore()),
  external: new ExternalPool(),
  selfHeader: '',
  selfIdentity: '',
  telemetry: new RequestTelemetry(createIstioMetrics(new Registry()), UNKNOWN_PEER),
  log: SILENT,
  accessLog: false,
  app() {
    throw new Error('a simulation sends nothing upstream');
  },
};

/** A client that records what the proxy answers it, for the phases that answer by themselves. */
class SimulatedDownstream implements Downstream {
  readonly protocol = 'HTTP/1.1';
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly headers: IncomingHttpHeaders;
  readonly hasBody = false;
  readonly body = Readable.from([]);
  readonly remoteAddress: string | undefined;
  readonly localAddress = undefined;
  headersSent = false;
  private readonly answered: () => void;
  constructor(r: SimulatedRequest, answered: () => void) {
    this.answered = answered;
    this.remoteAddress = r.remoteAddress;
    this.method = r.method ?? 'GET';
    this.target = r.path;
    this.authority = r.authority;
    this.headers = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    this.headers.host = r.authority;
  }
  respond(): void {
    this.headersSent = true;
    this.answered();
  }
  write(): boolean {
    return true;
  }
  end(): void {}
  onDrain(): void {}
  onClose(): void {}
  destroy(): void {}
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
