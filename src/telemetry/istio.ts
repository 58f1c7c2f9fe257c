/**
 * Istio's standard service-level metrics, with Istio's names, label names, label values and default
 * buckets, so existing Istio dashboards, Kiali and alert rules work against Trellis proxies unchanged;
 * and beside them the authorization counters that name the policy Envoy's RBAC stats leave out.
 * Reference: https://istio.io/latest/docs/reference/config/metrics/ and istio/proxy's istio_stats filter.
 */
import type { Counter, CounterSeries, Histogram, HistogramSeries, Registry } from './metrics.ts';

export type IstioReporter = 'source' | 'destination';
export type ConnectionSecurityPolicy = 'mutual_tls' | 'none' | 'unknown';

/**
 * Labels shared by HTTP and TCP metrics. Istio reports "unknown" for identity it could not learn.
 *
 * The four canonical_* labels are optional because Istio derives them the same way we do when they are
 * unset: canonical service from the app label (else the workload name), canonical revision from the
 * version label (else "latest"). Istio always emits them; Kiali's graph is keyed on them.
 */
export interface IstioPeerLabels {
  reporter: IstioReporter;
  source_workload: string;
  source_workload_namespace: string;
  source_principal: string;
  source_app: string;
  source_version: string;
  source_canonical_service?: string;
  source_canonical_revision?: string;
  source_cluster: string;
  destination_workload: string;
  destination_workload_namespace: string;
  destination_principal: string;
  destination_app: string;
  destination_version: string;
  destination_service: string;
  destination_service_name: string;
  destination_service_namespace: string;
  destination_canonical_service?: string;
  destination_canonical_revision?: string;
  destination_cluster: string;
  /** Envoy short response flags, "-" when none. */
  response_flags: string;
  connection_security_policy: ConnectionSecurityPolicy;
}

export interface IstioRequestLabels extends IstioPeerLabels {
  /** "http" or "grpc". */
  request_protocol: string;
  response_code: string | number;
  /** Empty for non-gRPC requests, as in Istio. */
  grpc_response_status?: string;
}

/** TCP metrics carry request_protocol="tcp" and no response_code / grpc_response_status, as in Istio. */
export type IstioTcpLabels = IstioPeerLabels;

export interface IstioRequestSeries {
  requests: CounterSeries;
  duration: HistogramSeries;
  requestBytes: HistogramSeries;
  responseBytes: HistogramSeries;
  /** gRPC series only (request_protocol "grpc"): messages each way, as Envoy's grpc_stats counts them. */
  requestMessages?: CounterSeries;
  responseMessages?: CounterSeries;
}

export interface IstioTcpSeries {
  opened: CounterSeries;
  closed: CounterSeries;
  sentBytes: CounterSeries;
  receivedBytes: CounterSeries;
}

export interface IstioMetrics {
  requests: Counter;
  duration: Histogram;
  requestBytes: Histogram;
  responseBytes: Histogram;
  requestMessages: Counter;
  responseMessages: Counter;
  tcpOpened: Counter;
  tcpClosed: Counter;
  tcpSentBytes: Counter;
  tcpReceivedBytes: Counter;
  /**
   * Requests authorization denied, by the action whose evaluation denied (ALLOW: no ALLOW rule
   * matched), the policy and the rule index; Envoy counts `rbac.denied` without naming them.
   */
  authorizationDenied: Counter;
  /**
   * Dry-run (`istio.io/dry-run`) decisions, as Envoy's shadow engines count them with Istio's prefixes
   * `istio_dry_run_allow_` and `istio_dry_run_deny_`: by engine, result, and the policy and rule.
   */
  authorizationDryRun: Counter;
  /** Faults a route injected (VirtualService `fault`), by kind (delay, abort) and route; Envoy's `fault.*_injected`. */
  faultInjected: Counter;
  /**
   * The four request series for a label tuple. After the first request with a tuple this costs building
   * one key string and one Map lookup; callers on the hot path should go further and keep the bundle per
   * (route, cluster/endpoint, response code) so a request costs only the inc/observe calls.
   */
  requestSeries(labels: IstioRequestLabels): IstioRequestSeries;
  /** The four TCP series for a connection's labels; resolve once per connection. */
  tcpSeries(labels: IstioTcpLabels): IstioTcpSeries;
}

const PEER_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
] as const;

/** Label names of istio_requests_total and the three request histograms, in exposition order. */
export const ISTIO_REQUEST_LABELS: readonly string[] = Object.freeze([
  ...PEER_LABELS,
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
]);

/** Label names of the istio_tcp_* counters, in exposition order. */
export const ISTIO_TCP_LABELS: readonly string[] = Object.freeze([
  ...PEER_LABELS,
  'request_protocol',
  'response_flags',
  'connection_security_policy',
]);

/** Istio's default buckets for istio_request_duration_milliseconds. */
export const ISTIO_DURATION_BUCKETS_MS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
]);

/** Istio's default buckets for istio_request_bytes and istio_response_bytes. */
export const ISTIO_BYTES_BUCKETS: readonly number[] = Object.freeze([
  1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
]);

/** Same separator as the registry's series keys; a value containing it is rejected when its series is created. */
const SEP = '\u0000';

export function createIstioMetrics(registry: Registry): IstioMetrics {
  const requests = registry.counter(
    'istio_requests_total',
    'Requests handled by a proxy.',
    ISTIO_REQUEST_LABELS,
  );
  const duration = registry.histogram(
    'istio_request_duration_milliseconds',
    'Duration of requests in milliseconds.',
    ISTIO_REQUEST_LABELS,
    ISTIO_DURATION_BUCKETS_MS,
  );
  const requestBytes = registry.histogram(
    'istio_request_bytes',
    'HTTP request sizes in bytes.',
    ISTIO_REQUEST_LABELS,
    ISTIO_BYTES_BUCKETS,
  );
  const responseBytes = registry.histogram(
    'istio_response_bytes',
    'HTTP response sizes in bytes.',
    ISTIO_REQUEST_LABELS,
    ISTIO_BYTES_BUCKETS,
  );
  const requestMessages = registry.counter(
    'istio_request_messages_total',
    'gRPC messages sent by clients.',
    ISTIO_REQUEST_LABELS,
  );
  const responseMessages = registry.counter(
    'istio_response_messages_total',
    'gRPC messages sent by servers.',
    ISTIO_REQUEST_LABELS,
  );
  const tcpOpened = registry.counter(
    'istio_tcp_connections_opened_total',
    'TCP connections opened.',
    ISTIO_TCP_LABELS,
  );
  const tcpClosed = registry.counter(
    'istio_tcp_connections_closed_total',
    'TCP connections closed.',
    ISTIO_TCP_LABELS,
  );
  const tcpSentBytes = registry.counter(
    'istio_tcp_sent_bytes_total',
    'Bytes sent in responses over TCP connections.',
    ISTIO_TCP_LABELS,
  );
  const tcpReceivedBytes = registry.counter(
    'istio_tcp_received_bytes_total',
    'Bytes received in requests over TCP connections.',
    ISTIO_TCP_LABELS,
  );

  // Bundles keyed by the raw input fields, so a hit skips deriving the canonical labels and the four
  // per-family lookups. Inputs that differ only in ways that derive to the same values (an omitted vs an
  // empty canonical label, 200 vs "200") share one key or at worst two bundles over the same series.
  const requestBundles = new Map<string, IstioRequestSeries>();
  const tcpBundles = new Map<string, IstioTcpSeries>();

  const authorizationDenied = registry.counter(
    'trellis_authorization_denied_total',
    'Requests denied by authorization, by the action, policy and rule that decided.',
    ['action', 'policy', 'rule'],
  );
  const authorizationDryRun = registry.counter(
    'trellis_authorization_dry_run_total',
    'Dry-run authorization decisions (istio_dry_run_allow_/istio_dry_run_deny_ shadow results), by policy and rule.',
    ['engine', 'result', 'policy', 'rule'],
  );
  const faultInjected = registry.counter(
    'trellis_fault_injected_total',
    'Faults injected by a route (VirtualService fault), by kind (delay, abort) and the route that injected them.',
    ['kind', 'route'],
  );
  return {
    authorizationDenied,
    authorizationDryRun,
    faultInjected,
    requests,
    duration,
    requestBytes,
    responseBytes,
    requestMessages,
    responseMessages,
    tcpOpened,
    tcpClosed,
    tcpSentBytes,
    tcpReceivedBytes,
    requestSeries(l) {
      const key =
        peerKey(l) +
        SEP +
        l.request_protocol +
        SEP +
        l.response_code +
        SEP +
        (l.grpc_response_status ?? '') +
        SEP +
        l.response_flags +
        SEP +
        l.connection_security_policy;
      let bundle = requestBundles.get(key);
      if (bundle === undefined) {
        const values = [
          ...peerValues(l),
          l.request_protocol,
          String(l.response_code),
          l.grpc_response_status ?? '',
          l.response_flags,
          l.connection_security_policy,
        ];
        bundle = {
          requests: requests.series(values),
          duration: duration.series(values),
          requestBytes: requestBytes.series(values),
          responseBytes: responseBytes.series(values),
        };
        if (l.request_protocol === 'grpc') {
          bundle.requestMessages = requestMessages.series(values);
          bundle.responseMessages = responseMessages.series(values);
        }
        requestBundles.set(key, bundle);
      }
      return bundle;
    },
    tcpSeries(l) {
      const key = peerKey(l) + SEP + l.response_flags + SEP + l.connection_security_policy;
      let bundle = tcpBundles.get(key);
      if (bundle === undefined) {
        const values = [...peerValues(l), 'tcp', l.response_flags, l.connection_security_policy];
        bundle = {
          opened: tcpOpened.series(values),
          closed: tcpClosed.series(values),
          sentBytes: tcpSentBytes.series(values),
          receivedBytes: tcpReceivedBytes.series(values),
        };
        tcpBundles.set(key, bundle);
      }
      return bundle;
    },
  };
}

/** Cache key over every peer input field. Written out rather than looped so it stays a monomorphic concat. */
function peerKey(l: IstioPeerLabels): string {
  return (
    l.reporter +
    SEP +
    l.source_workload +
    SEP +
    l.source_workload_namespace +
    SEP +
    l.source_principal +
    SEP +
    l.source_app +
    SEP +
    l.source_version +
    SEP +
    (l.source_canonical_service ?? '') +
    SEP +
    (l.source_canonical_revision ?? '') +
    SEP +
    l.source_cluster +
    SEP +
    l.destination_workload +
    SEP +
    l.destination_workload_namespace +
    SEP +
    l.destination_principal +
    SEP +
    l.destination_app +
    SEP +
    l.destination_version +
    SEP +
    l.destination_service +
    SEP +
    l.destination_service_name +
    SEP +
    l.destination_service_namespace +
    SEP +
    (l.destination_canonical_service ?? '') +
    SEP +
    (l.destination_canonical_revision ?? '') +
    SEP +
    l.destination_cluster
  );
}

/** Label values in PEER_LABELS order, with Istio's fallbacks for the canonical labels. */
function peerValues(l: IstioPeerLabels): string[] {
  return [
    l.reporter,
    l.source_workload,
    l.source_workload_namespace,
    l.source_principal,
    l.source_app,
    l.source_version,
    l.source_canonical_service || known(l.source_app) || l.source_workload,
    l.source_canonical_revision || known(l.source_version) || 'latest',
    l.source_cluster,
    l.destination_workload,
    l.destination_workload_namespace,
    l.destination_principal,
    l.destination_app,
    l.destination_version,
    l.destination_service,
    l.destination_service_name,
    l.destination_service_namespace,
    l.destination_canonical_service || known(l.destination_app) || l.destination_workload,
    l.destination_canonical_revision || known(l.destination_version) || 'latest',
    l.destination_cluster,
  ];
}

function known(v: string): string {
  return v === 'unknown' ? '' : v;
}
