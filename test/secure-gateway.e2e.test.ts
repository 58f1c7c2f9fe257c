// HTTPS Gateway servers end to end, through a real gateway proxy: TLS terminated with certificates
// from files and from the control plane's credential store, SNI choosing between two servers (and
// so between two certificates) on one port, MUTUAL and OPTIONAL_MUTUAL client certificates,
// minProtocolVersion, HTTP/2 by ALPN, httpsRedirect, and a rotated credential served on the listener
// that is already bound.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { GatewayListener, ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { PortAllocator } from '../src/platform/ports.ts';
import { until } from './support/mesh.ts';
import { makeLeaf, makeRoot, type TestCa } from './support/pki.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

let dir: string;
let cp: RunningControlPlane;
let echo: http.Server;
let echoProxy: RunningProxy;
let gateway: RunningProxy;
const ports = { https: 0, mtls: 0, optional: 0, http: 0 };
let serverCa: TestCa;
let clientCa: TestCa;
let client: TestCa;
let stranger: TestCa;

const mesh = (files: Record<string, string>) => `
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
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, serverCertificate: ${files.aCert}, privateKey: ${files.aKey}}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: ["*.b.example.com"]
    tls: {mode: SIMPLE, credentialName: b-credential, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]}
  - port: {number: 8443, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: ${files.mCert}
      privateKey: ${files.mKey}
      caCertificates: ${files.clientCa}
      minProtocolVersion: TLSV1_3
  - port: {number: 9443, name: https-optional, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: optional-credential}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [a.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: ["*.b.example.com"]
  gateways: [edge]
  http:
  - directResponse: {status: 200, body: {string: "server b"}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: others}
spec:
  hosts: [mtls.example.com, "*"]
  gateways: [edge]
  http:
  - directResponse: {status: 200, body: {string: "routed"}}
`;

interface Seen {
  status?: number;
  body?: string;
  location?: string;
  /** CN of the certificate the gateway presented. */
  served?: string;
  alpn?: string | false;
  error?: string;
}

/** One HTTPS/1.1 request on its own connection, naming `sni` and sending it as Host too. */
function request(
  port: number,
  sni: string | undefined,
  opts: tls.ConnectionOptions & { path?: string } = {},
): Promise<Seen> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...(sni && { servername: sni }),
      ca: serverCa.pem,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
      ...opts,
    });
    let data = '';
    let served: string | undefined;
    socket.on('secureConnect', () => {
      served = socket.getPeerCertificate().subject?.CN as string | undefined;
      socket.write(
        `GET ${opts.path ?? '/'} HTTP/1.1\r\nhost: ${sni ?? 'unnamed'}\r\nconnection: close\r\n\r\n`,
      );
    });
    socket.on('data', (c: Buffer) => {
      data += c.toString();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ served, error: err.code ?? err.message }));
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d+)/.exec(data);
      if (!m) return resolve({ served, error: 'closed without a response' });
      resolve({ status: Number(m[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4), served });
    });
  });
}

function refused(s: Seen): void {
  assert.equal(s.status, undefined, `expected the connection to be refused, got ${s.status} ${s.body}`);
  assert.ok(s.error, 'the client saw an error');
}

async function writeCredential(name: string, files: Record<string, string>): Promise<void> {
  const at = path.join(dir, 'state', 'credentials', 'istio-system', name);
  await mkdir(at, { recursive: true });
  for (const [f, text] of Object.entries(files)) await writeFile(path.join(at, f), text);
}

async function file(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
}

describe('HTTPS Gateway servers', { timeout: 120_000 }, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'trellis-secure-gateway-'));
    serverCa = await makeRoot('Example Server CA');
    clientCa = await makeRoot('Example Client CA');
    const a = await makeLeaf(serverCa, 'a.example.com', { dns: ['a.example.com'] });
    const b = await makeLeaf(serverCa, 'b.example.com', { dns: ['*.b.example.com'] });
    const m = await makeLeaf(serverCa, 'mtls.example.com', { dns: ['mtls.example.com'] });
    const o = await makeLeaf(serverCa, 'optional.example.com', { dns: ['optional.example.com'] });
    client = await makeLeaf(clientCa, 'trusted-client', { client: true });
    stranger = await makeLeaf(await makeRoot('Some Other CA'), 'stranger', { client: true });
    await writeCredential('b-credential', { 'tls.crt': b.pem, 'tls.key': b.keyPem });
    await writeCredential('optional-credential', {
      'tls.crt': o.pem,
      'tls.key': o.keyPem,
      'ca.crt': clientCa.pem,
    });
    const files = {
      aCert: await file('a.crt', a.pem),
      aKey: await file('a.key', a.keyPem),
      mCert: await file('m.crt', m.pem),
      mKey: await file('m.key', m.keyPem),
      clientCa: await file('client-ca.crt', clientCa.pem),
    };
    cp = await startControlPlane({
      stateDir: path.join(dir, 'state'),
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
      body: JSON.stringify({ sources: [{ file: 'gateway.yaml', text: mesh(files) }] }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.deepEqual((JSON.parse(text) as { warnings: unknown[] }).warnings, [], 'all of it is enforced');
    echo = http.createServer((req, res) => res.end(`echo ${req.headers.host} ${req.httpVersion}`));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoProxy = await meshProxy(
      cp.info,
      {
        id: 'echo-0',
        role: 'sidecar',
        workload: 'echo',
        namespace: 'default',
        serviceAccount: 'echo',
        labels: { app: 'echo' },
        ports: [{ name: 'http', port: 8080 }],
      },
      { appPort: (echo.address() as AddressInfo).port, log: SILENT },
    );
    const alloc = new PortAllocator();
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await alloc.next();
    gateway = await meshProxy(
      cp.info,
      {
        id: 'edge-0',
        role: 'gateway',
        workload: 'edge',
        namespace: 'istio-system',
        serviceAccount: 'edge',
        labels: { istio: 'edge' },
        ports: [],
        gatewayPorts: { '443': ports.https, '8443': ports.mtls, '9443': ports.optional, '80': ports.http },
      },
      { log: SILENT },
    );
    await until(
      'the gateway to serve a.example.com',
      async () => (await request(ports.https, 'a.example.com')).status === 200,
    );
  });

  after(async () => {
    await gateway?.close();
    await echoProxy?.close();
    await cp?.close();
    echo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('SNI picks the server, and with it the certificate and the route table', async () => {
    const a = await request(ports.https, 'a.example.com');
    assert.equal(a.served, 'a.example.com');
    assert.equal(a.status, 200);
    assert.equal(a.body, 'echo a.example.com 1.1');
    // A wildcard host of the second server, its certificate from the credential store.
    const b = await request(ports.https, 'www.b.example.com');
    assert.equal(b.served, 'b.example.com');
    assert.equal(b.body, 'server b');
    // A name no server has, and a client sending none, are refused before any certificate is shown.
    refused(await request(ports.https, 'c.example.com'));
    refused(await request(ports.https, undefined));
  });

  test('HTTP/2 by ALPN h2 on the same listener', async () => {
    const session = http2.connect(`https://127.0.0.1:${ports.https}`, {
      servername: 'a.example.com',
      ca: serverCa.pem,
      checkServerIdentity: () => undefined,
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/', ':authority': 'a.example.com' });
        let text = '';
        req.on('data', (c: Buffer) => {
          text += c.toString();
        });
        req.on('end', () => resolve(text));
        req.on('error', reject);
      });
      // The sidecar speaks HTTP/1.1 to the app: the downstream protocol shows in the ALPN.
      assert.equal(body, 'echo a.example.com 1.1');
      assert.equal((session.socket as tls.TLSSocket).alpnProtocol, 'h2');
    } finally {
      session.close();
    }
  });

  test('cipherSuites: the server offers only the listed (TLS 1.2) suite', async () => {
    const ok = await request(ports.https, 'x.b.example.com', {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256',
    });
    assert.equal(ok.status, 200);
    refused(
      await request(ports.https, 'x.b.example.com', {
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384',
      }),
    );
  });

  test('MUTUAL: a client certificate from caCertificates is required', async () => {
    const ok = await request(ports.mtls, 'mtls.example.com', { cert: client.pem, key: client.keyPem });
    assert.equal(ok.status, 200, ok.error);
    assert.equal(ok.served, 'mtls.example.com');
    refused(await request(ports.mtls, 'mtls.example.com'));
    refused(await request(ports.mtls, 'mtls.example.com', { cert: stranger.pem, key: stranger.keyPem }));
  });

  test('minProtocolVersion TLSV1_3: a TLS 1.2 client is refused', async () => {
    refused(
      await request(ports.mtls, 'mtls.example.com', {
        cert: client.pem,
        key: client.keyPem,
        maxVersion: 'TLSv1.2',
      }),
    );
  });

  test('OPTIONAL_MUTUAL: no certificate is fine, a certificate that does not verify is not', async () => {
    assert.equal((await request(ports.optional, 'optional.example.com')).status, 200);
    const ok = await request(ports.optional, 'optional.example.com', {
      cert: client.pem,
      key: client.keyPem,
    });
    assert.equal(ok.status, 200);
    refused(
      await request(ports.optional, 'optional.example.com', { cert: stranger.pem, key: stranger.keyPem }),
    );
  });

  test('httpsRedirect: plain HTTP gets a 301 to https', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http
        .get(
          { host: '127.0.0.1', port: ports.http, path: '/page?x=1', headers: { host: 'a.example.com' } },
          resolve,
        )
        .on('error', reject),
    );
    res.resume();
    assert.equal(res.statusCode, 301);
    assert.equal(res.headers.location, 'https://a.example.com/page?x=1');
  });

  test('the private keys of credentials stay out of proxy-config', async () => {
    const snap = (await (
      await fetch(`${cp.info.api}/api/v1/proxy-config/edge-0`, { headers: adminHeaders(cp.info) })
    ).json()) as ProxySnapshot;
    const listener = snap.listeners.find((l) => l.name === `0.0.0.0_443`) as GatewayListener;
    const b = listener.tls?.find((t) => t.serverNames.includes('*.b.example.com'));
    assert.equal(b?.credentials?.[0].privateKey, '<redacted>');
    assert.match(b?.credentials?.[0].certificateChain ?? '', /BEGIN CERTIFICATE/);
  });

  test('a rotated credential is served on the bound listener; open connections carry on', async () => {
    // A connection opened before the rotation stays up, on the certificate it shook hands with.
    const kept = await KeptConnection.open(ports.https, 'www.b.example.com');
    assert.equal(await kept.get(), 200);
    assert.equal(kept.served, 'b.example.com');
    const rotated = await makeLeaf(serverCa, 'b.example.com rotated', { dns: ['*.b.example.com'] });
    await writeCredential('b-credential', { 'tls.crt': rotated.pem, 'tls.key': rotated.keyPem });
    await until('the rotated certificate to be served', async () => {
      const s = await request(ports.https, 'www.b.example.com');
      return s.served === 'b.example.com rotated';
    });
    assert.equal(await kept.get(), 200);
    kept.close();
  });
});

/** One TLS connection kept open across requests, read a response head at a time. */
class KeptConnection {
  private readonly socket: tls.TLSSocket;
  private buffered = '';
  private waiting: (() => void) | undefined;
  readonly served: string;

  private constructor(socket: tls.TLSSocket) {
    this.socket = socket;
    this.served = socket.getPeerCertificate().subject?.CN as string;
    socket.on('data', (c: Buffer) => {
      this.buffered += c.toString();
      this.waiting?.();
    });
  }

  static async open(port: number, sni: string): Promise<KeptConnection> {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      ca: serverCa.pem,
      checkServerIdentity: () => undefined,
    });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return new KeptConnection(socket);
  }

  /** The status of one more request on this connection (the bodies here are short and sized). */
  async get(): Promise<number> {
    this.buffered = '';
    this.socket.write(`GET / HTTP/1.1\r\nhost: ${this.socket.servername}\r\n\r\n`);
    const closed = new Promise<never>((_, reject) =>
      this.socket.once('close', () => reject(new Error('the kept connection was closed'))),
    );
    await Promise.race([
      new Promise<void>((resolve) => {
        this.waiting = () => {
          if (/\r\n\r\n/.test(this.buffered)) resolve();
        };
        this.waiting();
      }),
      closed,
    ]);
    return Number(/^HTTP\/1\.1 (\d+)/.exec(this.buffered)?.[1]);
  }

  close(): void {
    this.socket.destroy();
  }
}
