// Istio's TCP metrics for proxied connections (istio_tcp_connections_opened_total, ..._closed_total,
// istio_tcp_received_bytes_total: downstream to upstream, istio_tcp_sent_bytes_total: back), with the
// same peer labels as HTTP, and the access log line of each connection when it closes. A connection
// the proxy closes itself (no route, no healthy upstream, connect failure, overflow, denied) is opened
// and closed under its response flag and logged with the rule or policy that decided.
import type { Logger } from '../../lib/log.ts';
import type { IstioMetrics, IstioTcpSeries } from '../../telemetry/istio.ts';
import { type PeerInfo, peerLabels } from '../telemetry.ts';
import type { PipeResult } from './pipe.ts';

export interface ConnectionInfo {
  reporter: 'source' | 'destination';
  /** The other side: the endpoint (source reporter) or the calling workload (destination). */
  peer: PeerInfo;
  service: string;
  mtls: boolean;
  downstream: string;
  /** The requested server name, when the connection came with a ClientHello or over mTLS. */
  sni?: string;
}

export class ConnectionTelemetry {
  private readonly metrics: IstioMetrics;
  private readonly self: PeerInfo;
  private readonly log: Logger;
  private readonly accessLog: boolean;

  constructor(metrics: IstioMetrics, self: PeerInfo, log: Logger, accessLog: boolean) {
    this.metrics = metrics;
    this.self = self;
    this.log = log;
    this.accessLog = accessLog;
  }

  private series(c: ConnectionInfo, flags: string): IstioTcpSeries {
    const source = c.reporter === 'source';
    return this.metrics.tcpSeries(
      peerLabels(
        c.reporter,
        source ? this.self : c.peer,
        source ? c.peer : this.self,
        c.service,
        flags,
        c.mtls,
      ),
    );
  }

  /** The connection is joined to its upstream: counted as opened, its bytes as they pass. */
  established(c: ConnectionInfo): IstioTcpSeries {
    const s = this.series(c, '-');
    s.opened.inc();
    return s;
  }

  closed(
    c: ConnectionInfo,
    s: IstioTcpSeries,
    r: PipeResult,
    route: string,
    upstream: string,
    startedAt: number,
  ): void {
    s.closed.inc();
    if (this.accessLog)
      this.log.info('access', {
        reporter: c.reporter,
        protocol: 'tcp',
        service: c.service,
        flags: '-',
        rule: route,
        upstream,
        downstream: c.downstream,
        sni: c.sni,
        receivedBytes: r.received,
        sentBytes: r.sent,
        end: r.end,
        durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
      });
  }

  /** An audit or dry-run match, logged as for HTTP. */
  note(msg: string, fields: Record<string, unknown>): void {
    this.log.info(msg, fields);
  }

  /** The proxy closed the connection itself: `flags` says why, `rule` who decided. */
  refused(c: ConnectionInfo, flags: string, rule: string): void {
    const s = this.series(c, flags);
    s.opened.inc();
    s.closed.inc();
    this.log.info('proxy closed connection', {
      reporter: c.reporter,
      protocol: 'tcp',
      service: c.service,
      flags,
      rule,
      downstream: c.downstream,
      sni: c.sni,
    });
  }
}
