// TCP through real proxies: a client sidecar whose app opens CONNECT tunnels (its explicit proxy), and
// backends behind their own sidecars, mTLS between them. An echo service and a Redis-like line
// protocol, Istio's four istio_tcp_* metrics with exact byte counts on both sides, tcp routes weighted
// across subsets, connectionPool.tcp limits, and AuthorizationPolicy on a TCP port (Istio's rules for
// HTTP-only fields on TCP).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { type RunningProxy, startProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { until } from './support/mesh.ts';
import { makeLeaf, makeRoot, type TestCa } from './support/pki.ts';
import { adminHeaders, platformInstance } from './support/platform.ts';
import { type App, ask, connectVia, echoApp, kvApp, readAll } from './support/tcp-apps.ts';

let cp: RunningControlPlane;
let client: RunningProxy;
const apps = new Map<string, App>();
const proxies = new Map<string, RunningProxy>();
/** What the sidecars logged, for the rules that closed connections. */
const logged: { msg: string; fields: Record<string, unknown> }[] = [];
const log = {
  ...SILENT,
  info: (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, fields: fields ?? {} }),
};

/** A sidecar for `app` on workload port `port`, without an HTTP readiness probe (the app is not HTTP). */
async function sidecar(
  name: string,
  labels: Record<string, string>,
  serviceAccount: string,
  ports: { name: string; port: number; app?: App }[],
): Promise<RunningProxy> {
  const node = {
    id: `${name}-0`,
    role: 'sidecar' as const,
    workload: name,
    namespace: 'default',
    serviceAccount,
    labels,
    address: '127.0.0.1',
    ports: ports.map((p) => ({ name: p.name, port: p.port })),
  };
  const { token, inboundPort } = await platformInstance(cp.info, node);
  const proxy = await startProxy({
    node: { ...node, healthy: true },
    trustDomain: 'cluster.local',
    controlPlane: cp.info.xds,
    rootCertPem: readFileSync(cp.info.rootCert, 'utf8'),
    token,
    bindHost: '127.0.0.1',
    outboundPort: 0,
    inboundPort,
    adminPort: 0,
    appPorts: new Map(ports.filter((p) => p.app).map((p) => [p.port, p.app!.port])),
    accessLog: false,
    log,
  });
  proxies.set(name, proxy);
  return proxy;
}

async function apply(yaml: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'test.yaml', text: yaml }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

async function remove(kind: string, name: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/resources/${kind}/default/${name}`, {
    method: 'DELETE',
    headers: adminHeaders(cp.info),
  });
  assert.ok(res.status === 200 || res.status === 404, await res.text());
}

async function waitFor(
  proxy: RunningProxy,
  what: string,
  ready: (s: ProxySnapshot) => boolean,
): Promise<void> {
  await until(what, async () => {
    const s = proxy.current();
    return s !== undefined && ready(s);
  });
}

/** A proxy's metric, summed over the series whose labels include `labels`. */
async function stat(proxy: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.ports.admin}/stats/prometheus`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

const ECHO = 'echo.default.svc.cluster.local';
/** The CA of the TLS apps' own certificates (not the mesh's): the client app trusts it, the mesh never sees inside. */
let appCa: TestCa;

/** A TLS server app that greets each client with its name and the SNI it was asked for. */
async function tlsApp(name: string, dns: string[]): Promise<App> {
  const leaf = await makeLeaf(appCa, name, { dns });
  const server = tls.createServer({ cert: leaf.pem, key: leaf.keyPem }, (s) => {
    s.on('error', () => s.destroy());
    s.end(`${name} ${(s as tls.TLSSocket & { servername?: string }).servername ?? '-'}\n`);
  });
  const app = { server: server as unknown as net.Server, port: 0, accepted: 0 };
  server.on('secureConnection', () => app.accepted++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  app.port = (server.address() as net.AddressInfo).port;
  return app;
}

/** The app's own TLS through its sidecar: CONNECT, then a handshake with `servername` inside the tunnel. */
async function tlsThrough(target: string, servername: string): Promise<string> {
  const raw = await tunnel(target);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket: raw, servername, ca: appCa.pem });
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString();
    });
    s.on('error', reject);
    s.on('close', () => resolve(text.trim()));
    // The tunnel socket is half-open: once the server is done, so is this client.
    s.on('end', () => s.end());
  });
}
const tunnel = (target: string) => connectVia(client.ports.outbound!, target);

/** One connection's round trip: `data` out, the client half-closes, everything the echo sent back. */
async function roundTrip(target: string, data: Buffer): Promise<{ data: Buffer; ended: boolean }> {
  const s = await tunnel(target);
  const got = readAll(s);
  s.end(data);
  return got;
}

describe('TCP through real proxies', { timeout: 180_000 }, () => {
  before(async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-tcp-'));
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
    await apply(`apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: tcp-echo, port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: kv}
spec:
  selector: {app: kv}
  ports: [{name: redis, port: 6379, targetPort: 6379}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`);
    appCa = await makeRoot('apps');
    await apply(`apiVersion: v1
kind: Service
metadata: {name: secure}
spec:
  selector: {app: secure}
  ports: [{name: tls, port: 8443, targetPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure}
spec:
  host: secure
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`);
    for (const v of ['v1', 'v2']) {
      const app = await tlsApp(`secure-${v}`, ['a.example', 'b.example', 'c.example']);
      apps.set(`secure-${v}`, app);
      await sidecar(`secure-${v}`, { app: 'secure', version: v }, 'secure', [
        { name: 'tls', port: 8443, app },
      ]);
    }
    const leaf = await makeLeaf(appCa, 'web', { dns: ['web.default.svc.cluster.local', 'web'] });
    const web = https.createServer({ cert: leaf.pem, key: leaf.keyPem }, (req, res) => {
      res.end(`web saw ${req.method} ${req.url} for ${req.headers.host}`);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const webApp = {
      server: web as unknown as net.Server,
      port: (web.address() as net.AddressInfo).port,
      accepted: 0,
    };
    apps.set('web', webApp);
    await sidecar('web', { app: 'web' }, 'web', [{ name: 'https', port: 8443, app: webApp }]);
    for (const v of ['v1', 'v2']) {
      const app = await echoApp();
      apps.set(`echo-${v}`, app);
      await sidecar(`echo-${v}`, { app: 'echo', version: v }, 'echo', [{ name: 'tcp', port: 9000, app }]);
    }
    const kv = await kvApp();
    apps.set('kv', kv);
    await sidecar('kv', { app: 'kv' }, 'kv', [{ name: 'redis', port: 6379, app: kv }]);
    client = await sidecar('client', { app: 'client' }, 'client', []);
    await waitFor(client, 'the echo and kv endpoints in the client snapshot', (s) => {
      const eps = s.clusters.filter((c) => c.name.startsWith('outbound|')).flatMap((c) => c.endpoints);
      return eps.length >= 6 && eps.every((e) => e.healthy);
    });
  });

  after(async () => {
    await Promise.all([...proxies.values()].map((p) => p.close()));
    for (const a of apps.values()) a.server.close();
    await cp?.close();
  });

  test('echo through two sidecars over mTLS: bytes, half-close, and the four istio_tcp_* metrics', async () => {
    const data = randomBytes(256 * 1024);
    const got = await roundTrip('echo:9000', data);
    assert.ok(got.ended, 'the echo ended its side after the client half-closed');
    assert.equal(Buffer.compare(got.data, data), 0, 'every byte came back, in order');

    const src = { reporter: 'source', destination_service: ECHO, request_protocol: 'tcp' };
    await until('the client to count the closed connection', async () =>
      (await stat(client, 'istio_tcp_connections_closed_total', src)) === 1 ? true : undefined,
    );
    assert.equal(await stat(client, 'istio_tcp_connections_opened_total', src), 1);
    assert.equal(await stat(client, 'istio_tcp_received_bytes_total', src), data.length);
    assert.equal(await stat(client, 'istio_tcp_sent_bytes_total', src), data.length);
    assert.equal(
      await stat(client, 'istio_tcp_sent_bytes_total', {
        ...src,
        source_workload: 'client',
        destination_workload_namespace: 'default',
        destination_principal: 'spiffe://cluster.local/ns/default/sa/echo',
        destination_app: 'echo',
        connection_security_policy: 'unknown',
        response_flags: '-',
      }),
      data.length,
    );

    // The server side learnt who called from mTLS and the peer frame.
    const dst = {
      reporter: 'destination',
      destination_service: ECHO,
      source_workload: 'client',
      source_app: 'client',
      source_principal: 'spiffe://cluster.local/ns/default/sa/client',
      connection_security_policy: 'mutual_tls',
      response_flags: '-',
    };
    const served = [...proxies.entries()].filter(([n]) => n.startsWith('echo-'));
    await until('the echo sidecar to count the closed connection', async () => {
      let closed = 0;
      for (const [, p] of served) closed += await stat(p, 'istio_tcp_connections_closed_total', dst);
      return closed === 1 ? true : undefined;
    });
    let received = 0;
    let sent = 0;
    let opened = 0;
    for (const [, p] of served) {
      received += await stat(p, 'istio_tcp_received_bytes_total', dst);
      sent += await stat(p, 'istio_tcp_sent_bytes_total', dst);
      opened += await stat(p, 'istio_tcp_connections_opened_total', dst);
    }
    assert.deepEqual({ received, sent, opened }, { received: data.length, sent: data.length, opened: 1 });
  });

  test('a Redis-like line protocol: requests and answers on one long connection', async () => {
    const s = await tunnel('kv.default.svc.cluster.local:6379');
    assert.equal(await ask(s, 'PING'), '+PONG');
    assert.equal(await ask(s, 'GET user:1'), '$-1');
    assert.equal(await ask(s, 'SET user:1 jason'), '+OK');
    assert.equal(await ask(s, 'GET user:1'), '$5\r\njason');
    s.destroy();
    // The short name works in the client's namespace, as for HTTP.
    const t = await tunnel('kv:6379');
    assert.equal(await ask(t, 'GET user:1'), '$5\r\njason');
    t.destroy();
  });

  test('tcp routes: 80/20 across two subsets over 200 connections', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - match: [{port: 9000}]
    route:
    - {destination: {host: echo, subset: v1}, weight: 80}
    - {destination: {host: echo, subset: v2}, weight: 20}
`);
    await waitFor(client, 'the weighted tcp route', (s) =>
      s.routeTables.some((t) => t.virtualHosts.some((v) => v.l4?.tcp[0]?.clusters.length === 2)),
    );
    const v1 = apps.get('echo-v1')!;
    const v2 = apps.get('echo-v2')!;
    const [a1, a2] = [v1.accepted, v2.accepted];
    const N = 200;
    for (let i = 0; i < N; i += 20) {
      const batch = Array.from({ length: 20 }, () => roundTrip('echo:9000', Buffer.from('hi')));
      for (const r of await Promise.all(batch)) assert.equal(r.data.toString(), 'hi');
    }
    const n1 = v1.accepted - a1;
    const n2 = v2.accepted - a2;
    assert.equal(n1 + n2, N);
    // Binomial(200, 0.8): mean 160, sd 5.7; ±30 is over five sd.
    assert.ok(n1 >= 130 && n1 <= 190, `v1 got ${n1} of ${N}`);
    await remove('virtualservices', 'echo');
  });

  test('connectionPool.tcp.maxConnections: past the limit a connection is closed with UO', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: kv}
spec:
  host: kv
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, idleTimeout: 300ms}
`);
    await waitFor(client, 'the kv connection pool', (s) =>
      s.clusters.some((c) => c.name.includes('|kv.') && c.connectionPool?.maxConnections === 1),
    );
    const first = await tunnel('kv:6379');
    assert.equal(await ask(first, 'PING'), '+PONG');
    const second = await tunnel('kv:6379');
    const refused = await readAll(second);
    assert.equal(refused.data.length, 0);
    assert.ok(
      (await stat(client, 'istio_tcp_connections_closed_total', { response_flags: 'UO' })) >= 1,
      'the refused connection is counted with UO',
    );
    // idleTimeout closes the quiet first connection; then there is room again.
    await readAll(first);
    const third = await tunnel('kv:6379');
    assert.equal(await ask(third, 'PING'), '+PONG');
    third.destroy();
    await remove('destinationrules', 'kv');
  });

  test('TLS passthrough: the app does TLS itself, tls routes pick the subset by SNI', async () => {
    // No VirtualService: a TLS port is proxied as TCP to the service; the SNI reaches the app intact.
    assert.match(await tlsThrough('secure:8443', 'c.example'), /^secure-v[12] c\.example$/);
    await apply(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure, a.example, b.example]
  tls:
  - match: [{sniHosts: [a.example], port: 8443}]
    route: [{destination: {host: secure, subset: v1}}]
  - match: [{sniHosts: [b.example]}]
    route: [{destination: {host: secure, subset: v2}}]
`);
    await waitFor(client, 'the tls routes', (s) =>
      s.routeTables.some((t) => t.virtualHosts.some((v) => v.l4?.tls?.length === 2)),
    );
    for (let i = 0; i < 10; i++) {
      assert.equal(await tlsThrough('secure:8443', 'a.example'), 'secure-v1 a.example');
      assert.equal(await tlsThrough('secure.default:8443', 'b.example'), 'secure-v2 b.example');
    }
    // tls routes apply: a ClientHello none of them matches is refused (NR), as pilot builds no fallback.
    await assert.rejects(tlsThrough('secure:8443', 'c.example'));
    assert.ok((await stat(client, 'istio_tcp_connections_closed_total', { response_flags: 'NR' })) >= 1);
    const sni = {
      reporter: 'destination',
      destination_service: 'secure.default.svc.cluster.local',
      connection_security_policy: 'mutual_tls',
    };
    assert.ok((await stat(proxies.get('secure-v1')!, 'istio_tcp_connections_opened_total', sni)) >= 10);
    await remove('virtualservices', 'secure');
  });

  test("HTTPS via CONNECT, as an app's https_proxy sends it, to an https service port", async () => {
    // What an https_proxy client does: CONNECT web:443, then TLS to `web` inside the tunnel, then HTTP.
    const raw = await tunnel('web:443');
    const secured = tls.connect({ socket: raw, servername: 'web', ca: appCa.pem });
    await once(secured, 'secureConnect');
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: 'web', path: '/hello', headers: { host: 'web' }, createConnection: () => secured },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    secured.destroy();
    assert.equal(body, 'web saw GET /hello for web');
  });

  describe('AuthorizationPolicy on a TCP port', () => {
    const policy = (name: string, action: string, rules: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: echo}}
  action: ${action}
  rules:
${rules}`;

    /** Whether a connection to echo gets its bytes echoed (allowed) or is closed unanswered (denied). */
    async function allowed(): Promise<boolean> {
      const r = await roundTrip('echo:9000', Buffer.from('ping'));
      return r.data.toString() === 'ping';
    }

    /** Denials counted by the echo sidecars: by a policy's name, or `ALLOW` for no ALLOW rule matching. */
    async function denials(name: string): Promise<number> {
      const labels: Record<string, string> =
        name === 'ALLOW' ? { action: 'ALLOW' } : { policy: `default/${name}` };
      let n = 0;
      for (const [k, p] of proxies)
        if (k.startsWith('echo-')) n += await stat(p, 'trellis_authorization_denied_total', labels);
      return n;
    }

    const has = (s: ProxySnapshot, name: string) =>
      s.listeners.some(
        (l) =>
          l.type === 'inbound' &&
          [...(l.authorization?.allow ?? []), ...(l.authorization?.deny ?? [])].some(
            (x) => x.name === `default/${name}`,
          ),
      );

    /** Applies a policy, or with no yaml removes it, and waits until both echo sidecars run that. */
    async function enforce(yaml: string | undefined, name: string): Promise<void> {
      if (yaml) await apply(yaml);
      else await remove('authorizationpolicies', name);
      for (const [k, p] of proxies)
        if (k.startsWith('echo-')) await waitFor(p, `${name} on ${k}`, (s) => has(s, name) === !!yaml);
    }

    test('ALLOW on principals and ports works on TCP', async () => {
      await enforce(
        policy(
          'allow-client',
          'ALLOW',
          `  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
    to: [{operation: {ports: ["9000"]}}]
`,
        ),
        'allow-client',
      );
      assert.ok(await allowed());
      await enforce(undefined, 'allow-client');
    });

    test('an ALLOW rule with HTTP-only fields matches nothing on TCP: the connection is denied', async () => {
      await enforce(
        policy('allow-get', 'ALLOW', `  - to: [{operation: {methods: [GET], ports: ["9000"]}}]\n`),
        'allow-get',
      );
      const before = await denials('ALLOW');
      assert.equal(await allowed(), false);
      await until('the denial counted', async () => (await denials('ALLOW')) > before);
      const closed = logged.filter((l) => l.msg === 'proxy closed connection' && l.fields.flags === 'RBAC');
      assert.match(
        String(closed.at(-1)?.fields.rule),
        /no ALLOW policy matched \(AuthorizationPolicy default\/allow-get\)/,
      );
      assert.ok(
        (await stat(proxies.get('echo-v1')!, 'istio_tcp_connections_closed_total', {
          response_flags: 'RBAC',
        })) +
          (await stat(proxies.get('echo-v2')!, 'istio_tcp_connections_closed_total', {
            response_flags: 'RBAC',
          })) >=
          1,
      );
      await enforce(undefined, 'allow-get');
    });

    test('a DENY rule with only HTTP-only fields denies every TCP connection (wider, fail closed)', async () => {
      await enforce(
        policy('deny-post', 'DENY', `  - to: [{operation: {methods: [POST], paths: [/admin]}}]\n`),
        'deny-post',
      );
      assert.equal(await allowed(), false);
      await until('the denial counted', async () => (await denials('deny-post')) >= 1);
      await enforce(undefined, 'deny-post');
    });

    test('a DENY rule keeps its TCP conditions: another principal is not denied', async () => {
      await enforce(
        policy(
          'deny-other',
          'DENY',
          `  - from: [{source: {principals: [cluster.local/ns/default/sa/someone-else], requestPrincipals: ["*"]}}]\n`,
        ),
        'deny-other',
      );
      assert.ok(
        await allowed(),
        JSON.stringify(logged.filter((l) => l.msg === 'proxy closed connection').at(-1)),
      );
      await enforce(undefined, 'deny-other');
      await enforce(
        policy(
          'deny-client',
          'DENY',
          `  - from: [{source: {namespaces: [default]}}]
    when: [{key: "request.headers[x-user]", values: [jason]}]
`,
        ),
        'deny-client',
      );
      assert.equal(await allowed(), false);
      await enforce(undefined, 'deny-client');
    });
  });
});
