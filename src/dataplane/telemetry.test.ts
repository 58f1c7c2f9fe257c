import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createIstioMetrics } from '../telemetry/istio.ts';
import { Registry } from '../telemetry/metrics.ts';
import { encodePeer, type PeerInfo, RequestTelemetry } from './telemetry.ts';

const self: PeerInfo = {
  workload: 'reviews-v1',
  namespace: 'default',
  app: 'reviews',
  version: 'v1',
  principal: 'spiffe://cluster.local/ns/default/sa/reviews',
};
const caller: PeerInfo = {
  workload: 'productpage-v1',
  namespace: 'default',
  app: 'productpage',
  version: 'v1',
  principal: 'spiffe://cluster.local/ns/default/sa/productpage',
};
const exchange = { service: 'reviews.default.svc.cluster.local', code: 200, flags: '-', mtls: true };

test('request telemetry: Istio labels from both ends, one series per peer and outcome', () => {
  const registry = new Registry();
  const t = new RequestTelemetry(createIstioMetrics(registry), self);
  const peer = t.peer(encodePeer(caller), caller.principal);
  assert.equal(t.peer(encodePeer(caller), caller.principal), peer, 'a peer header is decoded once');
  assert.deepEqual(peer, caller);
  for (let i = 0; i < 3; i++)
    t.record('destination', peer, { ...exchange, durationMs: 1, requestBytes: 0, responseBytes: 10 });
  t.record('destination', peer, {
    ...exchange,
    code: 503,
    flags: 'UF',
    durationMs: 1,
    requestBytes: 0,
    responseBytes: 0,
  });
  t.record('destination', t.peer(undefined, undefined), {
    ...exchange,
    mtls: false,
    durationMs: 1,
    requestBytes: 0,
    responseBytes: 0,
  });
  const text = registry.render();
  assert.match(
    text,
    /istio_requests_total\{reporter="destination",source_workload="productpage-v1",[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/default\/sa\/productpage"[^}]*destination_workload="reviews-v1"[^}]*destination_service_name="reviews"[^}]*response_code="200",[^}]*connection_security_policy="mutual_tls"\} 3\n/,
  );
  assert.match(text, /istio_requests_total\{[^}]*response_code="503",[^}]*response_flags="UF"[^}]*\} 1\n/);
  assert.match(
    text,
    /istio_requests_total\{reporter="destination",source_workload="unknown",[^}]*connection_security_policy="none"\} 1\n/,
  );
});

test('gRPC exchanges: request_protocol grpc, grpc_response_status, message counts; HTTP ones have none', () => {
  const registry = new Registry();
  const t = new RequestTelemetry(createIstioMetrics(registry), self);
  const peer = t.peer(encodePeer(caller), caller.principal);
  const base = { ...exchange, durationMs: 1, requestBytes: 0, responseBytes: 0 };
  t.record('destination', peer, { ...base, grpc: { status: '0', requestMessages: 3, responseMessages: 5 } });
  t.record('destination', peer, { ...base, grpc: { status: '0', requestMessages: 1, responseMessages: 1 } });
  t.record('destination', peer, { ...base, grpc: { status: '14', requestMessages: 1, responseMessages: 0 } });
  t.record('destination', peer, base);
  const text = registry.render();
  const sample = (name: string, labels: string) =>
    new RegExp(`${name}\\{[^}]*${labels}[^}]*\\} (\\d+)`).exec(text)?.[1];
  assert.equal(
    sample('istio_requests_total', 'request_protocol="grpc",response_code="200",grpc_response_status="0"'),
    '2',
  );
  assert.equal(sample('istio_requests_total', 'grpc_response_status="14"'), '1');
  assert.equal(sample('istio_request_messages_total', 'grpc_response_status="0"'), '4');
  assert.equal(sample('istio_response_messages_total', 'grpc_response_status="0"'), '6');
  assert.equal(
    sample('istio_requests_total', 'request_protocol="http",response_code="200",grpc_response_status=""'),
    '1',
  );
  assert.doesNotMatch(
    text,
    /istio_request_messages_total\{[^}]*request_protocol="http"/,
    'no message series for HTTP',
  );
});
