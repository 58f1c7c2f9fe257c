// TLS origination toward upstreams outside the mesh, through a real sidecar: a ServiceEntry makes
// the host routable (STATIC endpoint on loopback, MESH_EXTERNAL), its DestinationRule says how the
// sidecar speaks to it — plaintext, SIMPLE TLS with a CA file, subjectAltNames, MUTUAL with client
// certificate files, insecureSkipVerify — and servers this test runs (https.createServer with test
// CAs) accept or refuse. Refusals come back to the app as 503 UF with a rule saying why.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import type { ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { x509 } from '../src/lib/x509.ts';
import { until } from './support/mesh.ts';
import { makeLeaf, makeRoot } from './support/pki.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

const HOST = 'api.example.com';
let cp: RunningControlPlane;
let client: RunningProxy;
let dir: string;
const servers: http.Server[] = [];
const ports = { plain: 0, tls: 0, mtls: 0 };
const files: Record<
  'ca' | 'otherCa' | 'cert' | 'key' | 'strangerCert' | 'strangerKey' | 'revoked' | 'unrelatedCrl',
  string
> = {
  ca: '',
  otherCa: '',
  cert: '',
  key: '',
  strangerCert: '',
  strangerKey: '',
  revoked: '',
  unrelatedCrl: '',
};
let revision = 0;

/** What the server saw: the Host header, the SNI, the client certificate's CN. */
const answer: http.RequestListener = (req, res) => {
  const socket = req.socket as TLSSocket;
  const peer = socket.getPeerCertificate?.();
  res.end(`${req.headers.host} sni=${socket.servername || '-'} client=${peer?.subject?.CN ?? '-'}`);
};

async function listen(server: http.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function apply(yaml: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'test.yaml', text: yaml }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** The ServiceEntry for HOST on port 80, its endpoint at `port`, and a DestinationRule with `tls`. */
async function upstream(port: number, tls: string): Promise<void> {
  // A connect timeout of its own marks this revision: the wait ends when the client runs exactly it.
  const mark = 2000 + ++revision;
  await apply(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [${HOST}]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${port}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: ${HOST}
  trafficPolicy:
    connectionPool: {http: {idleTimeout: 30s}, tcp: {connectTimeout: ${mark}ms}}
    tls: ${tls}
`);
  await until('the client to run the change', async () => {
    const s: ProxySnapshot | undefined = client.current();
    const c = s?.clusters.find((x) => x.name === `outbound|80||${HOST}`);
    const vh = s?.routeTables[0].virtualHosts.find((v) => v.name === `${HOST}:80`);
    return c?.connectionPool?.connectTimeoutMs === mark && vh !== undefined;
  });
}

interface Reply {
  status: number;
  flags?: string;
  rule?: string;
  body: string;
}

/** `http://api.example.com/` from the app, through its sidecar's outbound listener. */
function get(): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: client.ports.outbound, path: `http://${HOST}/`, agent: false },
      (res) => {
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
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function refused(r: Reply, why: RegExp): void {
  assert.equal(r.status, 503, `${r.body}: ${r.rule}`);
  // The default retry policy retries connect failures: Envoy then reports UF,URX.
  assert.match(r.flags ?? '', /^UF(,URX)?$/);
  assert.match(r.rule ?? '', why);
}

describe('DestinationRule tls toward a ServiceEntry host outside the mesh', { timeout: 120_000 }, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'trellis-upstream-tls-'));
    const ca = await makeRoot('Example External CA');
    const other = await makeRoot('Some Other CA');
    const server = await makeLeaf(ca, HOST, { dns: [HOST] });
    const clientCert = await makeLeaf(ca, 'trellis-client', { client: true });
    const stranger = await makeLeaf(other, 'stranger', { client: true });
    const write = async (name: string, text: string) => {
      const p = path.join(dir, name);
      await writeFile(p, text);
      return p;
    };
    files.ca = await write('ca.pem', ca.pem);
    // CRLs of the external CA: one revoking the server's certificate, one revoking another.
    const crl = async (serialNumber: string) =>
      (
        await x509.X509CrlGenerator.create({
          issuer: ca.cert.subjectName,
          thisUpdate: new Date(Date.now() - 60_000),
          nextUpdate: new Date(Date.now() + 86_400_000),
          entries: [{ serialNumber, revocationDate: new Date(Date.now() - 60_000) }],
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
          signingKey: ca.keys.privateKey,
        })
      )
        .toString('pem')
        // OpenSSL reads the PEM label "X509 CRL".
        .replace(/(BEGIN|END) CRL/g, '$1 X509 CRL');
    files.revoked = await write('revoked.crl.pem', await crl(server.cert.serialNumber));
    files.unrelatedCrl = await write('unrelated.crl.pem', await crl('0badc0de'));
    files.otherCa = await write('other-ca.pem', other.pem);
    files.cert = await write('client.pem', clientCert.pem);
    files.key = await write('client-key.pem', clientCert.keyPem);
    files.strangerCert = await write('stranger.pem', stranger.pem);
    files.strangerKey = await write('stranger-key.pem', stranger.keyPem);
    ports.plain = await listen(http.createServer(answer));
    ports.tls = await listen(https.createServer({ cert: server.pem, key: server.keyPem }, answer));
    ports.mtls = await listen(
      https.createServer(
        { cert: server.pem, key: server.keyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: true },
        answer,
      ),
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
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('DISABLE: plaintext to a plain server', async () => {
    await upstream(ports.plain, '{mode: DISABLE}');
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.body, `${HOST} sni=- client=-`);
  });

  test('SIMPLE with caCertificates: TLS origination, the host as SNI and as the name checked', async () => {
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${files.ca}}`);
    const r = await get();
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, `${HOST} sni=${HOST} client=-`);
  });

  test('SIMPLE with a CA that did not sign the server: refused, UF, the rule says certificate', async () => {
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${files.otherCa}}`);
    refused(await get(), /TLS SIMPLE, SNI api\.example\.com, CA .*other-ca\.pem.*certificate/);
  });

  test('SIMPLE with subjectAltNames the server does not have: refused', async () => {
    await upstream(
      ports.tls,
      `{mode: SIMPLE, caCertificates: ${files.ca}, subjectAltNames: [billing.example.com]}`,
    );
    refused(
      await get(),
      /server certificate SANs \(DNS:api\.example\.com\) match none of subjectAltNames billing\.example\.com/,
    );
  });

  test('MUTUAL with a client certificate the server trusts: accepted, the server sees it', async () => {
    await upstream(
      ports.mtls,
      `{mode: MUTUAL, caCertificates: ${files.ca}, clientCertificate: ${files.cert}, privateKey: ${files.key}}`,
    );
    const r = await get();
    assert.equal(r.status, 200, r.rule);
    assert.equal(r.body, `${HOST} sni=${HOST} client=trellis-client`);
  });

  test('MUTUAL with a client certificate of another CA, or SIMPLE without one: refused', async () => {
    await upstream(
      ports.mtls,
      `{mode: MUTUAL, caCertificates: ${files.ca}, clientCertificate: ${files.strangerCert}, privateKey: ${files.strangerKey}}`,
    );
    const r = await get();
    refused(r, /TLS MUTUAL.*(alert|refused the client certificate)/);
    await upstream(ports.mtls, `{mode: SIMPLE, caCertificates: ${files.ca}}`);
    refused(await get(), /TLS SIMPLE.*alert certificate required/);
  });

  test("credentialName: the certificate, key and CA come from the control plane's credential store", async () => {
    // As a TLS Secret's keys, under <state-dir>/credentials/<namespace>/<name>/.
    const stored = path.join(dir, 'state', 'credentials', 'default', 'client-credential');
    await mkdir(stored, { recursive: true });
    await writeFile(path.join(stored, 'ca.crt'), await readFile(files.ca));
    await writeFile(path.join(stored, 'tls.crt'), await readFile(files.cert));
    await writeFile(path.join(stored, 'tls.key'), await readFile(files.key));
    await upstream(ports.mtls, '{mode: MUTUAL, credentialName: client-credential}');
    // The store is read a moment after its files change, and the change is pushed like a config change.
    const r = await until('the credential to reach the proxy', async () => {
      const got = await get();
      return got.status === 200 ? got : undefined;
    });
    assert.equal(r.body, `${HOST} sni=${HOST} client=trellis-client`);
    // Operators see the snapshot without the private key.
    const snap = (await (
      await fetch(`${cp.info.api}/api/v1/proxy-config/client-0`, { headers: adminHeaders(cp.info) })
    ).json()) as ProxySnapshot;
    const tls = snap.clusters.find((c) => c.name === `outbound|80||${HOST}`)?.tls;
    assert.ok(tls && 'credential' in tls && tls.credential);
    assert.equal(tls.credential.privateKey, '<redacted>');
    assert.match(tls.credential.certificateChain ?? '', /BEGIN CERTIFICATE/);

    await upstream(ports.mtls, '{mode: MUTUAL, credentialName: nowhere}');
    refused(await get(), /credential default\/nowhere has no tls\.crt and tls\.key/);
  });

  test('caCrl: a server whose certificate the CRL revokes is refused; with another CRL, accepted', async () => {
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${files.ca}, caCrl: ${files.revoked}}`);
    refused(await get(), /certificate revoked/);
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${files.ca}, caCrl: ${files.unrelatedCrl}}`);
    assert.equal((await get()).status, 200);
  });

  test('insecureSkipVerify: a server of an unknown CA is accepted without checks', async () => {
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${files.otherCa}, insecureSkipVerify: true}`);
    assert.equal((await get()).status, 200);
  });

  test('a certificate file that cannot be read: that cluster fails with UF naming the file', async () => {
    const missing = path.join(dir, 'missing-ca.pem');
    await upstream(ports.tls, `{mode: SIMPLE, caCertificates: ${missing}}`);
    refused(await get(), /cannot read caCertificates .*missing-ca\.pem: ENOENT/);
  });
});
