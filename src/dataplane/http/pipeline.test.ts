import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InboundListener, ProxySnapshot } from '../../compile/snapshot.ts';
import { createLogger } from '../../lib/log.ts';
import { createIstioMetrics } from '../../telemetry/istio.ts';
import { Registry } from '../../telemetry/metrics.ts';
import { CredentialStore } from '../agent/credentials.ts';
import { ProxyConfig } from '../config.ts';
import { UNKNOWN_PEER } from '../telemetry.ts';
import { ExternalPool } from '../upstream/external-pool.ts';
import { PeerPool } from '../upstream/peer-pool.ts';
import { PHASES, Pipeline } from './pipeline.ts';

function sidecar(inbound: Partial<InboundListener>): ProxySnapshot {
  return {
    schema: 5,
    version: 'v1',
    revision: 1,
    proxy: {
      id: 'p',
      role: 'sidecar',
      namespace: 'default',
      identity: 'spiffe://cluster.local/ns/default/sa/p',
    },
    trustDomain: 'cluster.local',
    listeners: [
      { name: 'outbound', type: 'outbound', routeTable: 'outbound' },
      { name: 'inbound', type: 'inbound', mtls: 'STRICT', services: [], ports: [9080], ...inbound },
    ],
    routeTables: [{ name: 'outbound', virtualHosts: [] }],
    clusters: [],
  };
}

const pipeline = () =>
  new Pipeline({
    self: UNKNOWN_PEER,
    peers: new PeerPool(new CredentialStore()),
    external: new ExternalPool(),
    appPort: (p) => p,
    metrics: createIstioMetrics(new Registry()),
    log: createLogger(),
    accessLog: false,
  });

test('the phases run in their fixed order', () => {
  assert.deepEqual(
    PHASES.map((p) => p.name),
    ['normalize', 'authenticate', 'authorize', 'route', 'cors', 'fault', 'upstream'],
  );
});

test('a phase the snapshot does not configure is not on the request path', () => {
  const p = pipeline();
  // STRICT everywhere: the listener cuts plaintext at accept, so there is nothing to authenticate per request.
  const strict = p.build(ProxyConfig.build(sidecar({})));
  assert.deepEqual(strict.inbound.phases, ['normalize', 'upstream']);
  assert.deepEqual(strict.outbound.phases, ['normalize', 'route', 'upstream']);

  // One PERMISSIVE port: plaintext reaches the chain, and the authenticate phase joins it.
  const permissive = p.build(ProxyConfig.build(sidecar({ portMtls: { '9080': 'PERMISSIVE' } })));
  assert.deepEqual(permissive.inbound.phases, ['normalize', 'authenticate', 'upstream']);

  // An AuthorizationPolicy applies to the workload: authorize joins the inbound chain, and only it.
  const authorized = p.build(
    ProxyConfig.build(sidecar({ authorization: { allow: [{ name: 'default/allow-nothing', rules: [] }] } })),
  );
  assert.deepEqual(authorized.inbound.phases, ['normalize', 'authorize', 'upstream']);
  assert.deepEqual(authorized.outbound.phases, ['normalize', 'route', 'upstream']);

  // Before the first snapshot only normalize runs, then the proxy answers NC.
  const none = p.build(undefined);
  assert.deepEqual(none.outbound.phases, ['normalize', 'route']);
  assert.deepEqual(none.inbound.phases, ['normalize', 'route']);
  p.close();
});
