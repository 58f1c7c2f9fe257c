// gRPC through real proxies with real @grpc/grpc-js clients and servers: a client app reaching a mesh
// name through its sidecar (grpc_proxy: HTTP/2 with prior knowledge inside a CONNECT tunnel), mTLS
// HTTP/2 between sidecars, h2c from the server's sidecar to its app; and the same service through
// the ingress gateway. Unary and streaming calls, trailers, trailers-only statuses, large messages,
// gRPC retries and fault aborts, and Istio's gRPC metrics on both sidecars.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type Echo,
  type EchoServer,
  echoClient,
  type SayReply,
  type SayRequest,
  startEchoServer,
} from '../samples/grpc/echo.ts';
import type { ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

let cp: RunningControlPlane;
let app: EchoServer;
let server: RunningProxy;
let client: RunningProxy;
let gateway: RunningProxy;
let gatewayPort: number;
const MB = 1024 * 1024;

const MESH = `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: grpc, port: 9000, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: edge}
  servers:
  - port: {number: 80, name: grpc, protocol: GRPC}
    hosts: ["echo.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-edge}
spec:
  hosts: ["echo.example.com"]
  gateways: [edge]
  http:
  - route:
    - destination: {host: echo, port: {number: 9000}}
`;

async function apply(yaml: string): Promise<{ warnings: unknown[] }> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'grpc.yaml', text: yaml }] }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

async function applyUntil(yaml: string, ready: (s: ProxySnapshot) => boolean): Promise<void> {
  await apply(yaml);
  await until('the client to run the change', async () => {
    const s = client.current();
    return s !== undefined && ready(s);
  });
}

const OPTIONS = { 'grpc.max_receive_message_length': 16 * MB, 'grpc.max_send_message_length': 16 * MB };

/**
 * The client app's channel to `echo:9000`, as an app in the mesh opens it: plaintext, to the mesh
 * name, through its sidecar named by grpc_proxy (grpc-js reads it when the channel is made).
 */
function meshClient(): Echo {
  const saved = process.env.grpc_proxy;
  process.env.grpc_proxy = `http://127.0.0.1:${client.ports.outbound}`;
  try {
    return echoClient('echo:9000', OPTIONS);
  } finally {
    if (saved === undefined) delete process.env.grpc_proxy;
    else process.env.grpc_proxy = saved;
  }
}

/** A client outside the mesh, at the gateway, with the Host the Gateway serves. */
function edgeClient(): Echo {
  return echoClient(`127.0.0.1:${gatewayPort}`, {
    ...OPTIONS,
    'grpc.default_authority': 'echo.example.com',
  });
}

interface Unary {
  err: grpc.ServiceError | null;
  reply?: SayReply;
  headers?: grpc.Metadata;
  trailers?: grpc.Metadata;
}

function say(
  c: Echo,
  req: SayRequest,
  opts: grpc.CallOptions = {},
  md = new grpc.Metadata(),
): Promise<Unary> {
  return new Promise((resolve) => {
    const out: Unary = { err: null };
    const call = c.Say(
      req,
      md,
      { deadline: Date.now() + 10_000, ...opts },
      (err: grpc.ServiceError | null, reply?: SayReply) => {
        out.err = err;
        out.reply = reply;
      },
    );
    call.on('metadata', (m: grpc.Metadata) => {
      out.headers = m;
    });
    call.on('status', (s: grpc.StatusObject) => {
      out.trailers = s.metadata;
      // The callback runs before 'status'.
      setImmediate(() => resolve(out));
    });
  });
}

/** Bidirectional: sends `n` messages, reads every answer, returns them and the trailers. */
function chat(c: Echo, n: number, size = 0): Promise<{ replies: SayReply[]; status: grpc.StatusObject }> {
  return new Promise((resolve, reject) => {
    const call = c.Chat({
      deadline: Date.now() + 20_000,
    });
    const replies: SayReply[] = [];
    call.on('data', (r: SayReply) => replies.push(r));
    call.on('error', reject);
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) setImmediate(() => resolve({ replies, status }));
    });
    for (let i = 0; i < n; i++) call.write({ text: `m${i}`, size, payload: Buffer.alloc(size, 1) });
    call.end();
  });
}

/** A proxy's Prometheus metrics: the sum of the samples whose labels include `labels`. */
async function stat(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.ports.admin}/stats/prometheus`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Waits for a metric to reach `value`: a proxy records an exchange once its stream has closed. */
function statReaches(p: RunningProxy, name: string, labels: Record<string, string>, value: number) {
  return until(`${name} ${JSON.stringify(labels)} to reach ${value}`, async () => {
    const v = await stat(p, name, labels);
    return v >= value ? v : undefined;
  });
}

describe('gRPC through the mesh with real grpc-js clients and servers', { timeout: 180_000 }, () => {
  before(async () => {
    cp = await startControlPlane({
      stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-grpc-')),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log: SILENT,
    });
    const { warnings } = await apply(MESH);
    assert.deepEqual(warnings, [], 'a GRPC gateway server is served: no warning');
    app = await startEchoServer('echo-v1');
    server = await meshProxy(
      cp.info,
      {
        id: 'echo-v1-0',
        role: 'sidecar',
        workload: 'echo-v1',
        namespace: 'default',
        serviceAccount: 'echo',
        labels: { app: 'echo', version: 'v1' },
        ports: [{ name: 'grpc', port: 8080 }],
      },
      { appPort: app.port, log: SILENT },
    );
    client = await meshProxy(
      cp.info,
      {
        id: 'client-0',
        role: 'sidecar',
        workload: 'client',
        namespace: 'default',
        serviceAccount: 'client',
        labels: { app: 'client' },
        ports: [],
      },
      { log: SILENT },
    );
    gatewayPort = await new PortAllocator().next();
    gateway = await meshProxy(
      cp.info,
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
      { log: SILENT },
    );
    await until(
      'the echo endpoint healthy for the client and the gateway',
      async () =>
        [client, gateway].every((p) =>
          p
            .current()
            ?.clusters.some((c) => c.service?.startsWith('echo.') && c.endpoints.some((e) => e.healthy)),
        ),
      30_000,
    );
  });

  after(async () => {
    await client?.close();
    await gateway?.close();
    await server?.close();
    await app?.close();
    await cp?.close();
  });

  test('the server sidecar speaks h2c to a port named grpc', () => {
    const inbound = server.current()?.clusters.find((c) => c.name === 'inbound|8080||');
    assert.equal(inbound?.http2, true);
  });

  test('unary through both sidecars: reply, headers and trailers as the app sent them', async () => {
    const c = meshClient();
    try {
      const md = new grpc.Metadata();
      md.set('x-app-header', 'from-client');
      const r = await say(c, { text: 'hello', size: 10 }, {}, md);
      assert.equal(r.err, null);
      assert.equal(r.reply?.text, 'hello');
      assert.equal(r.reply?.server, 'echo-v1');
      assert.equal(r.reply?.payload.length, 10);
      assert.deepEqual(r.headers?.get('x-server'), ['echo-v1']);
      assert.deepEqual(r.trailers?.get('x-echo-trailer'), ['kept'], 'custom trailers cross both sidecars');
      const seen = app.calls.at(-1)!;
      assert.deepEqual(seen.metadata.get('x-app-header'), ['from-client']);
      assert.equal(
        seen.metadata.get('x-forwarded-client-cert').length,
        1,
        'the server sidecar verified the peer',
      );
    } finally {
      c.close();
    }
  });

  test('an error status is a trailers-only answer: code, message and custom trailers kept', async () => {
    const c = meshClient();
    try {
      const r = await say(c, { text: 'x', failCode: grpc.status.NOT_FOUND });
      assert.equal(r.err?.code, grpc.status.NOT_FOUND);
      assert.equal(r.err?.details, 'asked to fail');
      assert.deepEqual(r.err?.metadata.get('x-detail'), ['custom trailer']);
      await statReaches(
        client,
        'istio_requests_total',
        { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '5', response_code: '200' },
        1,
      );
      await statReaches(
        server,
        'istio_requests_total',
        { reporter: 'destination', request_protocol: 'grpc', grpc_response_status: '5' },
        1,
      );
    } finally {
      c.close();
    }
  });

  test('bidirectional streaming: every message both ways, trailers, message counts on both sidecars', async () => {
    const c = meshClient();
    const labels = { request_protocol: 'grpc', grpc_response_status: '0' };
    const before = {
      srcReq: await stat(client, 'istio_request_messages_total', { reporter: 'source', ...labels }),
      srcRes: await stat(client, 'istio_response_messages_total', { reporter: 'source', ...labels }),
      dstReq: await stat(server, 'istio_request_messages_total', { reporter: 'destination', ...labels }),
      dstRes: await stat(server, 'istio_response_messages_total', { reporter: 'destination', ...labels }),
    };
    try {
      const { replies, status } = await chat(c, 40, 100);
      assert.equal(replies.length, 40);
      assert.deepEqual(
        replies.map((r) => r.text),
        Array.from({ length: 40 }, (_, i) => `m${i}`),
      );
      assert.deepEqual(status.metadata.get('x-messages'), ['40']);
      await statReaches(
        client,
        'istio_request_messages_total',
        { reporter: 'source', ...labels },
        before.srcReq + 40,
      );
      await statReaches(
        client,
        'istio_response_messages_total',
        { reporter: 'source', ...labels },
        before.srcRes + 40,
      );
      await statReaches(
        server,
        'istio_request_messages_total',
        { reporter: 'destination', ...labels },
        before.dstReq + 40,
      );
      await statReaches(
        server,
        'istio_response_messages_total',
        { reporter: 'destination', ...labels },
        before.dstRes + 40,
      );
    } finally {
      c.close();
    }
  });

  test('large messages both ways and a long server stream, at the pace the client reads', async () => {
    const c = meshClient();
    try {
      // 6 MiB up, 6 MiB down in one call: many DATA frames per message each way.
      const r = await say(c, { text: 'big', size: 6 * MB, payload: Buffer.alloc(6 * MB, 7) });
      assert.equal(r.err, null);
      assert.equal(r.reply?.received, 6 * MB);
      assert.equal(r.reply?.payload.length, 6 * MB);
      // 128 × 512 KiB (64 MiB) to a client that stops reading after the first: the server can write
      // only as far as the flow-control windows and the proxies' bounded buffers let it, then waits.
      // (Windows and grpc-js's own buffering hold a few MiB; on a quiet machine 16 MiB all fit.)
      const call = c.Download({ text: 'd', size: MB / 2, count: 128 }, { deadline: Date.now() + 60_000 });
      let n = 0;
      let bytes = 0;
      const status = new Promise<grpc.StatusObject>((resolve, reject) => {
        call.on('error', reject);
        call.on('status', (s: grpc.StatusObject) => setImmediate(() => resolve(s)));
      });
      await new Promise<void>((resolve) =>
        call.on('data', (m: SayReply) => {
          n++;
          bytes += m.payload.length;
          if (n === 1) {
            call.pause();
            resolve();
          }
        }),
      );
      // The server stops once the windows are full: its count stays put over a few looks. (grpc-js
      // holds 16 messages of its own before its write says wait; a proxy that buffered without
      // bound would let all 128 go.)
      let last = -1;
      let still = 0;
      await until('the server to stop writing while the client does not read', async () => {
        still = app.downloaded === last ? still + 1 : 0;
        last = app.downloaded;
        return still >= 3;
      });
      assert.ok(app.downloaded < 128, `the server was held back, at ${app.downloaded} of 128 messages`);
      call.resume();
      const s = await status;
      assert.deepEqual(
        { n, bytes, sent: s.metadata.get('x-sent') },
        { n: 128, bytes: 64 * MB, sent: ['128'] },
      );
      await statReaches(
        client,
        'istio_response_messages_total',
        { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '0' },
        128,
      );
    } finally {
      c.close();
    }
  });

  test('through the ingress gateway: unary with trailers and a bidirectional stream', async () => {
    const c = edgeClient();
    try {
      const r = await say(c, { text: 'edge' });
      assert.equal(r.err, null);
      assert.equal(r.reply?.server, 'echo-v1');
      assert.deepEqual(r.trailers?.get('x-echo-trailer'), ['kept']);
      const s = await chat(c, 10);
      assert.equal(s.replies.length, 10);
      assert.deepEqual(s.status.metadata.get('x-messages'), ['10']);
      const fail = await say(c, { failCode: grpc.status.PERMISSION_DENIED });
      assert.equal(fail.err?.code, grpc.status.PERMISSION_DENIED);
      await statReaches(
        gateway,
        'istio_requests_total',
        { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '7' },
        1,
      );
      await statReaches(
        gateway,
        'istio_request_messages_total',
        { reporter: 'source', request_protocol: 'grpc', grpc_response_status: '0' },
        11,
      );
    } finally {
      c.close();
    }
  });

  test('no route for a gRPC call is a gRPC status, as Envoy answers gRPC requests itself', async () => {
    const c = echoClient(`127.0.0.1:${gatewayPort}`, { 'grpc.default_authority': 'nowhere.example.com' });
    try {
      const r = await say(c, { text: 'x' });
      assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED, 'a 404 maps to UNIMPLEMENTED');
      await statReaches(
        gateway,
        'istio_requests_total',
        { request_protocol: 'grpc', grpc_response_status: '12', response_flags: 'NR', response_code: '200' },
        1,
      );
    } finally {
      c.close();
    }
  });

  test('retryOn unavailable: a call the server fails with UNAVAILABLE is tried again', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - retries: {attempts: 3, retryOn: unavailable, perTryTimeout: 5s}
    route:
    - destination: {host: echo, port: {number: 9000}}
`,
      (s) =>
        s.routeTables.some((t) =>
          t.virtualHosts.some((v) =>
            v.routes.some((r) => r.action.type === 'forward' && r.action.retry?.on.join() === 'unavailable'),
          ),
        ),
    );
    const c = meshClient();
    try {
      const calls = app.calls.length;
      const r = await say(c, { text: 'again', key: 'retry-1', failTimes: 2 });
      assert.equal(r.err, null, 'the third try succeeds');
      assert.equal(r.reply?.text, 'again');
      assert.equal(app.calls.length - calls, 3);
      // More failures than tries: the last UNAVAILABLE goes to the client, flag URX.
      const exhausted = await say(c, { text: 'never', key: 'retry-2', failTimes: 9 });
      assert.equal(exhausted.err?.code, grpc.status.UNAVAILABLE);
      assert.equal(exhausted.err?.details, 'try 4 of retry-2');
      await statReaches(
        client,
        'istio_requests_total',
        { reporter: 'source', grpc_response_status: '14', response_flags: 'URX' },
        1,
      );
      // A status not in retryOn is not retried.
      const before = app.calls.length;
      const internal = await say(c, { failCode: grpc.status.INTERNAL });
      assert.equal(internal.err?.code, grpc.status.INTERNAL);
      assert.equal(app.calls.length - before, 1);
    } finally {
      c.close();
    }
  });

  test('fault abort grpcStatus: a trailers-only answer from the client sidecar, flag FI; a delay holds gRPC too', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route:
    - destination: {host: echo, port: {number: 9000}}
  - match: [{headers: {x-fault: {exact: delay}}}]
    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
    route:
    - destination: {host: echo, port: {number: 9000}}
  - route:
    - destination: {host: echo, port: {number: 9000}}
`,
      (s) =>
        s.routeTables.some((t) =>
          t.virtualHosts.some((v) =>
            v.routes.some((r) => r.action.type === 'forward' && r.action.fault?.abort?.grpcStatus === 14),
          ),
        ),
    );
    const c = meshClient();
    try {
      const calls = app.calls.length;
      const md = new grpc.Metadata();
      md.set('x-fault', 'abort');
      const r = await say(c, { text: 'x' }, {}, md);
      assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
      assert.equal(r.err?.details, 'fault filter abort');
      assert.equal(app.calls.length, calls, 'the app never saw the call');
      await statReaches(
        client,
        'istio_requests_total',
        { reporter: 'source', grpc_response_status: '14', response_flags: 'FI', response_code: '200' },
        1,
      );
      const slow = new grpc.Metadata();
      slow.set('x-fault', 'delay');
      const start = performance.now();
      const d = await say(c, { text: 'late' }, {}, slow);
      assert.equal(d.err, null);
      assert.ok(performance.now() - start >= 290, 'held for the delay');
      assert.deepEqual(d.trailers?.get('x-echo-trailer'), ['kept']);
    } finally {
      c.close();
    }
  });

  test("a client's deadline ends the call at the app too", async () => {
    const c = meshClient();
    try {
      const cancelled = app.cancelled;
      const r = await say(c, { text: 'slow', delayMs: 3000 }, { deadline: Date.now() + 300 });
      assert.equal(r.err?.code, grpc.status.DEADLINE_EXCEEDED);
      await until('the app to see the call cancelled', async () => app.cancelled > cancelled);
    } finally {
      c.close();
    }
  });

  test('grpc-timeout bounds the call at the proxy: a trailers-only UNAVAILABLE, flag UT, the app cancelled', async () => {
    // A client that sends a deadline but does not enforce it itself: only the proxy can end the call.
    const session = http2.connect(`http://127.0.0.1:${gatewayPort}`);
    try {
      const cancelled = app.cancelled;
      const stream = session.request({
        ':method': 'POST',
        ':path': '/trellis.test.Echo/Say',
        ':authority': 'echo.example.com',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': '200m',
      });
      // SayRequest{delay_ms: 3000} in one length-prefixed message.
      stream.end(Buffer.from([0, 0, 0, 0, 3, 0x38, 0xb8, 0x17]));
      const start = performance.now();
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
        stream.once('response', resolve),
      );
      stream.resume();
      const ms = performance.now() - start;
      assert.equal(head[':status'], 200);
      assert.equal(head['grpc-status'], '14');
      assert.equal(head['x-trellis-response-flags'], 'UT');
      assert.ok(ms >= 190 && ms < 2500, `answered at the deadline, after ${Math.round(ms)}ms`);
      await until('the app to see the call cancelled', async () => app.cancelled > cancelled);
    } finally {
      session.close();
    }
  });

  // Last: it ejects the only endpoint from the client's cluster for the rest of the run.
  test('outlier detection counts a trailers-only status as the HTTP status it maps to', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
`,
      (s) => s.clusters.some((c) => c.service?.startsWith('echo.') && c.outlierDetection !== undefined),
    );
    const c = meshClient();
    try {
      // INTERNAL is 500 to the outlier detector, and not retried by Istio's default policy.
      for (let i = 0; i < 2; i++)
        assert.equal((await say(c, { failCode: grpc.status.INTERNAL })).err?.code, grpc.status.INTERNAL);
      const r = await say(c, { text: 'after' });
      assert.equal(r.err?.code, grpc.status.UNAVAILABLE, 'the endpoint is ejected: no healthy upstream');
      await statReaches(
        client,
        'istio_requests_total',
        { grpc_response_status: '14', response_flags: 'UH' },
        1,
      );
    } finally {
      c.close();
    }
  });
});
