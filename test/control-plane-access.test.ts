// A workload obtains only its own identity, and the registry believes the platform, not the proxy: a
// real control plane, real proxies over mTLS. The attacks are the ones measured before this was built:
// the one bootstrap token minting any identity (the control plane's included), and a rogue proxy
// registering `app: reviews` and taking a share of the product page's reviews traffic.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { postToControlPlane } from '../src/dataplane/agent/post.ts';
import { generateKeyAndCsr } from '../src/dataplane/identity/csr.ts';
import { type RunningProxy, startProxy } from '../src/dataplane/proxy.ts';
import type { Logger } from '../src/lib/log.ts';
import { CERTIFICATE_PATH, type CertificateResponse, PUSH_PATH } from '../src/push/protocol.ts';
import { until } from './support/mesh.ts';
import { adminHeaders, platformInstance } from './support/platform.ts';

const logged: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
const log: Logger = {
  debug() {},
  info() {},
  warn: (msg, fields = {}) => void logged.push({ level: 'warn', msg, fields }),
  error: (msg, fields = {}) => void logged.push({ level: 'error', msg, fields }),
  child: () => log,
};

const MESH = `
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080, targetPort: 9080}]
`;

const sa = (name: string) => `spiffe://cluster.local/ns/default/sa/${name}`;

let stateDir = '';
let cp: RunningControlPlane;
let rootCertPem = '';
const apps: http.Server[] = [];
const proxies: RunningProxy[] = [];
let client: RunningProxy;
/** Bootstrap tokens the platform gave, by proxy id. */
const tokens = new Map<string, string>();

function node(
  id: string,
  app: string,
  labels: Record<string, string> = { app },
): Omit<ProxyNode, 'healthy' | 'inboundPort'> {
  return {
    id,
    role: 'sidecar',
    workload: id.replace(/-\d+\.default$/, ''),
    namespace: 'default',
    serviceAccount: `bookinfo-${app}`,
    labels,
    address: '127.0.0.1',
    ports: [{ name: 'http', port: 9080 }],
  };
}

async function app(name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  apps.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/**
 * Starts a sidecar the platform registered as `registered`; the proxy itself may claim something else
 * (what a rogue process holding that instance's token would do).
 */
async function sidecar(
  registered: Omit<ProxyNode, 'healthy' | 'inboundPort'>,
  appPort?: number,
  claimed = registered,
): Promise<RunningProxy> {
  const { token, inboundPort } = await platformInstance(cp.info, registered);
  tokens.set(registered.id, token);
  const p = await startProxy({
    node: { ...claimed, healthy: false },
    trustDomain: 'cluster.local',
    controlPlane: cp.info.xds,
    rootCertPem,
    token,
    bindHost: '127.0.0.1',
    outboundPort: 0,
    inboundPort,
    adminPort: 0,
    appPorts: new Map(appPort ? [[9080, appPort]] : []),
    readiness: appPort
      ? { port: appPort, periodMs: 200, timeoutMs: 1000, initialDelayMs: 0, failureThreshold: 1 }
      : undefined,
    accessLog: false,
    log,
  });
  proxies.push(p);
  return p;
}

/** A certificate request as a proxy makes it: a CSR for `csrIdentity`, the body asking for `ask`. */
async function requestCertificate(
  token: string | undefined,
  ask: { namespace: string; serviceAccount: string },
  csrIdentity = `spiffe://cluster.local/ns/${ask.namespace}/sa/${ask.serviceAccount}`,
): Promise<{ keyPem: string; certChain: string }> {
  const { keyPem, csrPem } = await generateKeyAndCsr(csrIdentity);
  const body = JSON.stringify({ csr: csrPem, ...ask });
  const res = await postToControlPlane(cp.info.xds, rootCertPem, CERTIFICATE_PATH, body, { token }, 5000);
  return { keyPem, certChain: (JSON.parse(res) as CertificateResponse).certChain };
}

function get(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: target, headers: { host: 'reviews:9080' }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('a control plane that lets no one in', { timeout: 60_000 }, () => {
  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-access-'));
    cp = await startControlPlane({
      stateDir,
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log,
    });
    rootCertPem = await readFile(cp.info.rootCert, 'utf8');
    const res = await fetch(`${cp.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    assert.equal(res.status, 200, await res.text());
    await sidecar(node('reviews-v1-0.default', 'reviews'), await app('real reviews'));
    client = await sidecar({ ...node('productpage-v1-0.default', 'productpage'), ports: [] });
    // The rogue: registered by the platform as ratings, claiming to be reviews.
    await sidecar(node('ratings-v1-0.default', 'ratings'), await app('rogue'), {
      ...node('ratings-v1-0.default', 'ratings'),
      labels: { app: 'reviews' },
    });
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await cp?.close();
    for (const a of apps) a.close();
  });

  test('there is no shared bootstrap token; the admin credential is 0600', () => {
    assert.equal(existsSync(path.join(stateDir, 'bootstrap-token')), false);
    assert.equal(statSync(cp.info.adminTokenFile).mode & 0o777, 0o600);
  });

  test("a proxy's token obtains its own identity, and no other: refused and logged", async () => {
    const ratings = tokens.get('ratings-v1-0.default')!;
    const own = await requestCertificate(ratings, {
      namespace: 'default',
      serviceAccount: 'bookinfo-ratings',
    });
    assert.match(own.certChain, /BEGIN CERTIFICATE/, 'the control case: its own identity is issued');

    for (const ask of [
      { namespace: 'default', serviceAccount: 'bookinfo-reviews' },
      { namespace: 'trellis-system', serviceAccount: 'trellis-control-plane' },
    ]) {
      await assert.rejects(requestCertificate(ratings, ask), /HTTP 403: .*TRL_PERMISSION_DENIED/);
      const entry = logged.find(
        (l) =>
          l.msg === 'certificate request refused' &&
          l.fields.requested === `spiffe://cluster.local/ns/${ask.namespace}/sa/${ask.serviceAccount}`,
      );
      assert.ok(entry, `the attempt on ${ask.serviceAccount} is logged`);
      assert.equal(entry.fields.proxy, 'ratings-v1-0.default');
      assert.equal(entry.fields.bound, sa('bookinfo-ratings'));
    }
    // Asking for its own identity while the CSR names another's: the CSR's SAN is checked too.
    await assert.rejects(
      requestCertificate(
        ratings,
        { namespace: 'default', serviceAccount: 'bookinfo-ratings' },
        sa('bookinfo-reviews'),
      ),
      /HTTP 400: .*TRL_CSR_REJECTED/,
    );
    await assert.rejects(
      requestCertificate(undefined, { namespace: 'default', serviceAccount: 'bookinfo-ratings' }),
      /HTTP 401: .*TRL_UNAUTHENTICATED/,
    );
    await assert.rejects(
      requestCertificate('made-up', { namespace: 'default', serviceAccount: 'bookinfo-ratings' }),
      /HTTP 401: .*TRL_UNAUTHENTICATED/,
    );
  });

  test('the push stream needs a certificate and a token bound to it', async () => {
    const ratings = tokens.get('ratings-v1-0.default')!;
    const reviews = tokens.get('reviews-v1-0.default')!;
    const cert = await requestCertificate(ratings, {
      namespace: 'default',
      serviceAccount: 'bookinfo-ratings',
    });
    const open = (token?: string) =>
      new Promise<number>((resolve, reject) => {
        const session = http2.connect(cp.info.xds, {
          ca: rootCertPem,
          key: cert.keyPem,
          cert: cert.certChain,
        });
        session.on('error', reject);
        const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': PUSH_PATH };
        if (token) headers.authorization = `Bearer ${token}`;
        const stream = session.request(headers);
        stream.on('response', (h) => {
          resolve(Number(h[':status']));
          session.destroy();
        });
        stream.on('error', reject);
      });
    assert.equal(await open(), 401, 'a certificate alone does not say which instance it is');
    assert.equal(await open(reviews), 403, "another instance's token, bound to another identity");
    assert.equal(await open(ratings), 200);
  });

  test('a proxy claiming app: reviews is refused and gets none of the reviews traffic', async () => {
    await until('the rogue hello to be refused', async () =>
      logged.some(
        (l) => l.fields.code === 'TRL_WORKLOAD_MISMATCH' && l.fields.proxy === 'ratings-v1-0.default',
      ),
    );
    const refusal = logged.find((l) => l.fields.code === 'TRL_WORKLOAD_MISMATCH')!;
    assert.deepEqual(refusal.fields.fields, ['labels']);
    await until('the client to know one healthy reviews endpoint', async () => {
      const c = client
        .current()
        ?.clusters.find((x) => x.name === 'outbound|9080||reviews.default.svc.cluster.local');
      return c?.endpoints.length === 1 && c.endpoints[0].healthy;
    });
    const registry = (await (
      await fetch(`${cp.info.api}/api/v1/registry`, { headers: adminHeaders(cp.info) })
    ).json()) as { instances: ProxyNode[] };
    assert.deepEqual(registry.instances.map((i) => i.id).sort(), [
      'productpage-v1-0.default',
      'reviews-v1-0.default',
    ]);
    const served = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const r = await get(client.ports.outbound!, 'http://reviews:9080/reviews/0');
      assert.equal(r.status, 200);
      served.set(r.body, (served.get(r.body) ?? 0) + 1);
    }
    assert.deepEqual([...served], [['real reviews', 40]]);
  });
});
