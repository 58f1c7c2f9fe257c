// Root rotation end to end: a control plane, three sidecars (two with apps) and continuous sidecar →
// sidecar mTLS traffic — on keep-alive connections opened before the rotation, and on new ones: a new
// caller joins in every phase, with the certificate and bundle of that phase, and opens its own
// connections — while `trellis ca rotate` moves the mesh to a new root. Not one request may fail;
// at the end every workload presents a certificate from the new root only, and a client holding a
// certificate from the old root is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cp, mkdtemp, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { ProxyNode } from '../src/compile/snapshot.ts';
import { CertificateAuthority } from '../src/controlplane/ca/ca.ts';
import type { CaStatus } from '../src/controlplane/ca/rotation.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import { postToControlPlane } from '../src/dataplane/agent/post.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { CERTIFICATE_PATH } from '../src/push/protocol.ts';
import { CLI, until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

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
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 8080, targetPort: 8080}]
`;

const BURST = 16;
const SOAK_MS = 1500;

let stateDir: string;
let cp0: RunningControlPlane;
const apps: http.Server[] = [];
const proxies: RunningProxy[] = [];
let echo: RunningProxy;
let ratings: RunningProxy;
let productpage: RunningProxy;

async function app(name: string): Promise<number> {
  const server = http.createServer((req, res) => res.end(`${name} ${req.url}`));
  apps.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function sidecar(name: string, withApp: boolean): Promise<RunningProxy> {
  const node: Omit<ProxyNode, 'healthy' | 'address' | 'inboundPort'> = {
    id: `${name}-0`,
    role: 'sidecar',
    workload: name,
    namespace: 'default',
    serviceAccount: name,
    labels: { app: name },
    ports: withApp ? [{ name: 'http', port: 8080 }] : [],
  };
  const p = await meshProxy(cp0.info, node, { appPort: withApp ? await app(name) : undefined, log: SILENT });
  proxies.push(p);
  return p;
}

/** One request from an app through its sidecar; `agent` keeps the app's connection alive or not. */
function call(from: RunningProxy, host: string, agent: http.Agent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: from.ports.outbound,
        path: `http://${host}:8080/ping`,
        headers: { host: `${host}:8080` },
        agent,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function caStatus(): Promise<CaStatus> {
  const res = await fetch(`${cp0.info.api}/api/v1/ca`, { headers: adminHeaders(cp0.info) });
  assert.equal(res.status, 200);
  return (await res.json()) as CaStatus;
}

function cli(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [CLI, ...args, '--api', cp0.info.api, '--token-file', cp0.info.adminTokenFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`trellis ${args.join(' ')} did not finish in ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** A client certificate for productpage's identity from the CA whose files are in `dir`. */
async function clientCertFrom(dir: string): Promise<{ key: string; cert: string }> {
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  const c = await ca.issueServingCert({
    dnsNames: [],
    ipAddresses: ['127.0.0.1'],
    identity: { namespace: 'default', serviceAccount: 'productpage' },
  });
  return { key: c.keyPem, cert: c.certChainPem };
}

/**
 * Whether a sidecar's inbound listener serves a client with this certificate: an HTTP answer of any
 * status means the handshake was accepted. With TLS 1.3 the server judges the client certificate
 * after the client's handshake is done, so a refusal shows as an error or a close without an answer.
 */
function mtlsAccepted(port: number, client: { key: string; cert: string }, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ...client,
      ca,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 5000);
    s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nhost: echo:8080\r\nconnection: close\r\n\r\n'));
    s.on('data', (c: Buffer) => {
      answer += c;
      if (answer.startsWith('HTTP/1.1 ')) done(true);
    });
    s.on('error', () => done(false));
    s.on('close', () => done(answer.startsWith('HTTP/1.1 ')));
  });
}

/** The certificate chain a sidecar's inbound listener presents. */
function presented(
  port: number,
  client: { key: string; cert: string },
  ca: string,
): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { host: '127.0.0.1', port, ...client, ca, checkServerIdentity: () => undefined },
      () => {
        const certs: X509Certificate[] = [];
        let c = s.getPeerCertificate(true);
        while (c?.raw) {
          certs.push(new X509Certificate(c.raw));
          if (c.issuerCertificate === c) break;
          c = c.issuerCertificate;
        }
        s.destroy();
        resolve(certs);
      },
    );
    s.on('error', reject);
  });
}

async function inboundConnections(p: RunningProxy): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.ports.admin}/stats/prometheus`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('trellis_listener_downstream_cx_total{listener="inbound"}'));
  assert.ok(line, 'the inbound listener counts its connections');
  return Number(line.split(' ').at(-1));
}

describe('root rotation under traffic', { timeout: 180_000 }, () => {
  before(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-rotation-'));
    cp0 = await startControlPlane({
      stateDir,
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      caRotationSoakMs: SOAK_MS,
      version: 'test',
      log: SILENT,
    });
    const res = await fetch(`${cp0.info.api}/api/v1/apply`, {
      method: 'POST',
      headers: adminHeaders(cp0.info),
      body: JSON.stringify({ sources: [{ file: 'mesh.yaml', text: MESH }] }),
    });
    assert.equal(res.status, 200, await res.text());
    echo = await sidecar('echo', true);
    ratings = await sidecar('ratings', true);
    productpage = await sidecar('productpage', false);
    await until('traffic flows between every pair', async () => {
      for (const [from, to] of [
        [productpage, 'echo'],
        [productpage, 'ratings'],
        [ratings, 'echo'],
      ] as const)
        if ((await call(from, to, false)) !== 200) return false;
      return true;
    });
  });

  after(async () => {
    for (const p of proxies) await p.close();
    await cp0?.close();
    for (const a of apps) a.close();
  });

  test('trellis ca rotate moves every workload to a new root with zero failed requests', async () => {
    const oldCa = path.join(stateDir, 'old-ca-copy');
    await cp(path.join(stateDir, 'ca'), oldCa, { recursive: true });
    const before = await caStatus();
    const oldRoot = before.signingRoot.fingerprint;
    assert.equal(before.rotation, null);
    assert.deepEqual(before.certificates, [{ root: oldRoot, proxies: 3 }]);

    // Traffic, tagged with the phase it ran in.
    let phase = 'before';
    let running = true;
    const failures: string[] = [];
    const perPhase = new Map<string, number>();
    const record = (p: Promise<number>, what: string) =>
      p.then(
        (status) => {
          if (status !== 200) failures.push(`${what} in ${phase}: HTTP ${status}`);
          else perPhase.set(phase, (perPhase.get(phase) ?? 0) + 1);
        },
        (err: Error) => failures.push(`${what} in ${phase}: ${err.message}`),
      );
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const keepAlive = async (from: RunningProxy, to: string) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (running) {
        await record(call(from, to, agent), `${to} (keep-alive)`);
        await pause(2);
      }
      agent.destroy();
    };
    const bursts = async () => {
      while (running) {
        await Promise.all(
          Array.from({ length: BURST }, () => record(call(productpage, 'echo', false), 'echo (burst)')),
        );
        await pause(50);
      }
    };
    const fresh = async () => {
      while (running) {
        await record(call(productpage, 'ratings', false), 'ratings (new connection)');
        await pause(5);
      }
    };
    /** A caller that joins in this phase: its connections to both services are new ones. */
    const joiners: Promise<void>[] = [];
    const join = async (inPhase: string) => {
      const p = await sidecar(`caller-${inPhase}`, false);
      await until(
        `caller-${inPhase} is ready`,
        async () => (await call(p, 'echo', false)) === 200,
        10_000,
        20,
      );
      while (running) {
        await record(call(p, 'echo', false), `echo from caller-${inPhase}`);
        await record(call(p, 'ratings', false), `ratings from caller-${inPhase}`);
        await pause(5);
      }
    };
    const watcher = async () => {
      while (running) {
        const r = (await caStatus()).rotation;
        if (r && r.phase !== phase) {
          phase = r.phase;
          joiners.push(join(phase));
        }
        await pause(25);
      }
    };
    const loops = [
      keepAlive(productpage, 'echo'),
      keepAlive(ratings, 'echo'),
      keepAlive(productpage, 'ratings'),
      bursts(),
      fresh(),
      watcher(),
    ];
    await pause(300);
    const cxBefore = await inboundConnections(echo);

    const rotation = cli(['ca', 'rotate', '--timeout', '60s'], 90_000);
    await until('the rotation to start', async () => (await caStatus()).rotation?.phase === 'distributing');
    const second = await fetch(`${cp0.info.api}/api/v1/ca/rotate`, {
      method: 'POST',
      headers: adminHeaders(cp0.info),
      body: '{}',
    });
    assert.equal(second.status, 409);
    assert.equal(((await second.json()) as { code: string }).code, 'TRL_CA_ROTATION_IN_PROGRESS');

    const { code, out } = await rotation;
    assert.equal(code, 0, out);
    for (const p of ['distributing', 'reissuing', 'retiring', 'complete'])
      assert.match(out, new RegExp(`phase ${p}`), out);
    await pause(500);
    running = false;
    await Promise.all(loops);
    await Promise.all(joiners);
    const cxAfter = await inboundConnections(echo);

    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} requests failed`);
    for (const p of ['distributing', 'reissuing', 'retiring', 'complete'])
      assert.ok((perPhase.get(p) ?? 0) > 20, `traffic ran in phase ${p}: ${JSON.stringify([...perPhase])}`);
    assert.ok(cxAfter - cxBefore >= 4, `new mTLS connections were opened (${cxAfter - cxBefore})`);

    const after = await caStatus();
    const newRoot = after.signingRoot.fingerprint;
    assert.notEqual(newRoot, oldRoot);
    assert.equal(after.rotation?.phase, 'complete');
    assert.deepEqual(
      after.trustBundle.roots.map((r) => r.fingerprint),
      [newRoot],
    );
    assert.deepEqual(after.certificates, [{ root: newRoot, proxies: proxies.length }]);
    assert.ok(after.proxies.every((p) => p.trustBundle === 'current'));
    const bundle = await readFile(cp0.info.rootCert, 'utf8');
    assert.equal(new X509Certificate(bundle).fingerprint256, newRoot, 'trust-bundle.pem holds the new root');
    assert.equal((await stat(path.join(stateDir, 'ca', 'root-key.pem'))).mode & 0o777, 0o600);

    // Every workload presents a certificate from the new root, and from it only.
    const newCa = path.join(stateDir, 'new-ca-copy');
    await cp(path.join(stateDir, 'ca'), newCa, { recursive: true });
    const fromNew = await clientCertFrom(newCa);
    const fromOld = await clientCertFrom(oldCa);
    const oldRootCert = new X509Certificate(await readFile(path.join(oldCa, 'root-cert.pem'), 'utf8'));
    const newRootCert = new X509Certificate(bundle);
    for (const p of proxies) {
      const [leaf, ...rest] = await presented(p.ports.inbound!, fromNew, bundle);
      // Node adds the trust anchor it verified against: the new root, and nothing else above the leaf.
      assert.deepEqual(
        rest.map((c) => c.fingerprint256),
        [newRoot],
      );
      assert.ok(leaf.verify(newRootCert.publicKey), 'signed by the new root');
      assert.ok(!leaf.verify(oldRootCert.publicKey), 'not signed by the old root');
    }

    // The old root is trusted nowhere: not by sidecars, not by the control plane.
    assert.equal(
      await mtlsAccepted(echo.ports.inbound!, fromNew, bundle),
      true,
      'control: new root accepted',
    );
    for (const p of proxies)
      assert.equal(await mtlsAccepted(p.ports.inbound!, fromOld, bundle), false, 'old root refused');
    await assert.rejects(
      postToControlPlane(cp0.info.xds, bundle, CERTIFICATE_PATH, '{}', fromOld, 5000),
      /HTTP 401/,
    );
  });
});
