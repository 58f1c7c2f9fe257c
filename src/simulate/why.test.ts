import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  BOOKINFO,
  bookinfoInput,
  bookinfoRouting,
  decodeResources,
} from '../../test/support/bookinfo-mesh.ts';
import { compile } from '../compile/compile.ts';
import type { CompileInput } from '../compile/mesh-index.ts';
import { type MeshView, outcomes, why } from './why.ts';

function view(input: CompileInput): MeshView {
  return {
    nodes: input.proxies,
    snapshot: async (id) => compile(input, input.proxies.find((p) => p.id === id)!),
  };
}

const security = (file: string) => {
  const f = path.join(BOOKINFO, 'security', file);
  return decodeResources(readFileSync(f, 'utf8'), f, 100);
};

describe('why: hop by hop', () => {
  const input = bookinfoInput([
    ...bookinfoRouting('bookinfo-gateway.yaml', 'destination-rule-all.yaml', 'virtual-service-all-v1.yaml'),
    ...security('details-viewer.yaml'),
  ]);
  const mesh = view(input);

  test('from a workload: its outbound route, then the inbound of the sidecar it lands on, with its identity', async () => {
    const a = await why(mesh, { source: 'productpage', method: 'get', url: 'http://details:9080/details/0' });
    assert.deepEqual(a.source, {
      kind: 'workload',
      proxy: 'productpage-v1-0.default',
      identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
    });
    assert.equal(a.request.method, 'GET');
    const [out] = a.hops;
    assert.equal(out.kind, 'outbound');
    assert.deepEqual(
      out.simulation.phases.map((p) => p.phase),
      ['normalize', 'route'],
    );
    const [inbound] = out.next!;
    assert.equal(inbound.proxy, 'details-v1-0.default');
    assert.equal(inbound.peer, 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage');
    assert.deepEqual(inbound.simulation.authorization, {
      allow: true,
      rule: 'AuthorizationPolicy default/details-viewer rules[0] (ALLOW)',
    });
    assert.deepEqual(outcomes(a.hops), [{ proxy: 'details-v1-0.default', app: { port: 9080 } }]);
  });

  test('an identity a workload runs as leaves from its sidecar; another goes straight to the service', async () => {
    const asReviews = await why(mesh, {
      source: 'cluster.local/ns/default/sa/bookinfo-reviews',
      method: 'GET',
      url: 'http://details:9080/details/0',
    });
    assert.equal(asReviews.source.kind, 'workload');
    assert.equal(asReviews.hops[0].kind, 'outbound');
    const stranger = await why(mesh, {
      source: 'spiffe://cluster.local/ns/other/sa/sleep',
      method: 'GET',
      url: 'http://details.default:9080/details/0',
    });
    assert.deepEqual(stranger.source, {
      kind: 'identity',
      identity: 'spiffe://cluster.local/ns/other/sa/sleep',
    });
    assert.deepEqual(
      stranger.hops.map((h) => [h.kind, h.proxy, h.peer]),
      [['inbound', 'details-v1-0.default', 'spiffe://cluster.local/ns/other/sa/sleep']],
    );
    const [end] = outcomes(stranger.hops);
    assert.ok('answered' in end);
    assert.equal(end.answered.status, 403);
    assert.match(
      end.answered.reason,
      /no ALLOW policy matched \(AuthorizationPolicy default\/details-viewer\)/,
    );
  });

  test("a URL at the gateway's port starts at the gateway, whoever sends it, and keeps its path as sent", async () => {
    const a = await why(mesh, {
      source: 'external',
      method: 'GET',
      url: 'http://localhost:8080/static/../productpage',
    });
    assert.deepEqual(a.source, { kind: 'external' });
    assert.equal(a.request.path, '/static/../productpage');
    assert.equal(a.hops[0].kind, 'gateway');
    assert.equal(a.hops[0].simulation.path, '/productpage');
    assert.deepEqual(outcomes(a.hops), [{ proxy: 'productpage-v1-0.default', app: { port: 9080 } }]);
  });

  test('what it cannot resolve is named, with what there is', async () => {
    await assert.rejects(
      why(mesh, { source: 'nosuch', method: 'GET', url: 'http://details:9080/' }),
      /default\/details-v1/,
    );
    await assert.rejects(
      why(mesh, { source: 'reviews', method: 'GET', url: 'http://details:9080/' }),
      /reviews names default\/reviews-v1, default\/reviews-v2, default\/reviews-v3; name one of them/,
    );
    await assert.rejects(
      why(mesh, { source: 'external', method: 'GET', url: 'http://details:9080/' }),
      /a client outside the mesh reaches it through a gateway \(http:\/\/localhost:8080, https:\/\/localhost:8443\)/,
    );
    await assert.rejects(
      why(mesh, { source: 'external', method: 'GET', url: 'details/x' }),
      /is not an http:\/\/ URL/,
    );
    await assert.rejects(
      why(mesh, { source: 'cluster.local/ns/x/sa/y', method: 'GET', url: 'http://nothing:9080/' }),
      /no sidecar serves nothing:9080 for a client in namespace x/,
    );
  });
});

describe('why: fault injection', () => {
  const input = bookinfoInput(
    // The abort file's VirtualService stands in for all-v1's ratings one, as applying it would.
    bookinfoRouting('destination-rule-all.yaml', 'virtual-service-ratings-test-abort.yaml'),
  );
  const mesh = view(input);

  test('an abort for every matching request is where the request ends; others pass', async () => {
    const jason = await why(mesh, {
      source: 'reviews-v1',
      method: 'GET',
      url: 'http://ratings:9080/ratings/0',
      headers: { 'end-user': 'jason' },
    });
    assert.deepEqual(outcomes(jason.hops), [
      {
        proxy: 'reviews-v1-0.default',
        answered: { status: 500, flag: 'FI', reason: 'VirtualService default/ratings http[0] fault abort' },
      },
    ]);
    const other = await why(mesh, {
      source: 'reviews-v1',
      method: 'GET',
      url: 'http://ratings:9080/ratings/0',
    });
    assert.deepEqual(outcomes(other.hops), [{ proxy: 'ratings-v1-0.default', app: { port: 9080 } }]);
  });
});
