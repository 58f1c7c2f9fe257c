// The Sidecar resource on `trellis up samples/bookinfo`: a workload Sidecar shrinks what productpage's
// proxy receives to its egress hosts (proxy-config shows fewer clusters and routes), a host it does not
// import is unknown to it (502 NR, BlackHoleCluster) while the imported ones still work; removing the Sidecar gives
// everything back. An ingress listener's defaultEndpoint sends ratings' port to another app port.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Cluster, RouteTable } from '../src/compile/snapshot.ts';
import { FLAGS_HEADER, RULE_HEADER } from '../src/dataplane/http/headers.ts';
import { Mesh, page } from './support/mesh.ts';

const PRODUCTPAGE = 'productpage-v1-0.default';
let mesh: Mesh;
let side: http.Server;

/** Applies YAML from stdin; returns the revision and what apply warned. */
function apply(yaml: string): { revision: number; stderr: string } {
  const r = mesh.cli(['apply', '-f', '-'], yaml);
  assert.equal(r.code, 0, `apply: ${r.stderr}${r.stdout}`);
  return { revision: Number(/revision (\d+)/.exec(r.stdout)?.[1]), stderr: r.stderr };
}

const converged = (revision: number) => mesh.converged(mesh.info.instances.length, revision);

function proxyConfig<T>(section: 'clusters' | 'routes'): T {
  const r = mesh.cli(['proxy-config', PRODUCTPAGE, section, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

const outboundClusters = () =>
  proxyConfig<Cluster[]>('clusters')
    .filter((c) => c.direction === 'outbound')
    .map((c) => c.name);
const virtualHosts = () => proxyConfig<RouteTable[]>('routes')[0].virtualHosts.map((v) => v.name);

/** A request from an app, through its sidecar's outbound listener (the app's HTTP proxy). */
function call(
  workload: string,
  url: string,
): Promise<{ status: number; flags?: string; rule?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: mesh.instance(workload).outboundPort,
        path: url,
        headers: { host: new URL(url).host },
        agent: false,
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            flags: res.headers[FLAGS_HEADER] as string | undefined,
            rule: res.headers[RULE_HEADER] as string | undefined,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 15 s')));
    req.on('error', reject);
    req.end();
  });
}

const PRODUCTPAGE_SIDECAR = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: productpage, namespace: default}
spec:
  workloadSelector: {labels: {app: productpage}}
  egress:
    - hosts:
        - ./details.default.svc.cluster.local
        - ./reviews.default.svc.cluster.local
        - istio-system/*
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;

describe('Sidecar on Bookinfo', { timeout: 240_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/bookinfo');
    side = http.createServer((_req, res) => res.end('served by the default endpoint\n'));
    await new Promise<void>((r) => side.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    side?.close();
    await mesh?.down();
  });

  test('egress hosts shrink the snapshot; an out-of-scope host is unknown, in-scope ones work', async () => {
    const before = outboundClusters();
    assert.ok(before.includes('outbound|9080||ratings.default.svc.cluster.local'), before.join(' '));
    assert.ok(virtualHosts().includes('ratings.default.svc.cluster.local:9080'));
    const reached = await call('productpage-v1', 'http://ratings:9080/ratings/0');
    assert.equal(reached.status, 200, reached.body);

    const applied = apply(PRODUCTPAGE_SIDECAR);
    assert.doesNotMatch(applied.stderr, /not yet enforced/);
    await converged(applied.revision);

    const after = outboundClusters();
    assert.ok(after.length < before.length, `${after.length} clusters, ${before.length} before`);
    assert.deepEqual(
      after.filter((c) => c.endsWith('.default.svc.cluster.local')),
      [
        'outbound|9080||details.default.svc.cluster.local',
        'outbound|9080||reviews.default.svc.cluster.local',
      ],
    );
    assert.ok(!virtualHosts().includes('ratings.default.svc.cluster.local:9080'));
    const listeners = mesh.cli(['proxy-config', PRODUCTPAGE, 'listeners', '-o', 'json']);
    assert.match(listeners.stdout, /"outboundTrafficPolicy": "REGISTRY_ONLY"/);

    const unknown = await call('productpage-v1', 'http://ratings:9080/ratings/0');
    assert.equal(unknown.status, 502, unknown.body);
    assert.equal(unknown.flags, 'NR');
    assert.match(unknown.rule ?? '', /^Sidecar \S+ outboundTrafficPolicy REGISTRY_ONLY \(BlackHoleCluster\)/);
    const details = await call('productpage-v1', 'http://details:9080/details/0');
    assert.equal(details.status, 200, details.body);
    // Other workloads keep their view: reviews still reaches ratings, and the page renders.
    assert.equal((await call('reviews-v2', 'http://ratings:9080/ratings/0')).status, 200);
    const p = await page(`${mesh.gateway}/productpage`);
    assert.equal(p.status, 200);
    assert.match(p.text, /Book Details/);
  });

  test('a second selector-less Sidecar in a namespace is warned (IST0111); the older applies', async () => {
    const yaml = (name: string) =>
      `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: ${name}, namespace: default}\nspec:\n  egress: [{hosts: ["*/*"]}]\n`;
    const first = apply(yaml('default'));
    assert.doesNotMatch(first.stderr, /IST0111/);
    const second = apply(yaml('zz-second'));
    assert.match(second.stderr, /IST0111.*Sidecar default\/default is older and applies/);
    const r = mesh.cli(['delete', 'sidecar', 'default', 'zz-second', '-n', 'default']);
    assert.equal(r.code, 0, r.stderr);
    await converged(Number(/revision (\d+)/.exec(r.stdout)?.[1]));
  });

  test('ingress defaultEndpoint: ratings port 9080 goes to another app port', async () => {
    const port = (side.address() as AddressInfo).port;
    const { revision } = apply(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: default}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
    - port: {number: 9080, protocol: HTTP, name: http}
      defaultEndpoint: 127.0.0.1:${port}
`);
    await converged(revision);
    const r = await call('reviews-v2', 'http://ratings:9080/ratings/0');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'served by the default endpoint\n');
  });

  test('deleting the Sidecar gives productpage its whole view back', async () => {
    const r = mesh.cli(['delete', 'sidecar', 'productpage', '-n', 'default']);
    assert.equal(r.code, 0, r.stderr);
    await converged(Number(/revision (\d+)/.exec(r.stdout)?.[1]));
    assert.ok(outboundClusters().includes('outbound|9080||ratings.default.svc.cluster.local'));
    assert.equal((await call('productpage-v1', 'http://ratings:9080/ratings/0')).status, 200);
  });
});
