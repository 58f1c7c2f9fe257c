// WebSocket through the mesh, end to end: a real control plane, a gateway, a client sidecar and the
// echo app's sidecar on real sockets with mTLS between the proxies. The echo app is Node's http server
// with the RFC 6455 framing of test/support/websocket.ts; clients speak HTTP/1.1 Upgrade or HTTP/2
// extended CONNECT. Routing, header edits and authorization apply to the handshake; after the 101
// messages go both ways, large ones too, and the close handshake ends every socket on the way.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
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
import {
  destroyClients,
  type EchoApp,
  echoApp,
  type WsEndpoint,
  wsConnect,
  wsConnectH2,
} from './support/websocket.ts';

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
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
  - match: [{uri: {prefix: /moved}}]
    redirect: {uri: /elsewhere}
  - route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 8080}}}]
    timeout: 500ms
    headers:
      request: {set: {x-edge: gateway}}
      response: {set: {x-edge-response: gateway}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{uri: {prefix: /rewritten}}]
    rewrite: {uri: /echo-rewritten}
    route: [{destination: {host: echo}}]
  - route: [{destination: {host: echo}}]
    timeout: 300ms
    retries: {attempts: 2, retryOn: 5xx}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
`;

/** The access log lines of the echo sidecar and the gateway. */
const access: Record<string, unknown>[] = [];
const recording: Logger = {
  debug() {},
  info(msg, fields = {}) {
    if (msg === 'access') access.push(fields);
  },
  warn() {},
  error() {},
  child: () => recording,
};

let cp: RunningControlPlane;
let app: EchoApp;
let echo: RunningProxy;
let client: RunningProxy;
let gateway: RunningProxy;
let gatewayPort: number;

async function proxy(
  node: Omit<ProxyNode, 'healthy' | 'address' | 'inboundPort'>,
  appPort?: number,
  log = SILENT,
) {
  return meshProxy(cp.info, node, { appPort, log, accessLog: log !== SILENT });
}

/** Through the client's sidecar, as an app beside it would: absolute form to echo:8080. */
const viaSidecar = (target: string, headers?: Record<string, string>) =>
  wsConnect(client.ports.outbound!, `http://echo:8080${target}`, 'echo:8080', headers);

const viaGateway = (target: string, headers?: Record<string, string>) =>
  wsConnect(gatewayPort, target, 'ws.example.com', headers);

async function metric(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.ports.admin}/stats/prometheus`)).text();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

/** Text, binary and a large message out and back, then the close handshake and every socket's end. */
async function converse(ws: WsEndpoint): Promise<void> {
  ws.send('hello');
  assert.deepEqual(await ws.next(), { binary: false, data: Buffer.from('hello') });
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  ws.send(bytes);
  assert.deepEqual(await ws.next(), { binary: true, data: bytes });
  // Larger than any socket buffer on the way: backpressure at every hop, 64-bit frame length.
  const large = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < large.length; i += 4096) large.writeUInt32BE(i, i);
  ws.send(large);
  const back = await ws.next(30_000);
  assert.equal(back.data.length, large.length);
  assert.ok(back.data.equals(large), 'the large message came back intact');
  ws.sendFragmented(Buffer.from('in three parts'), 3);
  assert.equal((await ws.next()).data.toString(), 'in three parts');
  assert.equal(await ws.close(1000), 1000, 'the app answered the close frame');
  await ws.ended; // the app ended its side first, and the proxies passed the end on
  ws.stream.end();
  await ws.closed;
  assert.deepEqual(ws.errors, []);
}

describe('WebSocket through the mesh', { timeout: 120_000 }, () => {
  before(async () => {
    cp = await startControlPlane({
      stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-ws-')),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      version: 'test',
      log: SILENT,
    });
    const res = await fetch(`${cp.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.deepEqual((JSON.parse(text) as { warnings: unknown[] }).warnings, []);
    app = await echoApp();
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
      app.port,
      recording,
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
        gatewayPorts: { '80': gatewayPort },
      },
      undefined,
      recording,
    );
    await until('the gateway and the sidecars to route to echo', async () => {
      const a = await viaGateway('/ready').catch(() => undefined);
      const b = await viaSidecar('/ready').catch(() => undefined);
      a?.socket.destroy();
      b?.socket.destroy();
      return a?.status === 101 && b?.status === 101;
    });
  });

  after(async () => {
    destroyClients();
    // Known hang (issue 11 note): since CONNECT tunnels go through the L4 path, a proxy of this suite
    // does not finish closing and one socket outlives it. Bound the wait and let the file end.
    const bounded = (p: Promise<unknown> | undefined) =>
      Promise.race([p, new Promise((r) => setTimeout(r, 8000).unref())]);
    await bounded(gateway?.close());
    await bounded(client?.close());
    await bounded(echo?.close());
    await bounded(cp?.close());
    await bounded(app?.close());
    for (const h of (process as unknown as { _getActiveHandles(): { unref?(): void }[] })._getActiveHandles())
      h.unref?.();
  });

  test('through sidecars: app → outbound → mTLS → inbound → app, both ways, closed cleanly', async () => {
    const r = await viaSidecar('/chat?room=1');
    assert.equal(r.status, 101);
    assert.equal(r.headers['x-echo-app'], 'yes', "the app's 101 headers come through");
    assert.equal(r.headers.connection?.toLowerCase(), 'upgrade');
    assert.equal(r.headers.upgrade?.toLowerCase(), 'websocket');
    assert.equal(app.urls.at(-1), '/chat?room=1');
    const seen = app.handshakes.at(-1)!;
    assert.ok(seen['x-forwarded-client-cert'], 'the inbound sidecar saw the client over mTLS');
    assert.equal(seen['x-trellis-peer'], undefined);
    // Outlives the route's 300ms timeout: it bounds the handshake, not the tunnel.
    await new Promise((r) => setTimeout(r, 600));
    await converse(r.ws!);
  });

  test('the client half-closes first: the app still answers through every proxy, then ends', async () => {
    for (const open of [viaSidecar, viaGateway]) {
      const { ws } = await open('/half');
      ws!.send('before');
      assert.equal((await ws!.next()).data.toString(), 'before');
      ws!.stream.end();
      assert.equal((await ws!.next()).data.toString(), 'after your end');
      await ws!.ended;
      await ws!.closed;
    }
  });

  test("inside the outbound listener's CONNECT tunnel, as a client with HTTP_PROXY sends it", async () => {
    const r = await wsConnect(client.ports.outbound!, '/tunnelled', 'echo:8080', {}, 'echo:8080');
    assert.equal(r.status, 101);
    assert.equal(app.urls.at(-1), '/tunnelled');
    await converse(r.ws!);
  });

  test("an off-the-shelf client, Node's WebSocket, through the gateway", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gatewayPort}/node-client`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const next = () => new Promise<MessageEvent>((r) => (ws.onmessage = r));
    ws.send('text from undici');
    assert.equal((await next()).data, 'text from undici');
    ws.binaryType = 'arraybuffer';
    ws.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(new Uint8Array((await next()).data as ArrayBuffer), new Uint8Array([1, 2, 3]));
    const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
    ws.close(1000, 'done');
    const event = await closed;
    assert.equal(event.code, 1000);
    assert.equal(event.wasClean, true);
  });

  test('through the gateway: route header edits apply to the handshake and its 101', async () => {
    const r = await viaGateway('/live');
    assert.equal(r.status, 101);
    assert.equal(r.headers['x-edge-response'], 'gateway');
    assert.equal(app.handshakes.at(-1)!['x-edge'], 'gateway');
    await new Promise((r) => setTimeout(r, 700));
    await converse(r.ws!);
  });

  test('the rewrite of the matching route applies to the handshake', async () => {
    const r = await viaSidecar('/rewritten/x');
    assert.equal(r.status, 101);
    assert.equal(app.urls.at(-1), '/echo-rewritten/x');
    await converse(r.ws!);
  });

  test('authorization denies an upgrade like any request: 403, nothing reaches the app', async () => {
    const before = app.urls.length;
    const r = await viaSidecar('/admin/ws');
    assert.equal(r.status, 403);
    assert.match(r.headers['x-trellis-rule'] ?? '', /no-admin/);
    assert.equal(app.urls.length, before);
    // The same through the gateway: the client outside the mesh learns no rule name.
    const g = await viaGateway('/admin');
    assert.equal(g.status, 403);
    assert.equal(g.headers['x-trellis-rule'], undefined);
  });

  test("the app's refusal is an ordinary answer, and the connection closes after it", async () => {
    const r = await viaSidecar('/refuse');
    assert.equal(r.status, 426);
    assert.equal(r.body, 'no websocket here\n');
    assert.equal(r.headers.connection, 'close');
  });

  test("a handshake slower than the route's timeout is cut with 504 UT", async () => {
    const r = await viaSidecar('/slow');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-trellis-response-flags'], 'UT');
  });

  test('redirects and other upgrades: the proxy answers, an Upgrade other than websocket is refused', async () => {
    const moved = await viaGateway('/moved');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, 'http://ws.example.com/elsewhere');
    const other = await wsConnect(gatewayPort, '/x', 'ws.example.com', { Upgrade: 'foo' }).catch(
      (e: Error) => e,
    );
    // Two Upgrade fields: "websocket, foo" is not websocket.
    assert.ok(!(other instanceof Error));
    assert.equal(other.status, 403);
    assert.match(other.body, /TRL_HTTP_UPGRADE_NOT_SUPPORTED/);
  });

  test('HTTP/2 extended CONNECT at the gateway and the sidecar goes to the app as an HTTP/1.1 Upgrade', async () => {
    for (const [port, authority] of [
      [gatewayPort, 'ws.example.com'],
      [client.ports.outbound!, 'echo:8080'],
    ] as const) {
      const r = await wsConnectH2(port, '/h2', authority);
      assert.equal(r.status, 200);
      assert.equal(r.headers['sec-websocket-accept'], undefined);
      assert.equal(r.headers['x-echo-app'], 'yes');
      const seen = app.handshakes.at(-1)!;
      assert.equal(seen.upgrade, 'websocket');
      assert.ok(seen['sec-websocket-key'], 'a key for the HTTP/1.1 handshake');
      await converse(r.ws!);
      r.session.close();
    }
    const other = await wsConnectH2(gatewayPort, '/h2', 'ws.example.com', 'foo');
    assert.equal(other.status, 403);
    assert.equal(other.headers['x-trellis-response-flags'], 'DPE');
    other.session.destroy();
  });

  test('metrics and access log record the upgrade: 101 and the bytes both ways', async () => {
    const r = await viaSidecar('/counted');
    const ws = r.ws!;
    ws.send(Buffer.alloc(100_000, 7));
    assert.equal((await ws.next()).data.length, 100_000);
    await ws.close();
    await ws.ended;
    ws.stream.end();
    await ws.closed;
    const logged = await until('the echo sidecar to log the tunnel', async () =>
      access.find((a) => a.path === '/counted' && a.reporter === 'destination'),
    );
    assert.equal(logged.code, 101);
    assert.equal(logged.upgrade, 'websocket');
    assert.ok((logged.bytesReceived as number) > 100_000, `bytesReceived ${logged.bytesReceived}`);
    assert.ok((logged.bytesSent as number) > 100_000, `bytesSent ${logged.bytesSent}`);
    assert.ok(
      (await metric(echo, 'istio_requests_total', { reporter: 'destination', response_code: '101' })) >= 1,
    );
    assert.ok(
      (await metric(client, 'istio_requests_total', { reporter: 'source', response_code: '101' })) >= 1,
    );
  });
});
