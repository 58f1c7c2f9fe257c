// CUSTOM AuthorizationPolicy with external authorizers, end to end: a real control plane, real
// proxies over mTLS, a real HTTP authorizer process in the mesh (behind its own sidecar) and a real
// gRPC authorizer process outside it (a ServiceEntry endpoint). Two echo workloads each have CUSTOM
// policies naming one provider, plus DENY and ALLOW policies that still apply after an allow.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { type Logger, SILENT } from '../src/lib/log.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

/** What the echo sidecars log: denials must name the policy rule and the provider. */
const logged: { msg: string; fields: Record<string, unknown> }[] = [];
const recording: Logger = {
  debug() {},
  info(msg, fields = {}) {
    logged.push({ msg, fields });
  },
  warn(msg, fields = {}) {
    logged.push({ msg, fields });
  },
  error() {},
  child: () => recording,
};

/** A test authorizer process; resolves once it prints the port it listens on. */
async function authorizer(script: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, 'support', script)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill();
  await exited;
}

function mesh(grpcPort: number): string {
  return `
apiVersion: v1
kind: Service
metadata: {name: echo-http}
spec:
  selector: {app: echo-http}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-grpc}
spec:
  selector: {app: echo-grpc}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext-authz}
spec:
  selector: {app: ext-authz}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz-grpc}
spec:
  hosts: [ext-authz-grpc.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{name: grpc, number: 9000, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: ${grpcPort}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    extensionProviders:
    - name: http-authz
      envoyExtAuthzHttp:
        service: ext-authz.default.svc.cluster.local
        port: 8000
        timeout: 400ms
        pathPrefix: /check
        includeRequestHeadersInCheck: [x-ext-authz, x-multi]
        includeAdditionalHeadersInCheck: {x-from-proxy: trellis}
        headersToUpstreamOnAllow: [x-ext-authz-check, x-seen-*]
        headersToDownstreamOnAllow: [x-ext-authz-allowed]
        headersToDownstreamOnDeny: [x-ext-authz-reason]
    - name: grpc-authz
      envoyExtAuthzGrpc: {service: ext-authz-grpc.local, port: 9000, timeout: 400ms}
    - name: grpc-authz-open
      envoyExtAuthzGrpc: {service: ext-authz-grpc.local, port: 9000, timeout: 400ms, failOpen: true}
    - name: grpc-authz-503
      envoyExtAuthzGrpc: {service: ext-authz-grpc.local, port: 9000, timeout: 400ms, statusOnError: "503"}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-http}
spec:
  selector: {matchLabels: {app: echo-http}}
  action: CUSTOM
  provider: {name: http-authz}
  rules: [{to: [{operation: {paths: ["/private/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-blocked}
spec:
  selector: {matchLabels: {app: echo-http}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/private/blocked"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-grpc-paths}
spec:
  selector: {matchLabels: {app: echo-grpc}}
  action: ALLOW
  rules: [{to: [{operation: {paths: ["/private/*", "/public"]}}]}]
`;
}

const customGrpc = (provider: string) => `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-grpc}
spec:
  selector: {matchLabels: {app: echo-grpc}}
  action: CUSTOM
  provider: {name: ${provider}}
  rules: [{to: [{operation: {paths: ["/private/*", "/other"]}}]}]
`;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let cp: RunningControlPlane;
let app: http.Server;
let httpAuthz: { child: ChildProcess; port: number };
let grpcAuthz: { child: ChildProcess; port: number } | undefined;
let proxies: RunningProxy[] = [];
let client: RunningProxy;
let echoGrpc: RunningProxy;

/** From the client's app through its sidecar (absolute form) to `host`. */
function call(
  host: string,
  target: string,
  headers: Record<string, string | string[]> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: client.ports.outbound!,
        method: body === undefined ? 'GET' : 'POST',
        path: `http://${host}:8080${target}`,
        headers: { host: `${host}:8080`, ...headers },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Applies `text` and waits until `waitFor` (default: every proxy) runs it. */
async function apply(
  text: string,
  waitFor: RunningProxy[] = proxies,
): Promise<{ revision: number; warnings: { message: string }[] }> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'ext-authz.yaml', text }] }),
  });
  const body = (await res.json()) as { revision: number; warnings: { message: string }[] };
  assert.equal(res.status, 200, JSON.stringify(body));
  await until(`proxies at revision ${body.revision}`, async () =>
    waitFor.every((p) => (p.current()?.revision ?? 0) >= body.revision),
  );
  return body;
}

const seenBy = (r: Reply) => {
  const echoed = JSON.parse(r.body) as { headers: Record<string, string> };
  return JSON.parse(Buffer.from(echoed.headers['x-seen-request'], 'base64').toString()) as {
    method: string;
    path: string;
    host?: string;
    headers: Record<string, string>;
    body?: string;
    source?: string;
    destination?: string;
  };
};

describe('CUSTOM AuthorizationPolicy with external authorizers', { timeout: 120_000 }, () => {
  before(async () => {
    cp = await startControlPlane({
      stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-ext-authz-')),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log: SILENT,
    });
    httpAuthz = await authorizer('ext-authz-http.ts');
    grpcAuthz = await authorizer('ext-authz-grpc.ts');
    // The echo app answers with what reached it: the path, the headers and the body.
    app = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c;
      });
      req.on('end', () => res.end(JSON.stringify({ path: req.url, headers: req.headers, body })));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const sidecar = (name: string, port?: number, log = SILENT) => {
      const node: Omit<ProxyNode, 'healthy' | 'address' | 'inboundPort'> = {
        id: `${name}-0`,
        role: 'sidecar',
        workload: name,
        namespace: 'default',
        serviceAccount: name,
        labels: { app: name },
        ports: port ? [{ name: 'http', port: 8080 }] : [],
      };
      return meshProxy(cp.info, node, { appPort: port, log });
    };
    const echoHttp = await sidecar('echo-http', appPort, recording);
    echoGrpc = await sidecar('echo-grpc', appPort, recording);
    const authzSidecar = await sidecar('ext-authz', httpAuthz.port);
    client = await sidecar('client');
    proxies = [echoHttp, echoGrpc, authzSidecar, client];
    await apply(mesh(grpcAuthz.port) + customGrpc('grpc-authz'));
    await until('the echo services answer', async () => (await call('echo-http', '/public')).status === 200);
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await cp?.close();
    app?.close();
    await stop(httpAuthz?.child);
    await stop(grpcAuthz?.child);
  });

  test('requests no CUSTOM rule matches never reach the authorizer', async () => {
    const r = await call('echo-http', '/public', { 'x-ext-authz': 'deny' });
    assert.equal(r.status, 200);
  });

  test('HTTP: allowed when the authorizer says so; the listed answer headers go upstream and to the client', async () => {
    const r = await call('echo-http', '/private/a?q=1', {
      'x-ext-authz': 'allow',
      'x-multi': ['one', 'two'],
      'x-unlisted': 'not for the authorizer',
    });
    assert.equal(r.status, 200, r.body);
    const echoed = JSON.parse(r.body) as { path: string; headers: Record<string, string> };
    assert.equal(echoed.path, '/private/a?q=1');
    assert.equal(echoed.headers['x-ext-authz-check'], 'allowed');
    assert.equal(echoed.headers['x-not-listed'], undefined);
    assert.equal(r.headers['x-ext-authz-allowed'], 'yes');
    // What the check request carried: method, pathPrefix + path, Host, the listed headers (a repeated
    // one joined, CVE-2021-32777), the additional header, and nothing else of the client's.
    const seen = seenBy(r);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/check/private/a?q=1');
    assert.equal(seen.headers.host, 'echo-http:8080');
    assert.match(seen.headers['x-multi'], /^one, ?two$/);
    assert.equal(seen.headers['x-from-proxy'], 'trellis');
    assert.equal(seen.headers['content-length'], '0');
    assert.equal(seen.headers['x-unlisted'], undefined);
  });

  test('HTTP: denied with the authorizer status, body and listed headers, flag UAEX, the rule and provider named', async () => {
    logged.length = 0;
    const r = await call('echo-http', '/private/a', { 'x-ext-authz': 'teapot' });
    assert.equal(r.status, 418);
    assert.equal(r.body, 'denied by ext-authz for /check/private/a');
    assert.equal(r.headers['x-ext-authz-reason'], 'not on the list');
    assert.equal(r.headers['x-not-listed'], undefined);
    assert.equal(r.headers['x-trellis-response-flags'], 'UAEX');
    assert.match(
      String(r.headers['x-trellis-rule']),
      /^AuthorizationPolicy default\/ext-http rules\[0\] \(CUSTOM, provider http-authz\), provider http-authz: denied/,
    );
    const line = logged.find((l) => l.msg === 'proxy response' && l.fields.flags === 'UAEX');
    assert.match(String(line?.fields.rule), /default\/ext-http rules\[0\].*http-authz/);
  });

  test('HTTP: an authorizer 5xx is an error: denied with statusOnError (403)', async () => {
    const r = await call('echo-http', '/private/a', { 'x-ext-authz': 'boom' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-trellis-response-flags'], 'UAEX');
    assert.match(String(r.headers['x-trellis-rule']), /authorizer error \(the authorizer answered 500\)/);
  });

  test('HTTP: CUSTOM cannot bypass DENY: allowed by the authorizer, denied by the DENY policy', async () => {
    const r = await call('echo-http', '/private/blocked', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-trellis-response-flags'], 'RBAC');
    assert.equal(r.headers['x-trellis-rule'], 'AuthorizationPolicy default/deny-blocked rules[0] (DENY)');
  });

  test('HTTP: a hanging authorizer is bounded by the provider timeout and denied', async () => {
    const t0 = performance.now();
    const r = await call('echo-http', '/private/a', { 'x-ext-authz': 'hang' });
    const ms = performance.now() - t0;
    assert.equal(r.status, 403);
    assert.match(String(r.headers['x-trellis-rule']), /authorizer error \(timeout 400ms/);
    assert.ok(ms >= 350 && ms < 3000, `took ${ms}ms`);
  });

  test('gRPC: allowed with ok_response headers upstream; the authorizer sees the request and both identities', async () => {
    const r = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'allow', 'x-secret': 's3cret' });
    assert.equal(r.status, 200, r.body);
    const echoed = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-ext-authz-check'], 'allowed-grpc');
    assert.equal(echoed.headers['x-secret'], undefined, 'headers_to_remove');
    const seen = seenBy(r);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/private/x');
    assert.equal(seen.host, 'echo-grpc:8080');
    assert.equal(seen.headers['x-secret'], 's3cret');
    assert.equal(seen.source, 'spiffe://cluster.local/ns/default/sa/client');
    assert.equal(seen.destination, 'spiffe://cluster.local/ns/default/sa/echo-grpc');
  });

  test('gRPC: denied_response status, headers and body reach the client', async () => {
    const r = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'deny' });
    assert.equal(r.status, 401);
    assert.equal(r.body, 'denied by grpc ext-authz');
    assert.equal(r.headers['x-ext-authz-reason'], 'grpc says no');
    assert.equal(r.headers['x-trellis-response-flags'], 'UAEX');
  });

  test('gRPC: CUSTOM cannot bypass ALLOW: allowed by the authorizer, no ALLOW rule matches', async () => {
    const r = await call('echo-grpc', '/other', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-trellis-response-flags'], 'RBAC');
    assert.match(String(r.headers['x-trellis-rule']), /^no ALLOW policy matched/);
  });

  test('gRPC: a hanging authorizer is bounded by the provider timeout', async () => {
    const t0 = performance.now();
    const r = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'hang' });
    assert.equal(r.status, 403);
    assert.match(String(r.headers['x-trellis-rule']), /authorizer error .*Deadline exceeded/i);
    assert.ok(performance.now() - t0 < 3000);
  });

  test('the authorizer stopped: failOpen false denies (statusOnError), failOpen true goes on to DENY and ALLOW', async () => {
    await stop(grpcAuthz?.child);
    grpcAuthz = undefined;
    const closed = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'allow' });
    assert.equal(closed.status, 403);
    assert.equal(closed.headers['x-trellis-response-flags'], 'UAEX');
    assert.match(String(closed.headers['x-trellis-rule']), /provider grpc-authz: authorizer error/);

    await apply(customGrpc('grpc-authz-503'), [echoGrpc]);
    assert.equal((await call('echo-grpc', '/private/x', { 'x-ext-authz': 'allow' })).status, 503);

    logged.length = 0;
    await apply(customGrpc('grpc-authz-open'), [echoGrpc]);
    const open = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'deny' });
    assert.equal(open.status, 200, open.body);
    assert.ok(logged.some((l) => /failOpen/.test(l.msg) && /grpc-authz-open/.test(String(l.fields.rule))));
    // Failing open is not allowing everything: ALLOW still applies.
    const other = await call('echo-grpc', '/other', { 'x-ext-authz': 'allow' });
    assert.equal(other.status, 403);
    assert.equal(other.headers['x-trellis-response-flags'], 'RBAC');
  });

  test('a provider that does not exist: accepted with a warning, and what the policy matches is denied', async () => {
    const { warnings } = await apply(customGrpc('no-such-provider'), [echoGrpc]);
    assert.ok(
      warnings.some((w) => /extension provider "no-such-provider" is not defined/.test(w.message)),
      JSON.stringify(warnings),
    );
    const r = await call('echo-grpc', '/private/x', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 403);
    assert.equal(r.body, 'RBAC: access denied');
    assert.match(String(r.headers['x-trellis-rule']), /"no-such-provider" is not defined/);
    assert.equal((await call('echo-grpc', '/public')).status, 200);
  });
});
