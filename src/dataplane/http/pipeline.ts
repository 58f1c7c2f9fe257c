// The request pipeline of one proxy: the phase chains of each listener, rebuilt when a snapshot is
// applied and swapped in with it. Every listener runs the same phase list (phase.ts); what differs
// is each phase's setup for that listener.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/log.ts';
import type { IstioMetrics } from '../../telemetry/istio.ts';
import type { ProxyConfig } from '../config.ts';
import { ConnectionAuthorization } from '../tcp/authorize.ts';
import { type ConnectionDestination, type HttpServe, type TcpConfig, TcpProxy } from '../tcp/proxy.ts';
import { L4Routes } from '../tcp/routes.ts';
import { ConnectionTelemetry } from '../tcp/telemetry.ts';
import { encodePeer, type PeerInfo, RequestTelemetry, UNKNOWN_PEER } from '../telemetry.ts';
import { AppH2Session } from '../upstream/app-h2.ts';
import type { Dispatch } from '../upstream/dispatch.ts';
import type { ExternalPool } from '../upstream/external-pool.ts';
import { H1Pool } from '../upstream/h1-pool.ts';
import { h1Transport } from '../upstream/h1-transport.ts';
import { h2Transport } from '../upstream/h2-transport.ts';
import type { PeerPool } from '../upstream/peer-pool.ts';
import { replayStale } from '../upstream/replay.ts';
import { Exchange, type ListenerKind, type PeerTls, PLAINTEXT, type Site } from './context.ts';
import type { Downstream } from './downstream.ts';
import { ExtAuthzClients } from './ext-authz/clients.ts';
import { Chain, type Phase, type PhaseDeps } from './phase.ts';
import { authenticate } from './phases/authenticate.ts';
import { authorize } from './phases/authorize.ts';
import { cors } from './phases/cors.ts';
import { fault } from './phases/fault.ts';
import { normalize } from './phases/normalize.ts';
import { route } from './phases/route.ts';
import { recorder } from './phases/telemetry.ts';
import { upstream } from './phases/upstream.ts';

/** The phases, in their fixed order. Later ones (waf, rate limit) slot in here. */
export const PHASES: readonly Phase[] = [normalize, authenticate, authorize, route, cors, fault, upstream];

export interface PipelineDeps {
  self: PeerInfo;
  peers: PeerPool;
  external: ExternalPool;
  /** Where the app listens for a workload port. */
  appPort(workloadPort: number): number;
  metrics: IstioMetrics;
  log: Logger;
  accessLog: boolean;
}

/** The chains of one applied snapshot. */
export interface Chains {
  readonly cfg: ProxyConfig | undefined;
  readonly outbound: Chain;
  readonly inbound: Chain;
  /** By route table: a gateway listener names its own. */
  gateway(table: string): Chain;
  /** The L4 path's routing and policies. */
  readonly tcp: TcpConfig;
}

export class Pipeline {
  private readonly deps: PhaseDeps;
  private readonly telemetry: RequestTelemetry;
  /** Keep-alive connections to the app, per workload port; they outlive snapshots. */
  private readonly apps = new Map<number, { pool: H1Pool; dispatch: Dispatch }>();
  /** HTTP/2 (h2c) sessions to the app, per workload port whose protocol is GRPC or HTTP2. */
  private readonly h2Apps = new Map<number, { session: AppH2Session; dispatch: Dispatch }>();
  private readonly appPort: (p: number) => number;
  private readonly extAuthz = new ExtAuthzClients();
  private readonly sites: Record<ListenerKind, Site>;
  private readonly tcp: TcpProxy;
  private readonly metrics: IstioMetrics;
  private outboundHttp: HttpServe | undefined;
  private current: Chains;

  constructor(deps: PipelineDeps) {
    this.telemetry = new RequestTelemetry(deps.metrics, deps.self);
    this.appPort = deps.appPort;
    this.deps = {
      peers: deps.peers,
      external: deps.external,
      selfHeader: encodePeer(deps.self),
      selfIdentity: deps.self.principal,
      telemetry: this.telemetry,
      log: deps.log,
      accessLog: deps.accessLog,
      app: (port, http2) => (http2 ? this.h2App(port) : this.app(port)),
      extAuthz: this.extAuthz,
    };
    const site = (kind: ListenerKind): Site => ({
      kind,
      edge: kind === 'gateway',
      reporter: kind === 'inbound' ? 'destination' : 'source',
      log: deps.log,
    });
    this.sites = { outbound: site('outbound'), gateway: site('gateway'), inbound: site('inbound') };
    this.metrics = deps.metrics;
    this.tcp = new TcpProxy({
      peers: deps.peers,
      telemetry: new ConnectionTelemetry(deps.metrics, deps.self, deps.log, deps.accessLog),
      peerOf: (header, principal) => this.telemetry.peer(header, principal),
      selfHeader: this.deps.selfHeader,
      appPort: deps.appPort,
    });
    this.current = this.build(undefined);
  }

  get config(): ProxyConfig | undefined {
    return this.current.cfg;
  }

  /** Swaps in chains from `build`: requests in flight finish on the ones they started with. */
  use(chains: Chains): void {
    this.current = chains;
    this.extAuthz.retain(chains.cfg?.snapshot);
  }

  /** Every chain `cfg` runs; a phase whose setup throws rejects the snapshot before anything changes. */
  build(cfg: ProxyConfig | undefined): Chains {
    const record = recorder(this.deps);
    const chain = (kind: ListenerKind, tableName: string) =>
      new Chain(
        this.sites[kind],
        PHASES,
        { kind, cfg, table: cfg?.routeTables.get(tableName), tableName, deps: this.deps },
        record,
      );
    const gateways = new Map<string, Chain>();
    for (const l of cfg?.snapshot.listeners ?? []) {
      if (l.type !== 'gateway') continue;
      // An HTTPS listener's servers each have a route table of their own.
      for (const name of [l.routeTable, ...(l.tls ?? []).map((t) => t.routeTable)])
        if (!gateways.has(name)) gateways.set(name, chain('gateway', name));
    }
    const inbound = cfg?.inbound;
    const tcpAuthz = inbound?.tcpAuthorization ?? inbound?.authorization;
    const tcp: TcpConfig = {
      cfg,
      routes: new L4Routes(cfg),
      authorization: tcpAuthz && new ConnectionAuthorization(tcpAuthz, this.metrics.authorizationDenied),
    };
    return {
      cfg,
      tcp,
      outbound: chain('outbound', 'outbound'),
      inbound: chain('inbound', 'inbound'),
      gateway: (table) => {
        let c = gateways.get(table);
        if (!c) {
          c = chain('gateway', table);
          gateways.set(table, c);
        }
        return c;
      },
    };
  }

  /** A request from the app; `tunnel` is the CONNECT target when it came through one. */
  outbound(down: Downstream, tunnel?: string): void {
    const chain = this.current.outbound;
    chain.run(new Exchange(down, chain.site, PLAINTEXT, tunnel));
  }

  /**
   * The entry point for an app's connection the outbound side did not parse: a CONNECT tunnel (the
   * socket past its head), or a connection transparent capture took to its original destination.
   * `dest.host` is an FQDN, a short name or an IP, and `dest.port` the port, as the app addressed
   * them. A service port whose protocol is TCP or TLS (or a sniffed one carrying neither HTTP nor a
   * known start) is proxied as bytes; HTTP, and what is not a mesh service port, goes to the outbound
   * HTTP server as a tunnel to `host:port`. The socket may hold unread bytes; it is owned from here.
   */
  connection(socket: Socket, dest: ConnectionDestination): void {
    this.tcp.outbound(this.current.tcp, socket, dest, this.outboundHttp);
  }

  /** Where `connection` hands HTTP: the outbound listener's HTTP servers. */
  serveOutboundHttp(serve: HttpServe): void {
    this.outboundHttp = serve;
  }

  /** A TCP stream from another proxy over mTLS (ALPN `trellis-tcp`), for the app. */
  inboundConnection(socket: TLSSocket, peer: PeerTls): void {
    this.tcp.inbound(this.current.tcp, socket, peer);
  }

  /**
   * A request on the gateway listener whose route table is `table`: from a client outside the mesh,
   * or over mesh mTLS from a sidecar (`peer`), whose identity policies see as source.principal.
   */
  gateway(down: Downstream, table: string, peer: PeerTls = PLAINTEXT): void {
    const chain = this.current.gateway(table);
    chain.run(new Exchange(down, chain.site, peer));
  }

  /** A request from another proxy over mTLS — or in plaintext where PERMISSIVE allows — for the app. */
  inbound(down: Downstream, peer: PeerTls): void {
    const chain = this.current.inbound;
    chain.run(new Exchange(down, chain.site, peer));
  }

  /**
   * A request the HTTP/1.1 codec refused before it became an exchange (malformed, ambiguous, too
   * slow). The client got `status` with flag DPE; this logs it with its TRL_HTTP_* code and counts it.
   */
  protocolError(reporter: 'source' | 'destination', status: number, rule: string, mtls: boolean): void {
    this.telemetry.record(reporter, UNKNOWN_PEER, {
      service: 'unknown',
      code: status,
      flags: 'DPE',
      mtls,
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
    });
    this.deps.log.info('proxy response', { code: status, flags: 'DPE', rule });
  }

  private app(workloadPort: number): Dispatch {
    let app = this.apps.get(workloadPort);
    if (!app) {
      const pool = H1Pool.loopback(this.appPort(workloadPort));
      app = { pool, dispatch: replayStale(h1Transport(() => pool, `inbound|${workloadPort}||`)) };
      this.apps.set(workloadPort, app);
    }
    return app.dispatch;
  }

  private h2App(workloadPort: number): Dispatch {
    let app = this.h2Apps.get(workloadPort);
    if (!app) {
      const session = new AppH2Session(this.appPort(workloadPort));
      app = { session, dispatch: h2Transport(session.get, `inbound|${workloadPort}||`) };
      this.h2Apps.set(workloadPort, app);
    }
    return app.dispatch;
  }

  close(): void {
    for (const app of this.apps.values()) app.pool.close();
    for (const app of this.h2Apps.values()) app.session.close();
    this.extAuthz.close();
  }
}
