// What compile shares between proxies: the part of a snapshot that proxies with the same view get is
// compiled and hashed once per mesh index, and sharing never changes what a proxy gets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  gatewayNode,
  input,
  node,
  proxies,
  routing,
  services,
  vs,
} from '../../test/support/shared-views-mesh.ts';
import { assembleSnapshot, compile, compileParts, compileProxy } from './compile.ts';
import { buildMeshIndex } from './mesh-index.ts';
import type { ProxyNode } from './snapshot.ts';
import { compileStats, viewKey } from './views.ts';

describe('compile: sharing between proxies', () => {
  test('replicas of one workload share one compiled shared part; only their own parts differ', () => {
    const index = buildMeshIndex(input());
    const [a0, a1] = [compileParts(index, proxies[0]), compileParts(index, proxies[1])];
    assert.equal(a0.shared, a1.shared);
    assert.equal(assembleSnapshot(a0).routeTables, assembleSnapshot(a1).routeTables);
    assert.notEqual(a0.version, a1.version, 'the proxy id is part of the snapshot');
    assert.deepEqual(
      { ...assembleSnapshot(a0), proxy: undefined, version: undefined },
      {
        ...assembleSnapshot(a1),
        proxy: undefined,
        version: undefined,
      },
    );
  });

  test('every proxy of a namespace shares a view; a view is compiled once however many proxies use it', () => {
    const index = buildMeshIndex(input());
    for (const p of proxies) compileParts(index, p);
    // Views: sidecars in one, two and three, and the gateway.
    assert.equal(compileStats(index).views, 4);
    assert.equal(compileParts(index, proxies[3]).shared, compileParts(index, proxies[0]).shared);
    assert.notEqual(compileParts(index, proxies[4]).shared, compileParts(index, proxies[0]).shared);
    // Virtual hosts: each service port is built for "own namespace" and "other namespace", not per view.
    assert.equal(compileStats(index).virtualHosts, 4 * 2);
    // Clusters do not depend on who asks: each is built once for every view that uses it.
    assert.equal(compileStats(index).clusters, 4);
    const one = compileParts(index, proxies[0]).shared;
    const three = compileParts(index, proxies[5]).shared;
    const c = (s: typeof one) => s.routeTables[0].virtualHosts.find((v) => v.name.startsWith('c.two.'));
    assert.equal(c(one), c(three), 'c seen from two other namespaces is one object');
    assert.equal(one.clusters[0], three.clusters[0]);
  });

  test('sharing never changes what a proxy gets: equal to compiling each proxy on a fresh index', () => {
    const index = buildMeshIndex(input());
    for (const p of proxies) {
      const shared = compileProxy(index, p);
      assert.deepEqual(shared, compile(input(), p), p.id);
    }
  });

  test('only labels some sourceLabels match tests split a view', () => {
    const scoped = vs('b', 'one', {
      hosts: ['b'],
      http: [
        {
          match: [{ sourceLabels: { version: 'v2' } }],
          route: [{ destination: { host: 'c.two.svc.cluster.local' } }],
        },
        { route: [{ destination: { host: 'b' } }] },
      ],
    });
    const v2 = node('a', 'one', 9, { labels: { app: 'a', version: 'v2' } });
    const other = node('b', 'one', 9, { labels: { app: 'b', version: 'v1', team: 'x' } });
    const index = buildMeshIndex(
      input({ resources: [...services, ...routing, scoped], proxies: [...proxies, v2, other] }),
    );
    assert.equal(viewKey(index, proxies[0]), viewKey(index, other), 'app and team are not tested');
    assert.notEqual(viewKey(index, proxies[0]), viewKey(index, v2));
    const routesToB = (p: ProxyNode) =>
      compileProxy(index, p).routeTables[0].virtualHosts.find((v) => v.name.startsWith('b.one.'))!.routes;
    assert.equal(routesToB(v2).length, 2);
    assert.equal(routesToB(proxies[0]).length, 1, 'the v2-only rule does not exist for v1 callers');
  });

  test("a change to one workload changes the shared part once for everyone and one proxy's own part", () => {
    const before = buildMeshIndex(input());
    const sick = proxies.map((p) => (p.id === 'c-v1-0.two' ? { ...p, healthy: false } : p));
    const after = buildMeshIndex(input({ proxies: sick }));
    for (const p of sick) compileParts(after, p);
    assert.equal(compileStats(after).views, 4);
    const v = (index: typeof before, p: ProxyNode) => compileParts(index, p);
    // Every sidecar routes to c, so every shared part changes ...
    assert.notEqual(v(after, sick[0]).shared.hash, v(before, proxies[0]).shared.hash);
    // ... but a proxy's own part changes only for c itself (its inbound cluster's health).
    const own = (x: ReturnType<typeof v>) => JSON.stringify([x.proxy, x.listeners, x.clusters]);
    assert.equal(own(v(after, sick[0])), own(v(before, proxies[0])));
    assert.notEqual(own(v(after, sick[4])), own(v(before, proxies[4])));
    // A proxy that cannot see c (the gateway routes only to a) keeps its version.
    assert.equal(v(after, gatewayNode).version, v(before, gatewayNode).version);
  });
});
