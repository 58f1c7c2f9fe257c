// What keeps a client from exhausting a listener, in the spirit of Envoy's overload manager: a bound
// on connections (past it new ones are closed at accept, open ones keep being served), bounded time to
// say what protocol a connection speaks and to finish a TLS handshake, and the counters that show it.
import type net from 'node:net';
import type { Logger } from '../lib/log.ts';
import type { CounterSeries, GaugeSeries, Registry } from '../telemetry/metrics.ts';

export interface ListenerLimits {
  /** Connections served at once per listener; Envoy's per-listener `max_connections`. */
  maxConnections: number;
  /** From accept to enough bytes to tell TLS, h2c and HTTP/1 apart (Envoy's listener_filters_timeout). */
  sniffTimeoutMs: number;
  /** For the TLS handshake of the inbound mTLS listener, after the sniff. */
  handshakeTimeoutMs: number;
  /** After the last response of a connection the proxy closes, how long the client may take to close. */
  delayedCloseMs: number;
  /** Streams open at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
}

/**
 * A few thousand connections per listener: a sidecar has two listeners and its upstream pools, all
 * well below a process's usual file-descriptor limit (Node raises the soft limit to the hard one).
 */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  maxConnections: 4096,
  sniffTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  delayedCloseMs: 1000,
  maxConcurrentStreams: 100,
};

/** An overflow is logged at most this often per listener, with the count since the last line. */
const OVERFLOW_LOG_EVERY_MS = 10_000;

/** What a listener function is told about the listener it builds. */
export interface ListenerSettings {
  /** As in the snapshot: `outbound`, `inbound`, `0.0.0.0_<port>`; the metrics' `listener` label. */
  name: string;
  limits: ListenerLimits;
  stats: ListenerStats;
}

/** The downstream connection counters of one listener, named as Envoy's `listener.*` stats. */
export interface ListenerCounters {
  readonly name: string;
  readonly total: CounterSeries;
  readonly active: GaugeSeries;
  readonly overflow: CounterSeries;
  readonly preCxTimeout: CounterSeries;
}

/** The proxy's listener metrics; one family per counter, one series per listener. */
export class ListenerStats {
  private readonly families;
  private readonly log: Logger;

  constructor(registry: Registry, log: Logger) {
    this.log = log;
    const labels = ['listener'];
    this.families = {
      total: registry.counter(
        'trellis_listener_downstream_cx_total',
        'Connections accepted by a listener.',
        labels,
      ),
      active: registry.gauge(
        'trellis_listener_downstream_cx_active',
        'Connections a listener holds open now.',
        labels,
      ),
      overflow: registry.counter(
        'trellis_listener_downstream_cx_overflow_total',
        'Connections a listener refused at accept because it held its maximum.',
        labels,
      ),
      preCxTimeout: registry.counter(
        'trellis_listener_downstream_pre_cx_timeout_total',
        'Connections closed because they did not tell their protocol or finish the TLS handshake in time.',
        labels,
      ),
    };
  }

  private listener(name: string): ListenerCounters {
    const f = this.families;
    return {
      name,
      total: f.total.series([name]),
      active: f.active.series([name]),
      overflow: f.overflow.series([name]),
      preCxTimeout: f.preCxTimeout.series([name]),
    };
  }

  /**
   * Applies the connection bound to a listener's socket server and counts what it accepts and
   * refuses. Node closes a connection past `maxConnections` as soon as it is accepted ('drop').
   */
  guard(server: net.Server, name: string, limits: ListenerLimits): ListenerCounters {
    const counters = this.listener(name);
    server.maxConnections = limits.maxConnections;
    let lastLog = Number.NEGATIVE_INFINITY;
    let unlogged = 0;
    server.on('drop', () => {
      counters.overflow.inc();
      unlogged++;
      const now = performance.now();
      if (now - lastLog < OVERFLOW_LOG_EVERY_MS) return;
      lastLog = now;
      this.log.warn('listener overflow: connections refused', {
        listener: counters.name,
        refused: unlogged,
        maxConnections: limits.maxConnections,
      });
      unlogged = 0;
    });
    server.on('connection', (socket: net.Socket) => {
      counters.total.inc();
      counters.active.inc();
      socket.once('close', () => counters.active.dec());
    });
    return counters;
  }
}
