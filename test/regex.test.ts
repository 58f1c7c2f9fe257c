// A regex from config must not let one request stall a gateway: a real control plane and gateway, a
// VirtualService whose header regex is catastrophic for a backtracking engine, and a request that
// triggers it sent alongside an ordinary one.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { type RunningProxy, startProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, registerInstance } from './support/platform.ts';

const CONFIG = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: edge}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - name: redos
    match: [{headers: {x-token: {regex: "(a+)+b"}}}]
    directResponse: {status: 403, body: {string: "matched"}}
  - directResponse: {status: 200, body: {string: "ok"}}
`;

let cp: RunningControlPlane;
let gateway: RunningProxy;
let port: number;

before(async () => {
  cp = await startControlPlane({
    stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-regex-')),
    host: '127.0.0.1',
    apiPort: 0,
    xdsPort: 0,
    trustDomain: 'cluster.local',
    registryGraceMs: 5000,
    version: 'test',
    log: SILENT,
  });
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'edge.yaml', text: CONFIG }] }),
  });
  assert.equal(res.status, 200, await res.text());
  port = await new PortAllocator().next();
  const node = {
    id: 'edge-0',
    role: 'gateway' as const,
    workload: 'edge',
    namespace: 'default',
    serviceAccount: 'edge',
    labels: { istio: 'edge' },
    ports: [],
    gatewayPorts: { '80': port },
    address: '127.0.0.1',
  };
  const token = await registerInstance(cp.info, node);
  gateway = await startProxy({
    node: { ...node, healthy: false },
    trustDomain: 'cluster.local',
    controlPlane: cp.info.xds,
    rootCertPem: await readFile(cp.info.rootCert, 'utf8'),
    token,
    bindHost: '127.0.0.1',
    outboundPort: 0,
    inboundPort: 0,
    adminPort: 0,
    appPorts: new Map(),
    accessLog: false,
    log: SILENT,
  });
  await until('the gateway listener', async () => (await get({})).status === 200);
});

after(async () => {
  await gateway?.close();
  await cp?.close();
});

function get(headers: http.OutgoingHttpHeaders): Promise<{ status: number; ms: number }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
    });
    req.on('error', reject);
  });
}

test('a header crafted against (a+)+b does not delay a concurrent request through the gateway', async () => {
  // A backtracking engine needs about 2^30 steps here: many seconds with the event loop held.
  const [crafted, ordinary] = await Promise.all([get({ 'x-token': 'a'.repeat(30) }), get({})]);
  assert.equal(crafted.status, 200, 'a value without the b does not match');
  assert.equal(ordinary.status, 200);
  assert.ok(ordinary.ms < 1000, `the ordinary request took ${ordinary.ms.toFixed(0)} ms`);
  assert.ok(crafted.ms < 1000, `the crafted request took ${crafted.ms.toFixed(0)} ms`);
  // The route is live: a value that does match it is answered by it.
  assert.equal((await get({ 'x-token': `${'a'.repeat(30)}b` })).status, 403);
});
