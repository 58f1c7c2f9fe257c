// Normalization and edge headers through real proxies: a control plane, a gateway, a client sidecar
// and an app behind its sidecar, all on loopback. The gateway exposes only /static/ on one host and
// answers /admin itself on another, so a path trick that got past normalization would reach the
// app; each mesh config mode is applied as Istio takes it (the istio ConfigMap) and checked in turn.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { PathNormalization, ProxyNode } from '../src/compile/snapshot.ts';
import { CertificateAuthority } from '../src/controlplane/ca/ca.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { generateKeyAndCsr } from '../src/dataplane/identity/csr.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

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
metadata: {name: files}
spec:
  hosts: [files.example]
  gateways: [edge]
  http:
  - name: static
    match: [{uri: {prefix: /static/}}]
    route: [{destination: {host: echo, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  hosts: [app.example]
  gateways: [edge]
  http:
  - name: no-admin
    match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403, body: {string: "admin is not exposed"}}
  - route: [{destination: {host: echo, port: {number: 8080}}}]
`;

const meshConfig = (mode: PathNormalization) => `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    pathNormalization:
      normalization: ${mode}
`;

let stateDir: string;
let cp: RunningControlPlane;
let echo: http.Server;
let echoProxy: RunningProxy;
let client: RunningProxy;
let gateway: RunningProxy;
let gatewayPort: number;
/** What the app received, by the x-test-id each test request carries (readiness probes carry none). */
const seen = new Map<string, { url: string; headers: http.IncomingHttpHeaders }>();
let requests = 0;

async function proxy(
  node: Omit<ProxyNode, 'healthy' | 'address'>,
  extra: { appPort?: number; gatewayPort?: number } = {},
): Promise<RunningProxy> {
  const gateway = extra.gatewayPort ? { gatewayPorts: { '80': extra.gatewayPort } } : {};
  return meshProxy(cp.info, { ...node, ...gateway }, { appPort: extra.appPort, log: SILENT });
}

async function apply(text: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

interface Reply {
  status: number;
  body: string;
  /** What the app was sent, when the request reached it. */
  app?: { url: string; headers: http.IncomingHttpHeaders };
}

/** One request written byte for byte, as `curl --path-as-is` sends it. */
function raw(port: number, target: string, headers: Record<string, string>): Promise<Reply> {
  const id = String(++requests);
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, body, app: seen.get(id) });
    });
    const lines = Object.entries({ ...headers, 'x-test-id': id, connection: 'close' }).map(
      ([k, v]) => `${k}: ${v}\r\n`,
    );
    socket.end(`GET ${target} HTTP/1.1\r\n${lines.join('')}\r\n`);
  });
}

const viaGateway = (host: string, target: string, headers: Record<string, string> = {}) =>
  raw(gatewayPort, target, { host, ...headers });

async function useMode(mode: PathNormalization): Promise<void> {
  await apply(meshConfig(mode));
  await until(`every proxy on ${mode}`, async () =>
    [gateway, echoProxy, client].every((p) => (p.current()?.http?.pathNormalization ?? 'BASE') === mode),
  );
}

describe('normalization and edge headers through real proxies', { timeout: 120_000 }, () => {
  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-norm-'));
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
    await apply(MESH);
    echo = http.createServer((req, res) => {
      const id = req.headers['x-test-id'];
      if (typeof id === 'string') seen.set(id, { url: req.url ?? '', headers: req.headers });
      res.end(`app ${req.url}`);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoProxy = await proxy(
      {
        id: 'echo-0',
        role: 'sidecar',
        workload: 'echo',
        namespace: 'default',
        serviceAccount: 'echo',
        labels: { app: 'echo' },
        ports: [{ name: 'http', port: 8080 }],
      },
      { appPort: (echo.address() as AddressInfo).port },
    );
    client = await proxy({
      id: 'client-0',
      role: 'sidecar',
      workload: 'client',
      namespace: 'default',
      serviceAccount: 'client',
      labels: { app: 'client' },
      ports: [],
    });
    gatewayPort = await new PortAllocator().next();
    gateway = await proxy(
      {
        id: 'edge-0',
        role: 'gateway',
        workload: 'edge',
        namespace: 'default',
        serviceAccount: 'edge',
        labels: { istio: 'edge' },
        ports: [],
      },
      { gatewayPort },
    );
    await until('the gateway reaches the app', async () => {
      const r = await viaGateway('files.example', '/static/ready').catch(() => undefined);
      return r?.status === 200;
    });
  });

  after(async () => {
    await gateway?.close();
    await client?.close();
    await echoProxy?.close();
    await cp?.close();
    echo?.close();
  });

  test('BASE (the default): dot segments, backslashes, escapes and fragments cannot leave /static/', async () => {
    assert.equal(gateway.current()?.http, undefined, 'no mesh config: the default is not spelled out');
    const ok = await viaGateway('files.example', '/static/app.css');
    assert.equal(ok.status, 200);
    assert.equal(ok.app?.url, '/static/app.css');
    // The measured bypass: `curl --path-as-is "$GW/static/..\index.html"`.
    for (const trick of [
      '/static/..\\index.html',
      '/static/%2e%2e/index.html',
      '/static/%2E%2e/index.html',
      '/static/.%2e/index.html',
      '/static/../index.html',
      '/static\\..\\index.html',
      '/static/./../index.html',
    ]) {
      const r = await viaGateway('files.example', trick);
      assert.equal(r.status, 404, `${trick}: ${r.body}`);
      assert.equal(r.app, undefined, `${trick} reached the app as ${r.app?.url}`);
    }
    // A fragment is cut before routing; what the app is sent is the path that was routed.
    const frag = await viaGateway('files.example', '/static/x#/../../admin');
    assert.equal(frag.status, 200);
    assert.equal(frag.app?.url, '/static/x');
    const dots = await viaGateway('files.example', '/static/a/../b/%2e/c.css?v=%2e%2e');
    assert.equal(dots.app?.url, '/static/b/c.css?v=%2e%2e', 'the query goes on as sent');
    // Escaped slashes stay escaped in BASE (Istio's documented default), with their hex upper-cased.
    const escaped = await viaGateway('files.example', '/static/..%5cindex.html');
    assert.equal(escaped.app?.url, '/static/..%5Cindex.html');
  });

  test('BASE: a path that normalizes to /admin meets the /admin rule (CVE-2019-9901, CVE-2021-39156, CVE-2020-8595)', async () => {
    for (const trick of [
      '/admin',
      '/public/../admin',
      '/public/%2e%2e/admin',
      '/./admin',
      '/public/..\\admin',
      '/admin#x',
      '/admin?',
      '/admin?x=1',
      '/%61dmin',
    ]) {
      const r = await viaGateway('app.example', trick);
      assert.equal(r.status, 403, `${trick}: ${r.body}`);
      assert.equal(r.body, 'admin is not exposed', trick);
    }
    assert.equal((await viaGateway('app.example', '/admin%00')).status, 400, 'NUL is refused');
    // What BASE does not do, and the next modes do: Istio's documented behaviour.
    assert.equal((await viaGateway('app.example', '//admin')).app?.url, '//admin');
    assert.equal((await viaGateway('app.example', '/%2Fadmin')).app?.url, '/%2Fadmin');
  });

  test('hosts match without case or the trailing dot (CVE-2021-39155)', async () => {
    for (const host of ['FILES.example', 'files.example.', 'Files.Example.']) {
      const r = await viaGateway(host, '/static/h.css');
      assert.equal(r.status, 200, host);
      assert.equal(r.app?.url, '/static/h.css');
    }
    assert.equal((await viaGateway('APP.Example.', '/admin')).status, 403);
  });

  test('MERGE_SLASHES, then DECODE_AND_MERGE_SLASHES, from the istio ConfigMap (CVE-2021-31920)', async () => {
    await useMode('MERGE_SLASHES');
    for (const trick of ['//admin', '///admin', '//admin//x', '/.//admin'])
      assert.equal((await viaGateway('app.example', trick)).status, 403, trick);
    const merged = await viaGateway('files.example', '/static//a///b.css');
    assert.equal(merged.app?.url, '/static/a/b.css');
    assert.equal((await viaGateway('app.example', '/%2Fadmin')).app?.url, '/%2Fadmin');

    await useMode('DECODE_AND_MERGE_SLASHES');
    for (const trick of [
      '/%2Fadmin',
      '/%2fadmin',
      '/%5Cadmin',
      '/%5cadmin',
      '//admin',
      '/public%2F..%2Fadmin',
    ])
      assert.equal((await viaGateway('app.example', trick)).status, 403, trick);
    for (const trick of ['/static/..%2Findex.html', '/static/..%5Cindex.html', '/static%2F..%2F..%2Fadmin']) {
      const r = await viaGateway('files.example', trick);
      assert.equal(r.app, undefined, `${trick} reached the app as ${r.app?.url}`);
    }
    const decoded = await viaGateway('files.example', '/static/a%2Fb.css');
    assert.equal(decoded.app?.url, '/static/a/b.css', 'the app is sent the path that was routed');
  });

  test('at the gateway an outside client cannot set XFCC, x-forwarded-proto or x-request-id', async () => {
    const r = await viaGateway('files.example', '/static/edge', {
      'x-forwarded-client-cert':
        'By=spiffe://cluster.local/ns/default/sa/echo;URI=spiffe://cluster.local/ns/default/sa/admin',
      'x-forwarded-proto': 'https',
      'x-request-id': 'chosen-by-the-client',
    });
    assert.equal(r.status, 200);
    const h = r.app!.headers;
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.notEqual(h['x-request-id'], 'chosen-by-the-client');
    assert.match(String(h['x-request-id']), /^[0-9a-f-]{36}$/);
    // The app's sidecar sets it from the peer it verified: the gateway.
    assert.match(
      String(h['x-forwarded-client-cert']),
      /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/echo;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/edge$/,
    );
  });

  test('an app cannot pass off an identity through its sidecar: XFCC is the verified peer', async () => {
    const id = String(++requests);
    const r = await new Promise<Reply>((resolve, reject) => {
      const req = http.get(
        {
          host: '127.0.0.1',
          port: client.ports.outbound,
          path: 'http://echo:8080/from-client',
          headers: {
            host: 'echo:8080',
            'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/default/sa/admin',
            'x-request-id': 'kept-inside-the-mesh',
            'x-test-id': id,
          },
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: '', app: seen.get(id) }));
        },
      );
      req.on('error', reject);
    });
    assert.equal(r.status, 200);
    const h = r.app!.headers;
    assert.match(
      String(h['x-forwarded-client-cert']),
      /;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/,
    );
    assert.equal(h['x-request-id'], 'kept-inside-the-mesh', 'inside the mesh the request id is propagated');
  });

  test("XFCC's Hash is the SHA-256 of the peer's certificate, and the peer's own XFCC is dropped", async () => {
    const ca = await CertificateAuthority.loadOrCreate({ dir: path.join(stateDir, 'ca') });
    const id = 'spiffe://cluster.local/ns/default/sa/tester';
    const { keyPem, csrPem } = await generateKeyAndCsr(id);
    const signed = await ca.signCsr(csrPem, { namespace: 'default', serviceAccount: 'tester' });
    const leaf = new X509Certificate(signed.certChainPem);
    const testId = String(++requests);
    const status = await new Promise<number>((resolve, reject) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: echoProxy.ports.inbound!,
        servername: 'outbound_.8080_._.echo.default.svc.cluster.local',
        key: keyPem,
        cert: signed.certChainPem,
        ca: ca.trustBundlePem(),
        checkServerIdentity: () => undefined,
        ALPNProtocols: ['http/1.1'],
      });
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => {
        text += c;
      });
      socket.on('error', reject);
      socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
      socket.end(
        `GET /direct HTTP/1.1\r\nhost: echo:8080\r\nconnection: close\r\nx-test-id: ${testId}\r\n` +
          'x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin\r\n\r\n',
      );
    });
    assert.equal(status, 200);
    assert.equal(
      seen.get(testId)?.headers['x-forwarded-client-cert'],
      `By=spiffe://cluster.local/ns/default/sa/echo;Hash=${createHash('sha256').update(leaf.raw).digest('hex')};Subject="";URI=${id}`,
    );
  });
});
