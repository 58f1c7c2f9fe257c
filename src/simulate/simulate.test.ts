import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  bookinfoInput,
  bookinfoMesh,
  bookinfoRouting,
  INGRESS,
  PRODUCTPAGE,
  proxyOf,
  REVIEWS_V2,
} from '../../test/support/bookinfo-mesh.ts';
import type { CompileInput } from '../compile/mesh-index.ts';
import { type SimulatedRequest, type Simulation, simulate } from './simulate.ts';

const REVIEWS = 'reviews.default.svc.cluster.local';
const cluster = (subset: string) => `outbound|9080|${subset}|${REVIEWS}`;

function scenario(...files: string[]): CompileInput {
  return bookinfoInput(bookinfoRouting(...files));
}

const from = (input: CompileInput, id: string, req: SimulatedRequest) =>
  simulate(input, proxyOf(input, id), req);

/** Where a forwarded request may go: cluster, weight and the workloads it would reach. */
const targets = (sim: Simulation) =>
  sim.clusters?.map((c) => ({
    cluster: c.name,
    weight: c.weight,
    workloads: c.endpoints.map((e) => e.workload),
  }));

describe('simulate: Bookinfo request routing', () => {
  const testV2 = scenario('destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml');

  test('jason goes to reviews v2, by the VirtualService rule that matches his header', async () => {
    const sim = await from(testV2, PRODUCTPAGE, {
      authority: 'reviews:9080',
      path: '/reviews/0',
      headers: { 'End-User': 'jason' },
    });
    assert.equal(sim.listener, 'outbound');
    assert.equal(sim.virtualHost, `${REVIEWS}:9080`);
    assert.deepEqual(sim.route, {
      name: 'default/reviews#0',
      origin: 'VirtualService default/reviews http[0]',
    });
    assert.deepEqual(targets(sim), [{ cluster: cluster('v2'), weight: 100, workloads: ['reviews-v2'] }]);
    assert.equal(sim.refused, undefined);
  });

  test('everyone else goes to reviews v1, by the catch-all rule', async () => {
    for (const headers of [{}, { 'end-user': 'alice' }] as Record<string, string>[]) {
      const sim = await from(testV2, PRODUCTPAGE, { authority: 'reviews:9080', path: '/reviews/0', headers });
      assert.deepEqual(sim.route, {
        name: 'default/reviews#1',
        origin: 'VirtualService default/reviews http[1]',
      });
      assert.deepEqual(targets(sim), [{ cluster: cluster('v1'), weight: 100, workloads: ['reviews-v1'] }]);
    }
  });

  test('the 50/50 split lists both clusters with their weights and endpoints', async () => {
    const sim = await from(
      scenario('destination-rule-all.yaml', 'virtual-service-reviews-50-v3.yaml'),
      PRODUCTPAGE,
      {
        authority: 'reviews.default.svc.cluster.local:9080',
        path: '/reviews/0',
      },
    );
    assert.equal(sim.route?.origin, 'VirtualService default/reviews http[0]');
    assert.deepEqual(targets(sim), [
      { cluster: cluster('v1'), weight: 50, workloads: ['reviews-v1'] },
      { cluster: cluster('v3'), weight: 50, workloads: ['reviews-v3'] },
    ]);
  });

  test('without a VirtualService a service takes its default route to every instance', async () => {
    const sim = await from(scenario('destination-rule-all.yaml'), REVIEWS_V2, {
      authority: 'reviews',
      path: '/',
    });
    assert.deepEqual(sim.route, { name: 'default', origin: 'Service default/reviews (no VirtualService)' });
    assert.deepEqual(targets(sim), [
      { cluster: cluster(''), weight: 100, workloads: ['reviews-v1', 'reviews-v2', 'reviews-v3'] },
    ]);
  });

  test('an unhealthy endpoint is not among those the proxy would pick from', async () => {
    const proxies = bookinfoMesh().proxies.map((p) => (p.id === REVIEWS_V2 ? { ...p, healthy: false } : p));
    const input = bookinfoInput(
      bookinfoRouting('destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml'),
      proxies,
    );
    const sim = await from(input, PRODUCTPAGE, {
      authority: 'reviews',
      path: '/',
      headers: { 'end-user': 'jason' },
    });
    assert.deepEqual(targets(sim), [{ cluster: cluster('v2'), weight: 100, workloads: [] }]);
  });

  test('an unknown host falls to block_all (REGISTRY_ONLY): the proxy answers 502 NR itself', async () => {
    const sim = await from(testV2, PRODUCTPAGE, { authority: 'nowhere.example:80', path: '/' });
    assert.equal(sim.virtualHost, 'block_all');
    assert.equal(sim.route?.name, 'block_all');
    assert.equal(sim.refused?.status, 502);
    assert.equal(sim.refused?.flag, 'NR');
    assert.match(sim.refused?.reason ?? '', /REGISTRY_ONLY \(BlackHoleCluster\)/);
  });

  test('a path the proxy cannot normalize is refused before routing', async () => {
    for (const path of ['reviews/0', '/reviews/%00']) {
      const sim = await from(testV2, PRODUCTPAGE, { authority: 'reviews:9080', path });
      assert.equal(sim.refused?.status, 400, path);
      assert.equal(sim.refused?.flag, 'DPE');
      assert.equal(sim.virtualHost, undefined);
    }
  });
});

describe('simulate: the ingress gateway', () => {
  const gateway = scenario('bookinfo-gateway.yaml');

  test('the product page is routed to productpage on the gateway port', async () => {
    const sim = await from(gateway, INGRESS, {
      authority: 'localhost:8080',
      path: '/productpage',
      port: 8080,
    });
    assert.equal(sim.listener, '0.0.0.0_8080');
    assert.equal(sim.routeTable, 'http.8080');
    assert.equal(sim.virtualHost, '*:8080');
    assert.equal(sim.route?.origin, 'VirtualService default/bookinfo http[0]');
    assert.deepEqual(targets(sim), [
      {
        cluster: 'outbound|9080||productpage.default.svc.cluster.local',
        weight: 100,
        workloads: ['productpage-v1'],
      },
    ]);
  });

  test('the path is matched as the proxy normalizes it', async () => {
    const sim = await from(gateway, INGRESS, { authority: 'localhost', path: '/x/../%70roductpage?x=1' });
    assert.equal(sim.path, '/productpage?x=1');
    assert.equal(sim.route?.origin, 'VirtualService default/bookinfo http[0]');
  });

  test('a path no rule matches gets no route', async () => {
    const sim = await from(gateway, INGRESS, { authority: 'localhost', path: '/admin' });
    assert.equal(sim.virtualHost, '*:8080');
    assert.deepEqual(sim.refused, { status: 404, flag: 'NR', reason: 'no route matched in *:8080' });
  });

  test('a port the gateway does not listen on is named as such', async () => {
    await assert.rejects(
      from(gateway, INGRESS, { authority: 'localhost', path: '/', port: 443 }),
      /no listener on port 443; it has 0\.0\.0\.0_8080 \(port 8080\)/,
    );
  });
});
