// The proxy against a real control plane, in one process: real sockets, real mTLS, tiny apps. Covers
// the proxy's own decisions (flags, rules), header hygiene, streaming, normalization, secure naming and
// life without the control plane.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { CertificateAuthority } from '../src/controlplane/ca/ca.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { CredentialStore } from '../src/dataplane/agent/credentials.ts';
import { certValidity } from '../src/dataplane/identity/cert.ts';
import { generateKeyAndCsr } from '../src/dataplane/identity/csr.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { PeerPool } from '../src/dataplane/upstream/peer-pool.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

let stateDir: string;
let cp: RunningControlPlane;
let echo: http.Server;
let echoProxy: RunningProxy;
let client: RunningProxy;
/** Requests the echo app received (the sidecar's readiness probes among them). */
const seen: { path: string; headers: http.IncomingHttpHeaders }[] = [];
const lastTo = (path: string) => seen.findLast((r) => r.path === path)?.headers ?? {};

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 300ms
    route: [{destination: {host: echo}}]
  - name: canned
    match: [{headers: {x-canned: {regex: "ye[s]+"}}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: echo}}]
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

async function controlPlane(ports?: { api: number; xds: number }): Promise<RunningControlPlane> {
  return startControlPlane({
    stateDir,
    host: '127.0.0.1',
    apiPort: ports?.api ?? 0,
    xdsPort: ports?.xds ?? 0,
    trustDomain: 'cluster.local',
    registryGraceMs: 5000,
    version: 'test',
    log: SILENT,
  });
}

async function proxy(node: Omit<ProxyNode, 'healthy' | 'address'>, appPort?: number): Promise<RunningProxy> {
  return meshProxy(cp.info, node, { appPort, log: SILENT });
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request from the client app through its sidecar's outbound listener (absolute form). */
function send(
  target: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: client.ports.outbound,
        method: opts.method ?? 'GET',
        path: target,
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('proxy data plane', { timeout: 120_000 }, () => {
  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-dp-'));
    cp = await controlPlane();
    const res = await fetch(`${cp.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    assert.equal(res.status, 200, await res.text());
    echo = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', headers: req.headers });
      if (req.url === '/inner-rule') {
        // What a proxy further in (or the app) may say; the edge must not repeat it outside.
        res.writeHead(503, { 'x-trellis-rule': 'VirtualService secret/internal http[3]' });
        res.end('inner');
        return;
      }
      if (req.url?.startsWith('/slow')) {
        setTimeout(() => res.end('late'), 2000).unref();
        return;
      }
      // Echo the body back, streaming, with its hash in a trailer-free header-free way.
      const hash = createHash('sha256');
      req.on('data', (c: Buffer) => hash.update(c));
      req.on('end', () => {
        res.writeHead(200, { 'x-app': 'echo', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
        res.end(`${req.method} ${req.url} ${hash.digest('hex')}`);
      });
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const appPort = (echo.address() as AddressInfo).port;
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
      appPort,
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
    await until('both proxies synced with a healthy echo endpoint', async () => {
      const s = (await (
        await fetch(`${cp.info.api}/api/v1/proxy-status`, { headers: adminHeaders(cp.info) })
      ).json()) as {
        proxies: { status: string; healthy: boolean }[];
      };
      const snap = client.current();
      const ep = snap?.clusters.find((c) => c.name === 'outbound|8080||echo.default.svc.cluster.local')
        ?.endpoints[0];
      return s.proxies.length === 2 && s.proxies.every((p) => p.status === 'SYNCED') && ep?.healthy === true;
    });
  });

  after(async () => {
    await client?.close();
    await echoProxy?.close();
    await cp?.close();
    echo?.close();
  });

  test('forwards over mTLS; hop-by-hop headers stop at the proxy; x-request-id and x-forwarded-for are set', async () => {
    const r = await send('http://echo:8080/hello?x=1', {
      headers: {
        host: 'echo:8080',
        connection: 'x-secret, keep-alive',
        'x-secret': 'drop me',
        'proxy-connection': 'keep-alive',
        'x-keep': 'yes',
      },
    });
    assert.equal(r.status, 200);
    assert.match(r.body, /^GET \/hello\?x=1 /);
    assert.equal(r.headers['x-app'], 'echo');
    // The app's keep-alive is about its own connection; the proxy's connection has its own.
    assert.notEqual(r.headers['keep-alive'], 'timeout=5', 'hop-by-hop response headers are not passed on');
    const h = lastTo('/hello?x=1');
    assert.equal(h['x-keep'], 'yes');
    assert.equal(h['x-secret'], undefined, 'headers named in Connection are hop-by-hop');
    assert.equal(h['proxy-connection'], undefined);
    assert.equal(h['x-trellis-peer'], undefined, 'the proxies talk among themselves; the app never sees it');
    assert.match(String(h['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h.host, 'echo:8080');
    const withId = await send('http://echo:8080/id', {
      headers: { host: 'echo:8080', 'x-request-id': 'abc-123' },
    });
    assert.equal(withId.status, 200);
    assert.equal(lastTo('/id')['x-request-id'], 'abc-123', 'an existing request id is propagated');
  });

  test('request and response bodies stream through both proxies intact', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 7, 'trellis-');
    const r = await send('http://echo:8080/upload', {
      method: 'POST',
      headers: { host: 'echo:8080', 'content-length': body.length },
      body,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body, `POST /upload ${createHash('sha256').update(body).digest('hex')}`);
  });

  test('an app speaking HTTP/2 (h2c) goes on over HTTP/2 between the proxies, bodies intact', async () => {
    const body = Buffer.alloc(256 * 1024 + 3, 'h2-');
    const session = http2.connect(`http://127.0.0.1:${client.ports.outbound}`);
    try {
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/h2-upload', ':authority': 'echo:8080' });
        let text = '';
        let status = 0;
        s.on('response', (h) => {
          status = Number(h[':status']);
        });
        s.setEncoding('utf8');
        s.on('data', (c: string) => {
          text += c;
        });
        s.on('end', () => resolve({ status, body: text }));
        s.on('error', reject);
        s.end(body);
      });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, `POST /h2-upload ${createHash('sha256').update(body).digest('hex')}`);
      assert.equal(lastTo('/h2-upload').host, 'echo:8080');
    } finally {
      session.close();
    }
  });

  test('paths are normalized before routing; a NUL in the path is refused', async () => {
    await send('http://echo:8080/public/%2e%2e/admin', { headers: { host: 'echo:8080' } });
    assert.ok(lastTo('/admin')['x-request-id'], 'the app received /admin');
    assert.ok(
      !seen.some((r) => r.path.includes('..') || r.path.includes('%2e')),
      'no un-normalized path reached the app',
    );
    const nul = await send('http://echo:8080/a%00b', { headers: { host: 'echo:8080' } });
    assert.equal(nul.status, 400);
    assert.equal(nul.headers['x-trellis-response-flags'], 'DPE');
  });

  test('an ambiguous request (Content-Length with Transfer-Encoding) is refused at the first hop and counted', async () => {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: echo:8080\r\n\r\n';
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(client.ports.outbound!, '127.0.0.1');
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        got += d;
      });
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
      socket.end(
        'POST http://echo:8080/cl-te HTTP/1.1\r\nHost: echo:8080\r\nContent-Length: 4\r\n' +
          `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });
    assert.match(
      answer,
      /^HTTP\/1\.1 400 Bad Request\r\n.*x-trellis-response-flags: DPE\r\n.*TRL_HTTP_CL_TE_CONFLICT/s,
    );
    assert.ok(!seen.some((r) => r.path === '/cl-te' || r.path === '/smuggled'), 'nothing reached the app');
    const metrics = await (await fetch(`http://127.0.0.1:${client.ports.admin}/stats/prometheus`)).text();
    assert.match(
      metrics,
      /istio_requests_total\{reporter="source",[^}]*response_code="400"[^}]*response_flags="DPE"[^}]*\} [1-9]/,
    );
  });

  test("the proxy's own answers carry a response flag and the rule responsible", async () => {
    // A host the registry does not know: REGISTRY_ONLY's BlackHoleCluster answers.
    const nr = await send('http://unknown:8080/', { headers: { host: 'unknown:8080' } });
    assert.equal(nr.status, 502);
    assert.equal(nr.headers['x-trellis-response-flags'], 'NR');
    assert.match(String(nr.headers['x-trellis-rule']), /REGISTRY_ONLY \(BlackHoleCluster\)/);

    const uh = await send('http://nobody:8080/', { headers: { host: 'nobody:8080' } });
    assert.equal(uh.status, 503);
    assert.equal(uh.headers['x-trellis-response-flags'], 'UH');
    assert.match(
      String(uh.headers['x-trellis-rule']),
      /outbound\|8080\|\|nobody\.default\.svc\.cluster\.local/,
    );

    const ut = await send('http://echo:8080/slow', { headers: { host: 'echo:8080' } });
    assert.equal(ut.status, 504);
    assert.equal(ut.headers['x-trellis-response-flags'], 'UT');
    assert.match(
      String(ut.headers['x-trellis-rule']),
      /timeout 300ms of VirtualService default\/echo http\[0\]/,
    );

    const direct = await send('http://echo:8080/', { headers: { host: 'echo:8080', 'x-canned': 'yesss' } });
    assert.equal(direct.status, 418);
    assert.equal(direct.body, 'short and stout');

    const metrics = await (await fetch(`http://127.0.0.1:${client.ports.admin}/stats/prometheus`)).text();
    assert.match(
      metrics,
      /istio_requests_total\{reporter="source",[^}]*response_code="504"[^}]*response_flags="UT"[^}]*\} 1/,
    );
    assert.match(
      metrics,
      /istio_requests_total\{reporter="source",[^}]*response_code="503"[^}]*response_flags="UH"[^}]*\} 1/,
    );
  });

  test('the gateway shows outside clients flags but never rule names, its own or from further in', async () => {
    const port = await new PortAllocator().next();
    const gw = await proxy({
      id: 'edge-0',
      role: 'gateway',
      workload: 'edge',
      namespace: 'default',
      serviceAccount: 'edge',
      labels: { istio: 'edge' },
      ports: [],
      gatewayPorts: { '80': port },
    });
    try {
      await until(
        'the gateway listener',
        async () => (await fetch(`http://127.0.0.1:${port}/hello`)).status === 200,
      );
      const inner = await fetch(`http://127.0.0.1:${port}/inner-rule`);
      assert.equal(inner.status, 503);
      assert.equal(inner.headers.get('x-trellis-rule'), null);
      // Inside the mesh the caller may know.
      const meshSide = await send('http://echo:8080/inner-rule', { headers: { host: 'echo:8080' } });
      assert.equal(meshSide.headers['x-trellis-rule'], 'VirtualService secret/internal http[3]');
    } finally {
      await gw.close();
    }
  });

  test('PeerAuthentication: STRICT cuts plaintext; PERMISSIVE takes HTTP/1.1 and h2c; a STRICT port refuses it', async () => {
    const port = echoProxy.ports.inbound!;
    const plain = (host: string) =>
      new Promise<string>((resolve) => {
        const req = http.get(
          { host: '127.0.0.1', port, path: '/plain', headers: { host }, timeout: 3000, agent: false },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => {
              body += c;
            });
            res.on('end', () =>
              resolve(`${res.statusCode} ${res.headers['x-trellis-response-flags'] ?? ''} ${body}`),
            );
          },
        );
        req.on('error', (e) => resolve(`error ${e.message}`));
        req.on('timeout', () => req.destroy(new Error('timeout')));
      });
    const policy = async (mode: string, portLevel = '') => {
      const text = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  mtls: {mode: ${mode}}
${portLevel}`;
      const res = await fetch(`${cp.info.api}/api/v1/apply`, {
        method: 'POST',
        headers: adminHeaders(cp.info),
        body: JSON.stringify({ sources: [{ file: 'pa.yaml', text }] }),
      });
      assert.equal(res.status, 200, await res.text());
      await until(`the echo sidecar to run ${mode} ${portLevel}`, async () => {
        const inbound = echoProxy.current()?.listeners.find((l) => l.type === 'inbound');
        if (inbound?.type !== 'inbound' || inbound.mtls !== mode) return false;
        return portLevel ? inbound.portMtls?.['8080'] === 'STRICT' : inbound.portMtls === undefined;
      });
    };
    try {
      assert.match(await plain('echo:8080'), /^error/, 'STRICT by default: plaintext never reaches the app');
      await policy('PERMISSIVE');
      assert.match(await plain('echo:8080'), /^200 {2}GET \/plain /);
      assert.match(await plain('echo.default.svc.cluster.local:8080'), /^200 /);
      const session = http2.connect(`http://127.0.0.1:${port}`);
      const h2c = await new Promise<string>((resolve, reject) => {
        const s = session.request({ ':path': '/h2c', ':authority': 'echo:8080' });
        let body = '';
        let status = 0;
        s.on('response', (h) => {
          status = Number(h[':status']);
        });
        s.on('data', (c: Buffer) => {
          body += c;
        });
        s.on('end', () => resolve(`${status} ${body}`));
        s.on('error', reject);
      });
      session.close();
      assert.match(h2c, /^200 GET \/h2c /);
      // Mesh clients keep mTLS and are reported as such.
      assert.equal((await send('http://echo:8080/over-mtls')).status, 200);
      const metrics = await (
        await fetch(`http://127.0.0.1:${echoProxy.ports.admin}/stats/prometheus`)
      ).text();
      assert.match(
        metrics,
        /istio_requests_total\{reporter="destination",source_workload="unknown",[^}]*connection_security_policy="none"\} [1-9]/,
      );
      assert.match(
        metrics,
        /istio_requests_total\{reporter="destination",source_workload="client",[^}]*connection_security_policy="mutual_tls"\} [1-9]/,
      );
      await policy('PERMISSIVE', '  portLevelMtls:\n    8080: {mode: STRICT}');
      assert.match(await plain('echo:8080'), /^403 DPE /);
    } finally {
      await policy('STRICT');
    }
    assert.match(await plain('echo:8080'), /^error/);
  });

  test('secure naming: a client refuses a server that presents an identity the service does not run as', async () => {
    const ca = await CertificateAuthority.loadOrCreate({ dir: path.join(stateDir, 'ca') });
    const id = 'spiffe://cluster.local/ns/default/sa/tester';
    const { keyPem, csrPem } = await generateKeyAndCsr(id);
    const signed = await ca.signCsr(csrPem, { namespace: 'default', serviceAccount: 'tester' });
    const creds = new CredentialStore();
    creds.set({
      keyPem,
      certChainPem: signed.certChainPem,
      trustBundlePem: ca.trustBundlePem(),
      identity: id,
      ...certValidity(signed.certChainPem),
    });
    const pool = new PeerPool(creds, 3000);
    const ep = { address: '127.0.0.1', port: echoProxy.ports.inbound!, healthy: true };
    const sni = 'outbound_.8080_._.echo.default.svc.cluster.local';
    const attempt = (identities: string[]) =>
      new Promise<string>((resolve) => {
        const s = pool.session(ep, sni, identities);
        s.once('connect', () => resolve('connected'));
        s.once('error', (e) => resolve(`error: ${e.message}`));
      });
    assert.match(
      await attempt(['spiffe://cluster.local/ns/default/sa/not-echo']),
      /secure naming: peer identity spiffe:\/\/cluster.local\/ns\/default\/sa\/echo is not one of/,
    );
    pool.close();
    assert.equal(await attempt(['spiffe://cluster.local/ns/default/sa/echo']), 'connected');
    // The same check guards the keep-alive HTTP/1.1 connections requests that came in as HTTP/1.1 use.
    const h1 = (identities: string[]) =>
      new Promise<string>((resolve) => {
        pool.h1(ep, sni, identities).request('GET', '/naming', { host: 'echo:8080' }, false, {
          onHead: (status) => resolve(`status ${status}`),
          onData: () => true,
          onEnd: () => {},
          onError: (e, stage) => resolve(`${stage}: ${e.message}`),
        });
      });
    assert.match(
      await h1(['spiffe://cluster.local/ns/default/sa/not-echo']),
      /^connect: secure naming: peer identity spiffe:\/\/cluster.local\/ns\/default\/sa\/echo is not one of/,
    );
    assert.equal(await h1(['spiffe://cluster.local/ns/default/sa/echo']), 'status 200');
    pool.close();
  });

  test('without the control plane traffic keeps flowing; a restarted control plane resyncs every proxy', async () => {
    const ports = { api: Number(new URL(cp.info.api).port), xds: Number(new URL(cp.info.xds).port) };
    const versionBefore = client.current()!.version;
    await cp.close();
    for (let i = 0; i < 20; i++) {
      const r = await send('http://echo:8080/while-away', { headers: { host: 'echo:8080' } });
      assert.equal(r.status, 200);
      await new Promise((r) => setTimeout(r, 100));
    }
    cp = await controlPlane(ports);
    await until(
      'proxies to reconnect and resync',
      async () => {
        const s = (await (
          await fetch(`${cp.info.api}/api/v1/proxy-status`, { headers: adminHeaders(cp.info) })
        ).json()) as {
          proxies: { status: string }[];
        };
        return s.proxies.length === 2 && s.proxies.every((p) => p.status === 'SYNCED');
      },
      20_000,
    );
    assert.equal(
      client.current()!.version,
      versionBefore,
      'the same config, recompiled from the durable store and restored registry',
    );
    const vs = await fetch(`${cp.info.api}/api/v1/resources/vs/default/echo`, {
      headers: adminHeaders(cp.info),
    });
    assert.equal(vs.status, 200);
    assert.equal((await send('http://echo:8080/after', { headers: { host: 'echo:8080' } })).status, 200);
  });
});
