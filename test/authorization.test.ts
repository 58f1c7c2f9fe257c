// AuthorizationPolicy end to end: a real control plane, real proxies over mTLS with SPIFFE identities,
// a real app. Two callers with different identities call one service; a gateway fronts it.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { type Logger, SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

/** What the echo sidecar logs, to check that denials and dry-run decisions name their policy. */
const logged: { msg: string; fields: Record<string, unknown> }[] = [];
const recording: Logger = {
  debug() {},
  info(msg, fields = {}) {
    logged.push({ msg, fields });
  },
  warn() {},
  error() {},
  child: () => recording,
};

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
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
  - route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 8080}}}]
`;

let stateDir: string;
let cp: RunningControlPlane;
let app: http.Server;
let echo: RunningProxy;
let productpage: RunningProxy;
let ratings: RunningProxy;
let gateway: RunningProxy;
let gatewayPort: number;

async function proxy(node: Omit<ProxyNode, 'healthy' | 'address'>, appPort?: number, log = SILENT) {
  return meshProxy(cp.info, node, { appPort, log });
}

const caller = (id: string, sa: string) =>
  proxy({
    id,
    role: 'sidecar',
    workload: sa,
    namespace: 'default',
    serviceAccount: sa,
    labels: { app: sa },
    ports: [],
  });

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request from a caller's app through its sidecar (absolute form), or to the gateway. */
function get(port: number, target: string, host = 'echo:8080'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: target, headers: { host }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
const from = (p: RunningProxy, pathAndQuery: string) =>
  get(p.ports.outbound!, `http://echo:8080${pathAndQuery}`);

/** Waits until `p` runs a snapshot at least as new as `revision`. */
async function runs(p: RunningProxy, revision: number): Promise<void> {
  await until(`proxy at revision ${revision}`, async () => (p.current()?.revision ?? 0) >= revision);
}

async function apply(text: string, ...proxies: RunningProxy[]): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'ap.yaml', text }] }),
  });
  const body = (await res.json()) as { revision: number };
  assert.equal(res.status, 200, JSON.stringify(body));
  for (const p of proxies) await runs(p, body.revision);
}

async function remove(name: string, ...proxies: RunningProxy[]): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/resources/ap/default/${name}`, {
    method: 'DELETE',
    headers: adminHeaders(cp.info),
  });
  const body = (await res.json()) as { revision: number };
  assert.equal(res.status, 200, JSON.stringify(body));
  for (const p of proxies) await runs(p, body.revision);
}

function assertDenied(r: Reply, rule: string | undefined): void {
  assert.equal(r.status, 403);
  assert.equal(r.body, 'RBAC: access denied');
  assert.equal(r.headers['x-trellis-response-flags'], 'RBAC');
  assert.equal(r.headers['x-trellis-rule'], rule);
}

describe('AuthorizationPolicy through real proxies', { timeout: 120_000 }, () => {
  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-authz-'));
    cp = await startControlPlane({
      stateDir,
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
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    assert.equal(res.status, 200, await res.text());
    app = http.createServer((req, res) => res.end(`${req.method} ${req.url}`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    echo = await proxy(
      {
        id: 'echo-0',
        role: 'sidecar',
        workload: 'echo',
        namespace: 'default',
        serviceAccount: 'echo',
        labels: { app: 'echo' },
        ports: [{ name: 'http', port: 8080 }],
      },
      (app.address() as AddressInfo).port,
      recording,
    );
    productpage = await caller('productpage-0', 'productpage');
    ratings = await caller('ratings-0', 'ratings');
    gatewayPort = await new PortAllocator().next();
    // In its own namespace, so the namespace-wide policies below are about the sidecars.
    gateway = await proxy({
      id: 'edge-0',
      role: 'gateway',
      workload: 'edge',
      namespace: 'edge',
      serviceAccount: 'edge',
      labels: { istio: 'edge' },
      ports: [],
      gatewayPorts: { '80': gatewayPort },
    });
    await until('every caller reaches echo', async () => {
      for (const p of [productpage, ratings]) if ((await from(p, '/ready')).status !== 200) return false;
      return (await get(gatewayPort, '/ready')).status === 200;
    });
  });

  after(async () => {
    for (const p of [gateway, ratings, productpage, echo]) await p?.close();
    await cp?.close();
    app?.close();
  });

  test('ALLOW one SPIFFE principal: that caller gets 200, another 403 RBAC: access denied', async () => {
    await apply(
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-productpage, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/productpage]}
`,
      echo,
    );
    try {
      const ok = await from(productpage, '/reviews/1');
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'GET /reviews/1');
      const denied = await from(ratings, '/reviews/1');
      assertDenied(denied, 'no ALLOW policy matched (AuthorizationPolicy default/allow-productpage)');
      const metrics = await (await fetch(`http://127.0.0.1:${echo.ports.admin}/stats/prometheus`)).text();
      assert.match(
        metrics,
        /istio_requests_total\{reporter="destination",source_workload="ratings",[^}]*response_code="403"[^}]*response_flags="RBAC"[^}]*\} 1/,
      );
      assert.match(metrics, /trellis_authorization_denied_total\{action="ALLOW",policy="",rule=""\} 1/);

      // DENY by path beats the ALLOW, whatever path tricks the caller tries.
      await apply(
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: [/admin, "/admin/*"]}
`,
        echo,
      );
      const rule = 'AuthorizationPolicy default/deny-admin rules[0] (DENY)';
      for (const trick of [
        '/admin',
        '/admin?x=1',
        '/admin#frag',
        '/public/../admin',
        '/public/%2e%2e/admin',
        '/./admin/x',
      ]) {
        assertDenied(await from(productpage, trick), rule);
      }
      assert.equal((await from(productpage, '/administrator')).status, 200);
      assert.ok(
        logged.some((l) => l.msg === 'proxy response' && l.fields.flags === 'RBAC' && l.fields.rule === rule),
        'the denial is logged with the policy and rule',
      );
    } finally {
      await remove('deny-admin', echo);
      await remove('allow-productpage', echo);
    }
    assert.equal((await from(ratings, '/reviews/1')).status, 200, 'no policy left: allowed again');
  });

  test('allow-nothing (spec: {}) denies every caller; in dry run it only logs', async () => {
    const allowNothing = (annotations: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default${annotations}}
spec: {}
`;
    try {
      await apply(allowNothing(''), echo);
      const rule = 'no ALLOW policy matched (AuthorizationPolicy default/allow-nothing)';
      assertDenied(await from(productpage, '/'), rule);
      assertDenied(await from(ratings, '/'), rule);
      assert.equal(
        (await get(gatewayPort, '/')).status,
        403,
        'the gateway forwards to the echo sidecar, which denies',
      );

      await apply(allowNothing(', annotations: {istio.io/dry-run: "true"}'), echo);
      const before = logged.length;
      assert.equal((await from(productpage, '/dry')).status, 200);
      const shadow = logged.slice(before).find((l) => l.msg === 'authorization dry-run');
      assert.deepEqual(shadow?.fields, { result: 'denied', rule, authority: 'echo:8080', path: '/dry' });
      const metrics = await (await fetch(`http://127.0.0.1:${echo.ports.admin}/stats/prometheus`)).text();
      assert.match(
        metrics,
        /trellis_authorization_dry_run_total\{engine="allow",result="shadow_denied",policy="",rule=""\} 1/,
      );
    } finally {
      await remove('allow-nothing', echo);
    }
  });

  test('at the gateway, a DENY on a path; outside clients see the flag, never the rule', async () => {
    await apply(
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-deny-private, namespace: default}
spec:
  targetRefs: [{kind: Gateway, name: edge}]
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/private/{**}"], methods: [GET]}
`,
      gateway,
    );
    try {
      assertDenied(await get(gatewayPort, '/private/x/y'), undefined);
      assert.equal((await get(gatewayPort, '/public')).status, 200);
      assert.equal(
        (await from(productpage, '/private/x/y')).status,
        200,
        'a Gateway policy is not the sidecar’s',
      );
    } finally {
      await remove('edge-deny-private', gateway);
    }
    assert.equal((await get(gatewayPort, '/private/x/y')).status, 200);
  });
});
