import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createIstioMetrics,
  ISTIO_BYTES_BUCKETS,
  ISTIO_DURATION_BUCKETS_MS,
  ISTIO_REQUEST_LABELS,
  ISTIO_TCP_LABELS,
  type IstioRequestLabels,
} from './istio.ts';
import { Registry } from './metrics.ts';
import { parsePrometheusText } from './parse.ts';

// Istio's label names, as emitted by istio/proxy's istio_stats filter (see its all_tags_ table).
const ISTIO_HTTP_LABEL_NAMES = [
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
  'request_protocol',
  'response_flags',
  'connection_security_policy',
  'response_code',
  'grpc_response_status',
];
const HTTP_ONLY = ['response_code', 'grpc_response_status'];

const reviews: IstioRequestLabels = {
  reporter: 'destination',
  source_workload: 'productpage-v1',
  source_workload_namespace: 'bookinfo',
  source_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage',
  source_app: 'productpage',
  source_version: 'v1',
  source_cluster: 'Kubernetes',
  destination_workload: 'reviews-v2',
  destination_workload_namespace: 'bookinfo',
  destination_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews',
  destination_app: 'reviews',
  destination_version: 'v2',
  destination_service: 'reviews.bookinfo.svc.cluster.local',
  destination_service_name: 'reviews',
  destination_service_namespace: 'bookinfo',
  destination_cluster: 'Kubernetes',
  request_protocol: 'http',
  response_code: 200,
  response_flags: '-',
  connection_security_policy: 'mutual_tls',
};

describe('Istio standard metrics', () => {
  it('registers Istio metric names with Istio types', () => {
    const r = new Registry();
    const m = createIstioMetrics(r);
    const types = Object.fromEntries(
      [...r.render().matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name, type]),
    );
    assert.deepEqual(types, {
      istio_request_bytes: 'histogram',
      istio_request_duration_milliseconds: 'histogram',
      istio_requests_total: 'counter',
      istio_request_messages_total: 'counter',
      istio_response_bytes: 'histogram',
      istio_response_messages_total: 'counter',
      istio_tcp_connections_closed_total: 'counter',
      istio_tcp_connections_opened_total: 'counter',
      istio_tcp_received_bytes_total: 'counter',
      istio_tcp_sent_bytes_total: 'counter',
      trellis_authorization_denied_total: 'counter',
      trellis_authorization_dry_run_total: 'counter',
      trellis_fault_injected_total: 'counter',
    });
    assert.deepEqual(
      m.duration.buckets,
      [
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
        3600000,
      ],
    );
    assert.deepEqual(
      m.requestBytes.buckets,
      [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000],
    );
    assert.deepEqual(m.responseBytes.buckets, ISTIO_BYTES_BUCKETS);
    assert.deepEqual(m.duration.buckets, ISTIO_DURATION_BUCKETS_MS);
  });

  it('uses exactly Istio label names: full set on HTTP metrics, no response code labels on TCP', () => {
    const m = createIstioMetrics(new Registry());
    const sorted = (xs: readonly string[]) => [...xs].sort();
    for (const f of [m.requests, m.duration, m.requestBytes, m.responseBytes]) {
      assert.deepEqual(sorted(f.labelNames), sorted(ISTIO_HTTP_LABEL_NAMES), f.name);
    }
    const tcp = ISTIO_HTTP_LABEL_NAMES.filter((l) => !HTTP_ONLY.includes(l));
    for (const f of [m.tcpOpened, m.tcpClosed, m.tcpSentBytes, m.tcpReceivedBytes]) {
      assert.deepEqual(sorted(f.labelNames), sorted(tcp), f.name);
    }
    assert.deepEqual(sorted(ISTIO_REQUEST_LABELS), sorted(ISTIO_HTTP_LABEL_NAMES));
    assert.deepEqual(sorted(ISTIO_TCP_LABELS), sorted(tcp));
  });

  it('records a request and exposes Istio label values, deriving canonical labels like Istio', () => {
    const r = new Registry();
    const m = createIstioMetrics(r);
    const s = m.requestSeries(reviews);
    s.requests.inc();
    s.duration.observe(7.5);
    s.requestBytes.observe(120);
    s.responseBytes.observe(4096);
    const samples = parsePrometheusText(r.render());
    const total = samples.find((x) => x.name === 'istio_requests_total');
    assert.ok(total);
    assert.equal(total.value, 1);
    assert.deepEqual(total.labels, {
      ...reviews,
      response_code: '200',
      grpc_response_status: '',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      destination_canonical_service: 'reviews',
      destination_canonical_revision: 'v2',
    });
    const bucket = (name: string, le: string) =>
      samples.find((x) => x.name === name && x.labels.le === le)?.value;
    assert.equal(bucket('istio_request_duration_milliseconds_bucket', '5'), 0);
    assert.equal(bucket('istio_request_duration_milliseconds_bucket', '10'), 1);
    assert.equal(bucket('istio_response_bytes_bucket', '1000'), 0);
    assert.equal(bucket('istio_response_bytes_bucket', '10000'), 1);
  });

  it('falls back to workload and "latest" for canonical labels when app/version are unknown', () => {
    const r = new Registry();
    const m = createIstioMetrics(r);
    m.requestSeries({
      ...reviews,
      source_app: 'unknown',
      source_version: 'unknown',
      destination_canonical_service: 'reviews-canon',
      destination_canonical_revision: 'r7',
    }).requests.inc();
    const total = parsePrometheusText(r.render()).find((x) => x.name === 'istio_requests_total');
    assert.equal(total?.labels.source_canonical_service, 'productpage-v1');
    assert.equal(total?.labels.source_canonical_revision, 'latest');
    assert.equal(total?.labels.destination_canonical_service, 'reviews-canon');
    assert.equal(total?.labels.destination_canonical_revision, 'r7');
  });

  it('caches request bundles: same tuple, same bundle; any field changed, different bundle', () => {
    const m = createIstioMetrics(new Registry());
    const a = m.requestSeries(reviews);
    assert.equal(m.requestSeries({ ...reviews }), a);
    assert.equal(m.requestSeries({ ...reviews, response_code: '200' }).requests, a.requests);
    const fields = Object.keys(reviews) as (keyof IstioRequestLabels)[];
    for (const f of [...fields, 'grpc_response_status', 'source_canonical_service'] as const) {
      const changed = { ...reviews, [f]: `${reviews[f] ?? ''}x` } as IstioRequestLabels;
      assert.notEqual(m.requestSeries(changed).requests, a.requests, f);
    }
    // Two instances over one registry share families (and so series).
    const r = new Registry();
    const b1 = createIstioMetrics(r).requestSeries(reviews);
    assert.equal(createIstioMetrics(r).requestSeries(reviews).duration, b1.duration);
  });

  it('records TCP connections with request_protocol="tcp"', () => {
    const r = new Registry();
    const m = createIstioMetrics(r);
    const { request_protocol, response_code, ...peer } = reviews;
    const t = m.tcpSeries(peer);
    assert.equal(m.tcpSeries({ ...peer }), t);
    t.opened.inc();
    t.sentBytes.inc(1500);
    t.receivedBytes.inc(300);
    t.closed.inc();
    const samples = parsePrometheusText(r.render()).filter((x) => x.name.startsWith('istio_tcp_'));
    assert.deepEqual(
      samples.map((x) => [x.name, x.value]),
      [
        ['istio_tcp_connections_closed_total', 1],
        ['istio_tcp_connections_opened_total', 1],
        ['istio_tcp_received_bytes_total', 300],
        ['istio_tcp_sent_bytes_total', 1500],
      ],
    );
    assert.equal(samples[0].labels.request_protocol, 'tcp');
    assert.equal(samples[0].labels.response_code, undefined);
  });

  it('rejects label values containing U+0000 instead of risking a key collision', () => {
    const m = createIstioMetrics(new Registry());
    assert.throws(() => m.requestSeries({ ...reviews, source_workload: 'a\u0000b' }), /U\+0000/);
  });
});
