// Egress through a real sidecar, toward HTTP and HTTPS servers this test runs on loopback:
// meshConfig.outboundTrafficPolicy (REGISTRY_ONLY refuses an unlisted host with 502 and the
// BlackHoleCluster label, ALLOW_ANY passes it through with the PassthroughCluster label), a
// ServiceEntry making a host reachable with each resolution (STATIC, DNS, DNS_ROUND_ROBIN, NONE),
// Istio's egress-rule-google-apis pattern (port 80 routed to 443, TLS originated by the
// DestinationRule), and Istio's egress gateway pattern: sidecar → egress gateway (mTLS) → server,
// with an AuthorizationPolicy at the gateway that lets only one sidecar's identity out.
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import type { ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { until } from './support/mesh.ts';
import { meshConfigMap } from './support/mesh-config-map.ts';
import { makeLeaf, makeRoot } from './support/pki.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

let cp: RunningControlPlane;
let client: RunningProxy;
let intruder: RunningProxy | undefined;
let gateway: RunningProxy | undefined;
let dir: string;
let caFile = '';
const servers: http.Server[] = [];
const ports = { plain: 0, tls: 0, gateway: 0 };
/** What `localhost` resolves to here: the DNS clusters' expected endpoints. */
let localhost: string[] = [];

/** What the server saw: the Host header, the SNI, and the path. */
const answer: http.RequestListener = (req, res) => {
  const sni = (req.socket as TLSSocket).servername || '-';
  res.end(`${req.headers.host} sni=${sni} ${req.url}`);
};

/** One server per address on one port, so a name resolving to several answers on each. */
async function listen(make: () => http.Server, addresses: string[]): Promise<number> {
  let port = 0;
  for (const address of addresses) {
    const server = make();
    servers.push(server);
    await new Promise<void>((r) => server.listen(port, address, r));
    port = (server.address() as AddressInfo).port;
  }
  return port;
}

async function apply(yaml: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'egress.yaml', text: yaml }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

async function remove(kind: string, name: string, namespace = 'default'): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/resources/${kind}/${namespace}/${name}`, {
    method: 'DELETE',
    headers: adminHeaders(cp.info),
  });
  assert.ok(res.status === 200 || res.status === 404, await res.text());
}

const policy = (mode: string) => apply(meshConfigMap(`outboundTrafficPolicy:\n  mode: ${mode}`));

/** Until the client runs a snapshot `ready` accepts. */
const running = (what: string, ready: (s: ProxySnapshot) => boolean, proxy = client) =>
  until(what, async () => {
    const s = proxy.current();
    if (s !== undefined && ready(s)) return true;
    const status = (await (
      await fetch(`${cp.info.api}/api/v1/proxy-status`, { headers: adminHeaders(cp.info) })
    ).json()) as { proxies: { nack?: { reason: string } }[] };
    const nack = status.proxies.find((p) => p.nack)?.nack;
    if (nack) throw new Error(`NACK: ${nack.reason}`);
    return false;
  });

const vhost = (s: ProxySnapshot, name: string) => s.routeTables[0]?.virtualHosts.find((v) => v.name === name);

interface Reply {
  status: number;
  flags?: string;
  rule?: string;
  body: string;
}

/** `url` from the app, through its sidecar's outbound listener (absolute-form, as HTTP_PROXY sends it). */
function get(
  url: string,
  via = client.ports.outbound,
  headers: http.OutgoingHttpHeaders = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: via, path: url, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          flags: res.headers['x-trellis-response-flags'] as string | undefined,
          rule: res.headers['x-trellis-rule'] as string | undefined,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function metrics(proxy: RunningProxy): Promise<string> {
  return (await fetch(`http://127.0.0.1:${proxy.ports.admin}/stats/prometheus`)).text();
}

describe('egress: ServiceEntry, outboundTrafficPolicy and the egress gateway', { timeout: 120_000 }, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'trellis-egress-'));
    localhost = [
      ...new Set((await lookup('localhost', { all: true, order: 'verbatim' })).map((a) => a.address)),
    ];
    const ca = await makeRoot('Egress Test CA');
    const cert = await makeLeaf(ca, 'secure.example.com', { dns: ['secure.example.com'] });
    caFile = path.join(dir, 'ca.pem');
    await writeFile(caFile, ca.pem);
    ports.plain = await listen(() => http.createServer(answer), localhost);
    ports.tls = await listen(
      () => https.createServer({ cert: cert.pem, key: cert.keyPem }, answer),
      localhost,
    );
    cp = await startControlPlane({
      stateDir: path.join(dir, 'state'),
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log: SILENT,
    });
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
  });

  after(async () => {
    await client?.close();
    await intruder?.close();
    await gateway?.close();
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('REGISTRY_ONLY (the default): an unlisted host gets 502 NR, counted as BlackHoleCluster', async () => {
    await running('the first snapshot', (s) => vhost(s, 'block_all') !== undefined);
    const r = await get(`http://127.0.0.1:${ports.plain}/blocked`);
    assert.equal(r.status, 502, r.body);
    assert.equal(r.flags, 'NR');
    assert.match(r.rule ?? '', /REGISTRY_ONLY \(BlackHoleCluster\)/);
    assert.match(
      await metrics(client),
      /istio_requests_total\{reporter="source",[^}]*destination_service="BlackHoleCluster",destination_service_name="BlackHoleCluster",[^}]*response_code="502",[^}]*response_flags="NR"[^}]*\} 1/,
    );
  });

  test('ALLOW_ANY: the request goes to the host it names, counted as PassthroughCluster', async () => {
    await policy('ALLOW_ANY');
    await running('ALLOW_ANY', (s) => vhost(s, 'allow_any') !== undefined);
    const r = await get(`http://localhost:${ports.plain}/passed`);
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, `localhost:${ports.plain} sni=- /passed`);
    assert.match(
      await metrics(client),
      /istio_requests_total\{reporter="source",[^}]*destination_service="localhost",destination_service_name="PassthroughCluster",[^}]*response_code="200"[^}]*\} 1/,
    );
    await policy('REGISTRY_ONLY');
    await running('REGISTRY_ONLY again', (s) => vhost(s, 'block_all') !== undefined);
    assert.equal((await get(`http://localhost:${ports.plain}/passed`)).status, 502);
  });

  test('a STATIC ServiceEntry makes its host reachable: endpoint address, targetPort', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  addresses: [192.0.2.10]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${ports.plain}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, locality: us-east/a}]
`);
    await running('the entry', (s) => vhost(s, 'api.example.com:80') !== undefined);
    const r = await get('http://api.example.com/static');
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, 'api.example.com sni=- /static');
    // Its single address names it too.
    assert.equal((await get('http://192.0.2.10/by-address')).body, '192.0.2.10 sni=- /by-address');
    // Another host is still refused.
    assert.equal((await get('http://other.example.com/')).status, 502);
    await remove('ServiceEntry', 'api');
  });

  test('egress-rule-google-apis: DNS entry, port 80 routed to 443, TLS originated by the DestinationRule', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: ${ports.plain}, https: ${ports.tls}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  http:
  - match: [{port: 80}]
    route: [{destination: {host: secure.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure}
spec:
  host: secure.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, caCertificates: ${caFile}}
`);
    const c = await running('the DNS cluster, resolved', (s) =>
      s.clusters.some((x) => x.name === 'outbound|443||secure.example.com' && x.endpoints.length > 0),
    );
    assert.ok(c);
    const cluster = client.current()!.clusters.find((x) => x.name === 'outbound|443||secure.example.com')!;
    // DNS: every address of the name is an endpoint.
    assert.deepEqual(
      cluster.endpoints.map((e) => e.address),
      localhost,
    );
    const r = await get('http://secure.example.com/originated');
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, 'secure.example.com sni=secure.example.com /originated');
    for (const kind of ['ServiceEntry', 'VirtualService', 'DestinationRule']) await remove(kind, 'secure');
  });

  test('DNS_ROUND_ROBIN: the host itself resolved, one address at a time', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local}
spec:
  hosts: [localhost]
  ports: [{number: ${ports.plain}, name: http, protocol: HTTP}]
  resolution: DNS_ROUND_ROBIN
`);
    await running('the entry', (s) =>
      s.clusters.some((x) => x.name === `outbound|${ports.plain}||localhost` && x.endpoints.length === 1),
    );
    const c = client.current()!.clusters.find((x) => x.name === `outbound|${ports.plain}||localhost`)!;
    assert.deepEqual(
      c.endpoints.map((e) => e.address),
      [localhost[0]],
    );
    const r = await get(`http://localhost:${ports.plain}/round-robin`);
    assert.equal(r.status, 200, r.rule);
    await remove('ServiceEntry', 'local');
  });

  test('NONE: original destination, to the host and port the app asked for', async () => {
    await apply(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough}
spec:
  hosts: [localhost]
  ports: [{number: ${ports.plain}, name: http, protocol: HTTP}]
  resolution: NONE
`);
    await running('the entry', (s) =>
      s.clusters.some((x) => x.name === `outbound|${ports.plain}||localhost` && x.lb.type === 'PASSTHROUGH'),
    );
    const r = await get(`http://localhost:${ports.plain}/none`);
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, `localhost:${ports.plain} sni=- /none`);
    await remove('ServiceEntry', 'passthrough');
  });

  test('egress gateway: sidecar → egress gateway over mTLS → TLS originated to the server', async () => {
    // A free port for the gateway's listener, as `trellis up` gives a gateway Workload's hostPort 0.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const hostPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    ports.gateway = hostPort;
    gateway = await meshProxy(
      cp.info,
      {
        id: 'istio-egressgateway-0',
        role: 'gateway',
        workload: 'istio-egressgateway',
        namespace: 'istio-system',
        serviceAccount: 'istio-egressgateway-service-account',
        labels: { istio: 'egressgateway', app: 'istio-egressgateway' },
        ports: [{ name: 'http', port: 80 }],
        gatewayPorts: { '80': hostPort },
      },
      { log: SILENT },
    );
    const egw = 'istio-egressgateway.istio-system.svc.cluster.local';
    // Istio's "egress gateway for HTTP traffic" task, with TLS originated at the gateway.
    await apply(`apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: ${ports.plain}, https: ${ports.tls}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-secure}
spec:
  host: ${egw}
  subsets: [{name: secure}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-secure-through-egress-gateway}
spec:
  hosts: [secure.example.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: ${egw}, subset: secure, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route: [{destination: {host: secure.example.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-secure}
spec:
  host: secure.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, caCertificates: ${caFile}}
`);
    await running('the sidecar route to the gateway', (s) =>
      s.clusters.some((c) => c.name === `outbound|80|secure|${egw}` && c.endpoints.length === 1),
    );
    await running(
      'the gateway route to the server',
      (s) => s.clusters.some((c) => c.name === 'outbound|443||secure.example.com' && c.endpoints.length > 0),
      gateway,
    );
    const toGateway = client.current()!.clusters.find((c) => c.name === `outbound|80|secure|${egw}`)!;
    // Mesh mTLS to the gateway's listener, its identity checked.
    assert.deepEqual(toGateway.tls, {
      mode: 'ISTIO_MUTUAL',
      sni: `outbound_.80_.secure_.${egw}`,
      identities: ['spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account'],
    });
    assert.equal(toGateway.endpoints[0].port, hostPort);
    const r = await get('http://secure.example.com/via-gateway');
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, 'secure.example.com sni=secure.example.com /via-gateway');
    // The gateway sent it on: its own metrics count the request to the external host.
    assert.match(
      await metrics(gateway),
      /istio_requests_total\{reporter="source",source_workload="istio-egressgateway",[^}]*destination_service="secure.example.com",[^}]*response_code="200"[^}]*\} 1/,
    );
  });

  test('AuthorizationPolicy at the egress gateway: the mTLS peer is source.principal', async () => {
    assert.ok(gateway, 'the egress gateway test runs first');
    intruder = await meshProxy(
      cp.info,
      {
        id: 'intruder-0',
        role: 'sidecar',
        workload: 'intruder',
        namespace: 'default',
        serviceAccount: 'intruder',
        labels: { app: 'intruder' },
        ports: [],
      },
      { log: SILENT },
    );
    const gatewayPolicy = (name: string) => (s: ProxySnapshot) =>
      s.listeners.some(
        (l) =>
          l.type === 'gateway' &&
          [...(l.authorization?.allow ?? []), ...(l.authorization?.deny ?? [])].some(
            (p) => p.name === `istio-system/${name}`,
          ),
      );
    // Only the client's workload identity may leave through the gateway.
    await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: egress-only-client, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
`);
    await running('the gateway ALLOW policy', gatewayPolicy('egress-only-client'), gateway);
    await running(
      "the intruder's route to the gateway",
      (s) => vhost(s, 'secure.example.com:80')?.routes[0]?.origin.startsWith('VirtualService') === true,
      intruder,
    );
    const allowed = await get('http://secure.example.com/client');
    assert.equal(allowed.status, 200, allowed.rule);
    assert.equal(allowed.body, 'secure.example.com sni=secure.example.com /client');
    const denied = await get('http://secure.example.com/intruder', intruder.ports.outbound);
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'RBAC: access denied');
    assert.equal(denied.flags, 'RBAC');
    // A mesh client at the gateway learns which policy refused it, as it would from a sidecar.
    assert.equal(
      denied.rule,
      'no ALLOW policy matched (AuthorizationPolicy istio-system/egress-only-client)',
    );
    // Plaintext straight to the gateway has no principal: refused too, and told nothing (the edge).
    const outside = await get('/outside', ports.gateway, { host: 'secure.example.com' });
    assert.equal(outside.status, 403);
    assert.equal(outside.rule, undefined);

    // `namespaces` comes from the same identity: DENY the default namespace except the client.
    await remove('AuthorizationPolicy', 'egress-only-client', 'istio-system');
    await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: egress-deny-default, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - from: [{source: {namespaces: [default], notPrincipals: [cluster.local/ns/default/sa/client]}}]
`);
    await running('the gateway DENY policy', gatewayPolicy('egress-deny-default'), gateway);
    assert.equal((await get('http://secure.example.com/client')).status, 200);
    const refused = await get('http://secure.example.com/intruder', intruder.ports.outbound);
    assert.equal(refused.status, 403);
    assert.match(refused.rule ?? '', /istio-system\/egress-deny-default/);
    // Plaintext has no namespace: the DENY rule does not match it.
    assert.equal((await get('/outside', ports.gateway, { host: 'secure.example.com' })).status, 200);
    await remove('AuthorizationPolicy', 'egress-deny-default', 'istio-system');
  });
});
