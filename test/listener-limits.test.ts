// Listeners a client cannot exhaust: sniff and handshake timeouts, connections let go of once
// refused, a connection bound per listener with overflow counted, HTTP/2 held to the HTTP/1.1 head
// limits with bounded streams, and invalid Host / :authority refused. Real proxies against a real
// control plane, with small limits so that each case takes milliseconds.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { ListenerLimits } from '../src/dataplane/listener-limits.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import type { Logger } from '../src/lib/log.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
const log: Logger = {
  debug() {},
  info() {},
  warn(msg: string, fields?: Record<string, unknown>) {
    warnings.push({ msg, fields });
  },
  error() {},
  child: () => log,
};

const LIMITS: Partial<ListenerLimits> = {
  maxConnections: 5,
  sniffTimeoutMs: 300,
  handshakeTimeoutMs: 300,
  delayedCloseMs: 100,
  maxConcurrentStreams: 3,
};

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: 8080}]
`;

let cp: RunningControlPlane;
let app: http.Server;
let echoProxy: RunningProxy;
let client: RunningProxy;
/** Requests the app holds until `release()`; how many it held at most at once. */
const held = { now: 0, max: 0, waiting: [] as (() => void)[] };
const release = () => {
  for (const r of held.waiting.splice(0)) r();
};

async function proxy(node: Omit<ProxyNode, 'healthy' | 'address'>, appPort?: number): Promise<RunningProxy> {
  return meshProxy(cp.info, node, { appPort, log, listenerLimits: LIMITS });
}

/** One sample of a listener metric from the proxy's admin endpoint. */
async function metric(p: RunningProxy, name: string, listener: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.ports.admin}/stats/prometheus`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{listener="${listener}"} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Resolves with what the server sent once it closed the connection, or 'still open' after `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      got += d;
    });
    socket.on('error', () => {});
    const timer = setTimeout(() => resolve('still open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function connect(port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

function get(agent: http.Agent | false, host = 'echo:8080') {
  return new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: client.ports.outbound, path: '/hello', headers: { host }, agent },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function h2request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ status: number; flags?: string; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const s = session.request({ ':path': '/hello', ':authority': 'echo:8080', ...headers });
    let status = 0;
    let flags: string | undefined;
    let body = '';
    s.on('response', (h) => {
      status = Number(h[':status']);
      flags = h['x-trellis-response-flags'] as string | undefined;
    });
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      body += c;
    });
    s.on('end', () => resolve({ status, flags, body }));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.message }));
    s.end();
  });
}

describe('listeners a client cannot exhaust', { timeout: 60_000 }, () => {
  before(async () => {
    cp = await startControlPlane({
      stateDir: await mkdtemp(path.join(tmpdir(), 'trellis-limits-')),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log,
    });
    const res = await fetch(`${cp.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    assert.equal(res.status, 200, await res.text());
    app = http.createServer((req, res) => {
      if (req.url !== '/hold') {
        res.end(`echo ${req.url}`);
        return;
      }
      held.max = Math.max(held.max, ++held.now);
      held.waiting.push(() => {
        held.now--;
        res.end('released');
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
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
      (app.address() as AddressInfo).port,
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
    await until('the client proxy has a healthy echo endpoint', async () => {
      const ep = client
        .current()
        ?.clusters.find((c) => c.name === 'outbound|8080||echo.default.svc.cluster.local')?.endpoints[0];
      return ep?.healthy === true;
    });
    assert.equal((await get(false)).status, 200);
  });

  after(async () => {
    release();
    await client?.close();
    await echoProxy?.close();
    await cp?.close();
    app?.close();
  });

  test('a connection that sends nothing, or only "PR", is closed after the sniff timeout and counted', async () => {
    const before = await metric(client, 'trellis_listener_downstream_pre_cx_timeout_total', 'outbound');
    const silent = await connect(client.ports.outbound!);
    const preface = await connect(client.ports.outbound!);
    preface.write('PR');
    const [a, b] = await Promise.all([closedWithin(silent, 3000), closedWithin(preface, 3000)]);
    assert.equal(a, '', 'closed, nothing said');
    assert.equal(b, '', 'closed, nothing said');
    assert.equal(
      await metric(client, 'trellis_listener_downstream_pre_cx_timeout_total', 'outbound'),
      before + 2,
    );
  });

  test('the inbound listener cuts a TLS handshake that never completes and lets go of a failed one', async () => {
    const base = await metric(echoProxy, 'trellis_listener_downstream_cx_active', 'inbound');
    const stalled = await connect(echoProxy.ports.inbound!);
    stalled.write(Buffer.from([0x16, 0x03, 0x01])); // a TLS record header, and then nothing
    assert.equal(await closedWithin(stalled, 3000), '');
    assert.equal(await metric(echoProxy, 'trellis_listener_downstream_pre_cx_timeout_total', 'inbound'), 1);
    // No client certificate: the handshake fails, and the proxy's socket goes with it.
    const failed = tls.connect({
      port: echoProxy.ports.inbound!,
      host: '127.0.0.1',
      rejectUnauthorized: false,
    });
    failed.on('error', () => {});
    await until(
      'the failed handshake released',
      async () =>
        failed.destroyed &&
        (await metric(echoProxy, 'trellis_listener_downstream_cx_active', 'inbound')) === base,
      3000,
      20,
    );
  });

  test('after a 400 the proxy lets go of the connection though the client never closes its side', async () => {
    const base = await metric(client, 'trellis_listener_downstream_cx_active', 'outbound');
    const s = await connect(client.ports.outbound!, { allowHalfOpen: true });
    s.write('GET / HTTP/1.1\r\nHost: echo:8080\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    const got = closedWithin(s, 3000);
    await new Promise((r) => s.once('end', r));
    await until(
      'the refused connection released',
      async () => (await metric(client, 'trellis_listener_downstream_cx_active', 'outbound')) === base,
      3000,
      20,
    );
    s.end();
    assert.match(await got, /^HTTP\/1\.1 400 .*TRL_HTTP_DUPLICATE_CONTENT_LENGTH/s);
  });

  test('past maxConnections new connections are refused and counted; open ones keep being served', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(agent);
      assert.equal(first.status, 200);
      // Four more hold the listener with heads that never end (the sniff is past, the 60 s head
      // timeout is far): the listener is at its limit of five.
      const slow = await Promise.all(
        [1, 2, 3, 4].map(async () => {
          const s = await connect(client.ports.outbound!);
          s.write('GET / HTTP/1.1\r\n');
          return s;
        }),
      );
      await until(
        'five connections open',
        async () => (await metric(client, 'trellis_listener_downstream_cx_active', 'outbound')) === 5,
        3000,
        20,
      );
      const overflowBefore = await metric(
        client,
        'trellis_listener_downstream_cx_overflow_total',
        'outbound',
      );
      warnings.length = 0;
      const extra = await Promise.all([1, 2, 3].map(() => connect(client.ports.outbound!)));
      for (const s of extra) s.write('GET /hello HTTP/1.1\r\nHost: echo:8080\r\n\r\n');
      const answers = await Promise.all(extra.map((s) => closedWithin(s, 3000)));
      assert.deepEqual(answers, ['', '', ''], 'refused at accept, never served');
      assert.equal(
        await metric(client, 'trellis_listener_downstream_cx_overflow_total', 'outbound'),
        overflowBefore + 3,
      );
      const overflowLogs = warnings.filter((w) => w.msg === 'listener overflow: connections refused');
      assert.equal(overflowLogs.length, 1, 'logged once, not per connection');
      assert.equal(overflowLogs[0].fields?.listener, 'outbound');
      const again = await get(agent);
      assert.deepEqual([again.status, again.reused], [200, true], 'the open connection is still served');
      for (const s of slow) s.destroy();
      await until(
        'the slow connections gone',
        async () => (await metric(client, 'trellis_listener_downstream_cx_active', 'outbound')) === 1,
        3000,
        20,
      );
      assert.equal((await get(false)).status, 200, 'a new connection is served again');
    } finally {
      agent.destroy();
    }
  });

  test('HTTP/2 is held to the HTTP/1.1 head limits, and streams per connection are bounded', async () => {
    const session = http2.connect(`http://127.0.0.1:${client.ports.outbound}`);
    try {
      await new Promise((r) => session.once('remoteSettings', r));
      const many: http2.OutgoingHttpHeaders = {};
      // The proxy adds a few fields of its own for the next hop, which has the same limit.
      for (let i = 0; i < 90; i++) many[`x-h${i}`] = 'v';
      assert.equal(((await h2request(session, many)) as { status: number }).status, 200, '90 fields pass');
      for (let i = 90; i < 101; i++) many[`x-h${i}`] = 'v';
      assert.match(
        ((await h2request(session, many)) as { error?: string }).error ?? '',
        /ENHANCE_YOUR_CALM/,
        '101 fields are refused',
      );
      assert.match(
        ((await h2request(session, { 'x-big': 'a'.repeat(61 * 1024) })) as { error?: string }).error ?? '',
        /ENHANCE_YOUR_CALM/,
        'a head over 60 KiB is refused',
      );

      assert.equal(session.remoteSettings.maxConcurrentStreams, 3);
      const replies = [1, 2, 3, 4, 5].map(() => h2request(session, { ':path': '/hold' }));
      await until('three streams held at the app', async () => held.now === 3, 3000, 20);
      // Give a fourth stream the chance to arrive, were it allowed to.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(held.now, 3);
      let done = false;
      const all = Promise.all(replies).finally(() => {
        done = true;
      });
      await until(
        'every held stream answered',
        async () => {
          release();
          return done;
        },
        5000,
        20,
      );
      for (const r of await all) assert.equal((r as { status: number }).status, 200);
      assert.equal(held.max, 3, 'never more than three streams at once');
    } finally {
      release();
      session.destroy();
    }
  });

  test('an invalid Host or :authority is refused with 400 and flag DPE, over HTTP/1.1 and HTTP/2', async () => {
    for (const host of ['echo:@evil', 'echo:8080/x', 'echo:99999', 'echo:8a', 'user@echo:8080']) {
      const s = await connect(client.ports.outbound!);
      s.write(`GET /hello HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const reply = await closedWithin(s, 3000);
      assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, host);
      assert.match(reply, /x-trellis-response-flags: DPE\r\n/, host);
      assert.match(reply, /TRL_HTTP_INVALID_HOST: Host ".*": /, host);
    }
    const session = http2.connect(`http://127.0.0.1:${client.ports.outbound}`);
    try {
      for (const authority of ['echo:99999', 'echo:8a', 'echo:', 'echo:0']) {
        const r = await h2request(session, { ':authority': authority });
        assert.deepEqual(
          'status' in r && [r.status, r.flags, /^TRL_HTTP_INVALID_HOST: :authority /.test(r.body)],
          [400, 'DPE', true],
          authority,
        );
      }
      // Userinfo and characters no authority has: nghttp2 resets the stream before the proxy sees it.
      for (const authority of ['echo:@evil', 'echo:8080/x']) {
        const r = await h2request(session, { ':authority': authority });
        assert.ok('error' in r ? /PROTOCOL_ERROR/.test(r.error) : r.status === 400, JSON.stringify(r));
      }
      const valid = await h2request(session, {});
      assert.equal('status' in valid && valid.status, 200);
    } finally {
      session.close();
    }
  });
});
