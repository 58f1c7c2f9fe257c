// One proxy process: identity, listeners, pipeline, admin endpoint and the agent, wired together.
// Snapshots are applied off the request path and swapped in atomically; in-flight requests finish on
// the config they started with.
import http from 'node:http';
import type { GatewayListener, ProxyNode, ProxySnapshot } from '../compile/snapshot.ts';
import { errorMessage, TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { createIstioMetrics } from '../telemetry/istio.ts';
import { processMetrics, Registry } from '../telemetry/metrics.ts';
import { Agent } from './agent/agent.ts';
import { CredentialStore } from './agent/credentials.ts';
import { AppHealth, type Readiness } from './app-health.ts';
import { ConntrackTable, capturedDestination } from './capture.ts';
import { ProxyConfig } from './config.ts';
import { GatewayTls } from './gateway-tls.ts';
import { Pipeline } from './http/pipeline.ts';
import { DEFAULT_LISTENER_LIMITS, type ListenerLimits, ListenerStats } from './listener-limits.ts';
import {
  capturedOutboundServer,
  closeServer,
  type Front,
  gatewayServer,
  inboundServer,
  listen,
  outboundServer,
} from './listeners.ts';
import { selfPeer } from './telemetry.ts';
import { DnsResolver } from './upstream/dns.ts';
import { ExternalPool } from './upstream/external-pool.ts';
import { PeerPool } from './upstream/peer-pool.ts';
import { UpstreamState } from './upstream/state.ts';

export interface ProxyOptions {
  node: ProxyNode;
  trustDomain: string;
  controlPlane: string;
  rootCertPem: string;
  token?: string;
  /** Address every listener binds to. */
  bindHost: string;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
  /** Workload port → the port the app really listens on (the local runtime moves them). */
  appPorts: Map<number, number>;
  /** How to tell the app is ready (sidecars with an app); without it the proxy is always ready. */
  readiness?: Readiness;
  accessLog: boolean;
  /** Per listener; what is not given is DEFAULT_LISTENER_LIMITS'. */
  listenerLimits?: Partial<ListenerLimits>;
  /** Transparent capture (capture.ts): the outbound listener takes redirected connections instead. */
  capture?: CaptureOptions;
  log: Logger;
}

export interface CaptureOptions {
  /** An open descriptor of the netns's /proc/net/nf_conntrack, inherited from the runtime. */
  conntrackFd: number;
  /** Where the outbound listener binds (the redirect's target, 127.0.0.1). */
  outboundHost: string;
}

export interface RunningProxy {
  ports: { outbound?: number; inbound?: number; admin: number };
  current(): ProxySnapshot | undefined;
  close(): Promise<void>;
}

interface GatewayBinding {
  server: Front;
  table: { name: string };
  /** HTTPS listeners: the TLS termination, updated in place by each snapshot. */
  tls?: GatewayTls;
}

function outboundAddresses(pipeline: Pipeline): Record<string, string> | undefined {
  for (const l of pipeline.config?.snapshot.listeners ?? []) if (l.type === 'outbound') return l.addresses;
  return undefined;
}

export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  const { node, log } = o;
  const identity = `spiffe://${o.trustDomain}/ns/${node.namespace}/sa/${node.serviceAccount}`;
  const creds = new CredentialStore();
  let certsIssued = 0;
  creds.onChange(() => certsIssued++);
  const registry = new Registry();
  processMetrics(registry);
  const metrics = createIstioMetrics(registry);
  const peers = new PeerPool(creds);
  const external = new ExternalPool();
  // What the proxy learns about its upstreams goes to the control plane (trellis proxy-config shows
  // it): a moment after an ejection changes, so a burst is one report, and every few seconds while
  // the counters move.
  let lastReport = '';
  const report = () => {
    const clusters = upstreamState.counters();
    const ejections = upstreamState.ejected();
    const text = JSON.stringify([ejections, clusters]);
    if (text === lastReport) return;
    lastReport = text;
    agent.reportUpstream(ejections, clusters);
  };
  let reportSoon = false;
  const upstreamState = new UpstreamState(() => {
    if (reportSoon) return;
    reportSoon = true;
    setTimeout(() => {
      reportSoon = false;
      report();
    }, 50).unref();
  });
  const counterReports = setInterval(report, 3000).unref();
  const pipeline = new Pipeline({
    self: selfPeer(node, identity),
    peers,
    external,
    appPort: (p) => o.appPorts.get(p) ?? p,
    metrics,
    log,
    accessLog: o.accessLog,
  });
  const gateways = new Map<number, GatewayBinding>();
  const limits: ListenerLimits = { ...DEFAULT_LISTENER_LIMITS, ...o.listenerLimits };
  const listenerStats = new ListenerStats(registry, log);
  const listener = (name: string) => ({ name, limits, stats: listenerStats });

  // DNS clusters' names are resolved before a snapshot is applied; new addresses apply it again.
  let received: ProxySnapshot | undefined;
  const dns = new DnsResolver(() => {
    if (received)
      apply(received).catch((err) => log.warn('re-applying after DNS change', { error: errorMessage(err) }));
  });

  async function apply(fromControlPlane: ProxySnapshot): Promise<void> {
    received = fromControlPlane;
    const snapshot = await dns.resolve(fromControlPlane);
    const next = ProxyConfig.build(snapshot, upstreamState);
    const chains = pipeline.build(next);
    if (node.role === 'gateway') await reconcileGateways(next);
    pipeline.use(chains);
    // After the chains: a new server's route table is there before its first connection.
    for (const l of next.snapshot.listeners)
      if (l.type === 'gateway' && l.tls) gateways.get(l.port)?.tls?.update(l.tls);
    const live = next.liveState();
    upstreamState.retain(live.endpoints, live.clusters);
    const keepPeers = new Set<string>();
    const keepExternal = new Set<string>();
    for (const { cluster: c } of next.clusters.values()) {
      const tls = c.tls;
      if (tls.mode === 'ISTIO_MUTUAL') for (const e of c.endpoints) keepPeers.add(PeerPool.key(e, tls.sni));
      else for (const e of c.endpoints) keepExternal.add(ExternalPool.key(e, tls));
    }
    peers.retain(keepPeers);
    external.retain(keepExternal);
    log.info('snapshot applied', { version: snapshot.version, revision: snapshot.revision });
  }

  /** Binds new gateway ports first; if any fails, the snapshot is rejected and nothing changes. */
  async function reconcileGateways(next: ProxyConfig): Promise<void> {
    const wanted = new Map<number, GatewayListener>();
    for (const l of next.snapshot.listeners) if (l.type === 'gateway') wanted.set(l.port, l);
    // A port that turns from HTTP to HTTPS (or back) is a new listener: the old one goes first.
    for (const [port, b] of gateways) {
      const l = wanted.get(port);
      if (l && (l.protocol === 'HTTPS') !== (b.tls !== undefined)) {
        gateways.delete(port);
        await closeServer(b.server, 0);
      }
    }
    const opened: [number, GatewayBinding][] = [];
    for (const [port, l] of wanted) {
      if (gateways.has(port)) continue;
      const ref = { name: l.routeTable };
      const name = `0.0.0.0_${port}`;
      const tls =
        l.protocol === 'HTTPS'
          ? new GatewayTls({
              name,
              handshakeTimeoutMs: limits.handshakeTimeoutMs,
              helloTimeoutMs: limits.sniffTimeoutMs,
              log,
            })
          : undefined;
      const binding: GatewayBinding = {
        table: ref,
        server: gatewayServer(pipeline, ref, listener(name), { creds, tls }),
        ...(tls && { tls }),
      };
      const hostPort = node.gatewayPorts?.[String(port)] ?? port;
      try {
        await listen(binding.server, o.bindHost, hostPort);
      } catch (err) {
        await Promise.all(opened.map(([, b]) => closeServer(b.server)));
        throw new TrellisError(
          'TRL_SNAPSHOT_REJECTED',
          `listener 0.0.0.0_${port}: cannot bind ${o.bindHost}:${hostPort}: ${errorMessage(err)}`,
        );
      }
      log.info('gateway listener bound', { port, hostPort });
      opened.push([port, binding]);
    }
    for (const [port, b] of opened) gateways.set(port, b);
    for (const [port, b] of gateways) {
      const table = wanted.get(port)?.routeTable;
      if (table) b.table.name = table;
      else {
        gateways.delete(port);
        void closeServer(b.server);
      }
    }
  }

  const agent = new Agent({
    controlPlane: o.controlPlane,
    rootCertPem: o.rootCertPem,
    token: o.token,
    node,
    identity,
    creds,
    apply,
    log,
  });
  await agent.start();

  const servers: (Front | http.Server)[] = [];
  const ports: RunningProxy['ports'] = { admin: 0 };
  if (node.role === 'sidecar') {
    const capture = o.capture;
    const outbound = capture
      ? capturedOutboundServer(
          pipeline,
          listener('outbound'),
          capturedDestination(new ConntrackTable(capture.conntrackFd), () => outboundAddresses(pipeline)),
        )
      : outboundServer(pipeline, listener('outbound'));
    ports.outbound = await listen(outbound, capture?.outboundHost ?? o.bindHost, o.outboundPort);
    const inbound = inboundServer(
      pipeline,
      creds,
      () => pipeline.config?.acceptsPlaintext ?? false,
      listener('inbound'),
    );
    ports.inbound = await listen(inbound, o.bindHost, o.inboundPort);
    node.inboundPort = ports.inbound;
    servers.push(outbound, inbound);
  }

  const admin = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/stats/prometheus' || url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(registry.render() + upstreamState.render());
    } else if (url === '/config_dump') {
      res.writeHead(pipeline.config ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(pipeline.config?.snapshot ?? null, null, 2));
    } else if (url === '/ready') {
      res.writeHead(pipeline.config ? 200 : 503);
      res.end(pipeline.config ? 'LIVE\n' : 'no snapshot yet\n');
    } else if (url === '/certs') {
      const c = creds.has() ? creds.get() : undefined;
      res.writeHead(c ? 200 : 503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          c
            ? { identity: c.identity, notBefore: c.notBefore, notAfter: c.notAfter, issued: certsIssued }
            : null,
        ),
      );
    } else if (url === '/healthz') {
      res.writeHead(200);
      res.end('ok\n');
    } else {
      res.writeHead(404);
      res.end('endpoints: /stats/prometheus /config_dump /certs /ready /healthz\n');
    }
  });
  ports.admin = await listen(admin, o.bindHost, o.adminPort);
  servers.push(admin);

  const health =
    node.role === 'sidecar' && o.readiness
      ? new AppHealth(o.readiness, (h) => agent.reportHealth(h))
      : undefined;
  node.healthy = health ? await health.start() : true;

  agent.connect();

  return {
    ports,
    current: () => pipeline.config?.snapshot,
    async close() {
      health?.stop();
      clearInterval(counterReports);
      agent.stop();
      // Graceful drain: stop accepting, let in-flight exchanges finish, then drop pooled sessions.
      await Promise.all([...servers, ...[...gateways.values()].map((g) => g.server)].map(closeServer));
      dns.close();
      peers.close();
      external.close();
      pipeline.close();
    },
  };
}
