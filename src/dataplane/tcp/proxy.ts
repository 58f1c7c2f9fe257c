// The L4 path: connections proxied as bytes. Outbound, a connection for a TCP or TLS service port (or
// a sniffed one that is not HTTP) is routed by the port's tcp routes, or by its ClientHello's SNI
// through the tls routes, to a cluster; an endpoint is picked and the bytes go over mTLS (ALPN
// `trellis-tcp`, secure naming as for HTTP) to its proxy. Inbound, such a stream is authorized once,
// before any byte reaches the app, then joined to the app's port. Both ends report Istio's TCP
// metrics. Nothing here depends on how the connection arrived (a CONNECT tunnel, transparent
// capture, later a gateway listener).
import net, { type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../client-hello.ts';
import type { ProxyConfig } from '../config.ts';
import type { PeerTls } from '../http/context.ts';
import type { PeerInfo } from '../telemetry.ts';
import type { ClusterRuntime, EndpointRuntime } from '../upstream/cluster.ts';
import { tuneUpstreamSocket } from '../upstream/connect.ts';
import type { PeerPool } from '../upstream/peer-pool.ts';
import { ConnectionAttributes, type ConnectionAuthorization } from './authorize.ts';
import { pipe } from './pipe.ts';
import { type L4Port, L4Routes, type L4Target, pickCluster } from './routes.ts';
import { httpStart, peek } from './sniff.ts';
import type { ConnectionInfo, ConnectionTelemetry } from './telemetry.ts';

/** Istio's default idle timeout for proxied TCP (DestinationRule `connectionPool.tcp.idleTimeout`). */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;
/**
 * A sniffed port waits this long for the client's first bytes, then proxies as TCP: a server-first
 * protocol (MySQL, SMTP) says nothing until the server does. Name such ports `tcp-*` to skip the wait.
 */
export const DETECTION_TIMEOUT_MS = 5000;
/** The peer metadata a client proxy sends first on a stream (cf. Istio's istio-peer-exchange). */
const MAX_PEER_FRAME = 1024;
/** How long a TLS port waits for the ClientHello before proxying without SNI. */
const HELLO_TIMEOUT_MS = 10_000;
/** How long an inbound stream may take to send its peer frame. */
const PEER_FRAME_TIMEOUT_MS = 10_000;

/** Where a connection was going: `host` an FQDN, a short name or an IP, as the app named it. */
export interface ConnectionDestination {
  host: string;
  port: number;
}

/** Serves a connection found to speak HTTP on the outbound side; `tunnel` is its `host:port`. */
export type HttpServe = (socket: Socket, tunnel: string, protocol: 'http1' | 'h2') => void;

/** The L4 view of one applied snapshot. */
export interface TcpConfig {
  cfg: ProxyConfig | undefined;
  routes: L4Routes;
  /** The workload's policies for connections; absent: every connection is allowed. */
  authorization: ConnectionAuthorization | undefined;
}

export interface TcpProxyDeps {
  peers: PeerPool;
  telemetry: ConnectionTelemetry;
  /** The calling workload from the peer frame and the mTLS identity (cached, as for HTTP). */
  peerOf(header: string | undefined, principal: string | undefined): PeerInfo;
  /** Our peer frame's text. */
  selfHeader: string;
  appPort(workloadPort: number): number;
}

const UNKNOWN: PeerInfo = {
  workload: 'unknown',
  namespace: 'unknown',
  app: 'unknown',
  version: 'unknown',
  principal: 'unknown',
};

function ipOf(host: string): string | undefined {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return net.isIP(h) ? h : undefined;
}

export class TcpProxy {
  private readonly deps: TcpProxyDeps;
  constructor(deps: TcpProxyDeps) {
    this.deps = deps;
  }

  /**
   * An app's connection for `dest`. A port that is HTTP (or not a mesh service port we know) goes to
   * `http`; the rest is proxied as bytes. The socket may hold unread bytes (it is paused).
   */
  outbound(tc: TcpConfig, socket: Socket, dest: ConnectionDestination, http: HttpServe | undefined): void {
    const authority = `${dest.host.toLowerCase()}:${dest.port}`;
    const port = tc.routes.port(authority);
    const toHttp = (protocol: 'http1' | 'h2') => {
      if (http) http(socket, authority, protocol);
      else socket.destroy();
    };
    if (!port || port.protocol === 'HTTP') {
      // HTTP/1.1, or HTTP/2 with prior knowledge when a captured connection starts with its preface.
      peek(
        socket,
        24,
        DETECTION_TIMEOUT_MS,
        (seen, full) => {
          const kind = httpStart(seen);
          return kind === 'more' && !full ? undefined : kind === 'h2' ? 'h2' : 'http1';
        },
        toHttp,
      );
      return;
    }
    const ip = ipOf(dest.host);
    const info: ConnectionInfo = {
      reporter: 'source',
      peer: UNKNOWN,
      service: port.service,
      mtls: false,
      downstream: `${socket.remoteAddress}:${socket.remotePort}`,
    };
    socket.on('error', () => socket.destroy());
    if (port.protocol === 'TCP') {
      this.route(socket, port, info, L4Routes.tcp(port, ip));
      return;
    }
    const byHello = () =>
      peek(
        socket,
        // The hello and the headers of the records it spans.
        MAX_CLIENT_HELLO_BYTES + 5,
        HELLO_TIMEOUT_MS,
        (seen, full) => {
          const hello = parseClientHello(seen);
          return hello.state === 'partial' && !full ? undefined : hello;
        },
        (hello) => {
          const sni = hello.state === 'complete' ? hello.sni : undefined;
          if (sni) info.sni = sni;
          const target = (sni !== undefined && L4Routes.tls(port, sni, ip)) || L4Routes.tcp(port, ip);
          this.route(socket, port, info, target);
        },
      );
    if (port.protocol === 'TLS') {
      byHello();
      return;
    }
    // Sniffed: HTTP goes to the HTTP routes, a ClientHello by SNI, anything else (or silence) as TCP.
    peek(
      socket,
      32,
      DETECTION_TIMEOUT_MS,
      (seen, full) => {
        const kind = seen.length === 0 ? 'more' : seen[0] === 0x16 ? 'tls' : httpStart(seen);
        return kind === 'more' && !full ? undefined : kind;
      },
      (kind) => {
        if (kind === 'http1' || kind === 'h2') toHttp(kind);
        else if (kind === 'tls' && port.tls.length) byHello();
        else this.route(socket, port, info, L4Routes.tcp(port, ip));
      },
    );
  }

  private route(socket: Socket, port: L4Port, info: ConnectionInfo, target: L4Target | undefined): void {
    const t = this.deps.telemetry;
    if (!target) {
      t.refused(info, 'NR', `no tcp or tls route of ${port.name} matches`);
      socket.destroy();
      return;
    }
    const cluster = pickCluster(target);
    if (!cluster) {
      t.refused(info, 'NR', `${target.route.origin}: no cluster`);
      socket.destroy();
      return;
    }
    const pool = cluster.cluster.connectionPool;
    const state = cluster.state;
    if (pool?.maxConnections !== undefined && state.activeTcp >= pool.maxConnections) {
      state.stats.upstream_cx_overflow++;
      t.refused(info, 'UO', `maxConnections ${pool.maxConnections} of ${cluster.cluster.name} reached`);
      socket.destroy();
      return;
    }
    const ep = cluster.pick({ headers: {}, path: '', sourceAddress: socket.remoteAddress ?? '' });
    if (!ep) {
      t.refused(info, 'UH', `${target.route.origin}: no healthy endpoint in ${cluster.cluster.name}`);
      socket.destroy();
      return;
    }
    info.peer = ep.peer;
    this.connect(socket, cluster, ep, info, target.route.origin);
  }

  private connect(
    socket: Socket,
    cluster: ClusterRuntime,
    ep: EndpointRuntime,
    info: ConnectionInfo,
    origin: string,
  ): void {
    const c = cluster.cluster;
    const tls = c.tls;
    const pool = c.connectionPool;
    const e = ep.endpoint;
    const upstream = `${e.address}:${e.port}`;
    let up: Socket;
    let ready: 'connect' | 'secureConnect';
    if (tls.mode === 'ISTIO_MUTUAL') {
      up = this.deps.peers.stream(e, tls.sni, tls.identities, pool);
      ready = 'secureConnect';
    } else if (tls.mode === 'DISABLE') {
      up = net.connect({ host: e.address, port: e.port, allowHalfOpen: true });
      tuneUpstreamSocket(up, pool, 'connect');
      ready = 'connect';
    } else {
      this.deps.telemetry.refused(
        info,
        'UF',
        `${c.name}: TLS origination (${tls.mode}) is not proxied for TCP yet`,
      );
      socket.destroy();
      return;
    }
    // Counted from the connect attempt, as Envoy counts a cluster's connections toward maxConnections.
    cluster.state.activeTcp++;
    ep.state.active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      cluster.state.activeTcp--;
      ep.state.active--;
    };
    const downGone = () => up.destroy();
    socket.once('close', downGone);
    const fail = (err: Error) => {
      release();
      socket.off('close', downGone);
      if (socket.destroyed) return;
      this.deps.telemetry.refused(info, 'UF', `${c.name} ${upstream}: ${err.message}`);
      socket.destroy();
    };
    up.once('error', fail);
    up.once(ready, () => {
      up.off('error', fail);
      socket.off('close', downGone);
      if (tls.mode === 'ISTIO_MUTUAL') up.write(peerFrame(this.deps.selfHeader));
      this.join(socket, up, info, c, origin, upstream, release);
    });
  }

  private join(
    down: Socket,
    up: Socket,
    info: ConnectionInfo,
    c: ClusterRuntime['cluster'] | undefined,
    route: string,
    upstream: string,
    release: () => void,
  ): void {
    const t = this.deps.telemetry;
    const s = t.established(info);
    const startedAt = performance.now();
    const pool = c?.connectionPool;
    pipe(
      down,
      up,
      {
        idleTimeoutMs: pool?.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
        maxDurationMs: pool?.maxConnectionDurationMs,
        onReceived: (n) => s.receivedBytes.inc(n),
        onSent: (n) => s.sentBytes.inc(n),
      },
      (r) => {
        release();
        t.closed(info, s, r, route, upstream, startedAt);
      },
    );
  }

  /**
   * A TCP stream from a client proxy (mTLS, ALPN `trellis-tcp`): its peer frame, the service it asked
   * for by SNI, the workload's policies, then the app's port.
   */
  inbound(tc: TcpConfig, socket: TLSSocket, peer: PeerTls): void {
    const info: ConnectionInfo = {
      reporter: 'destination',
      peer: UNKNOWN,
      service: peer.service?.slice(0, peer.service.lastIndexOf(':')) ?? 'unknown',
      mtls: true,
      downstream: `${socket.remoteAddress}:${socket.remotePort}`,
      ...(peer.sni ? { sni: peer.sni } : {}),
    };
    socket.on('error', () => socket.destroy());
    peek(
      socket,
      2 + MAX_PEER_FRAME,
      PEER_FRAME_TIMEOUT_MS,
      (seen, full) => {
        const len = seen.length >= 2 ? seen.readUInt16BE(0) : -1;
        if (len > MAX_PEER_FRAME) return null;
        if (len >= 0 && seen.length >= 2 + len) return len;
        return full ? null : undefined;
      },
      (len) => {
        if (len === null) {
          this.deps.telemetry.refused(info, 'DPE', 'malformed peer frame on a TCP stream');
          socket.destroy();
          return;
        }
        // The frame is consumed; what follows it is the client's own bytes.
        const frame = socket.read(2 + len) as Buffer | null;
        info.peer = this.deps.peerOf(frame?.toString('utf8', 2) || undefined, peer.identity);
        this.toApp(tc, socket, peer, info);
      },
    );
  }

  private toApp(tc: TcpConfig, socket: TLSSocket, peer: PeerTls, info: ConnectionInfo): void {
    const t = this.deps.telemetry;
    const targetPort = peer.service ? tc.cfg?.inboundByService.get(peer.service) : undefined;
    if (targetPort === undefined) {
      t.refused(info, 'NR', `no inbound service ${peer.service ?? '<no SNI>'} on this workload`);
      socket.destroy();
      return;
    }
    if (tc.authorization) {
      const attrs = new ConnectionAttributes({
        identity: peer.identity,
        sourceIp: socket.remoteAddress,
        destinationIp: socket.localAddress,
        sni: peer.sni,
        port: targetPort,
      });
      const v = tc.authorization.decide(attrs, (msg, f) => t.note(msg, f));
      if (!v.allow) {
        t.refused(info, 'RBAC', v.rule);
        socket.destroy();
        return;
      }
    }
    const app = net.connect({ host: '127.0.0.1', port: this.deps.appPort(targetPort), allowHalfOpen: true });
    app.setNoDelay(true);
    const downGone = () => app.destroy();
    socket.once('close', downGone);
    app.once('error', (err) => {
      socket.off('close', downGone);
      if (socket.destroyed) return;
      t.refused(info, 'UF', `inbound|${targetPort}||: ${err.message}`);
      socket.destroy();
    });
    app.once('connect', () => {
      app.removeAllListeners('error');
      socket.off('close', downGone);
      this.join(
        socket,
        app,
        info,
        tc.cfg?.clusters.get(`inbound|${targetPort}||`)?.cluster,
        `inbound|${targetPort}||`,
        `127.0.0.1:${targetPort}`,
        () => {},
      );
    });
  }
}

/** Our peer metadata for the server proxy: a 2-byte length and the peer header's text. */
function peerFrame(header: string): Buffer {
  const text = Buffer.from(header, 'utf8').subarray(0, MAX_PEER_FRAME);
  const b = Buffer.allocUnsafe(2 + text.length);
  b.writeUInt16BE(text.length, 0);
  text.copy(b, 2);
  return b;
}
