// The agent against a control plane played by the test over real mTLS and HTTP/2: it rebuilds a delta
// from the snapshot it runs and applies it like a whole one, and NACKs a delta it cannot rebuild.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Resource } from '../../api/resource.ts';
import { assembleSnapshot, compileParts, type SnapshotParts } from '../../compile/compile.ts';
import { buildMeshIndex } from '../../compile/mesh-index.ts';
import type { ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import { CertificateAuthority } from '../../controlplane/ca/ca.ts';
import { SILENT } from '../../lib/log.ts';
import { encodeDeltaMessage, encodeSnapshotMessage } from '../../push/encode.ts';
import {
  type ControlPlaneMessage,
  DELTA_BASE_MISMATCH,
  LineBuffer,
  type ProxyMessage,
} from '../../push/protocol.ts';
import { ProxyConfig } from '../config.ts';
import { generateKeyAndCsr } from '../identity/csr.ts';
import { Agent } from './agent.ts';
import { CredentialStore } from './credentials.ts';

const identity = 'spiffe://cluster.local/ns/default/sa/a';

const node: ProxyNode = {
  id: 'a-0.default',
  role: 'sidecar',
  workload: 'a-v1',
  namespace: 'default',
  serviceAccount: 'a',
  labels: { app: 'a' },
  address: '127.0.0.1',
  inboundPort: 15006,
  ports: [{ name: 'http', port: 9080 }],
  healthy: true,
};

const services = ['a', 'b', 'c'].map(
  (name): Resource => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  }),
);

function parts(timeout: string, extra: Resource[] = []): SnapshotParts {
  const vs: Resource = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'b', namespace: 'default' },
    spec: { hosts: ['b'], http: [{ timeout, route: [{ destination: { host: 'b' } }] }] },
  };
  const index = buildMeshIndex({
    revision: 1,
    resources: [...services, vs, ...extra],
    proxies: [node],
    mesh: { trustDomain: 'cluster.local' },
  });
  return compileParts(index, node);
}

/** What a snapshot is once it has been through JSON. */
const wire = (s: ProxySnapshot) => JSON.parse(JSON.stringify(s)) as ProxySnapshot;

let dir: string;
let server: http2.Http2SecureServer;
let agent: Agent;
const applied: ProxySnapshot[] = [];
/** The push stream the agent opened, and what it said on it. */
let stream: http2.ServerHttp2Stream;
const said: ProxyMessage[] = [];
let heard: () => void = () => {};

async function answer(): Promise<ProxyMessage> {
  const n = said.length + 1;
  const deadline = Date.now() + 5000;
  while (said.length < n) {
    assert.ok(Date.now() < deadline, 'the agent did not answer');
    await new Promise<void>((r) => {
      heard = r;
      setTimeout(r, 50);
    });
  }
  return said[n - 1];
}

function write(chunks: Uint8Array[] | ControlPlaneMessage): void {
  if (Array.isArray(chunks)) for (const c of chunks) stream.write(c);
  else stream.write(`${JSON.stringify(chunks)}\n`);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'trellis-agent-test-'));
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  const serving = await ca.issueServingCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const { keyPem, csrPem } = await generateKeyAndCsr(identity);
  const cert = await ca.signCsr(csrPem, { namespace: 'default', serviceAccount: 'a' });
  const creds = new CredentialStore();
  creds.set({
    keyPem,
    certChainPem: cert.certChainPem,
    trustBundlePem: ca.trustBundlePem(),
    identity,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  });
  server = http2.createSecureServer({
    key: serving.keyPem,
    cert: serving.certChainPem,
    ca: ca.trustBundlePem(),
    requestCert: true,
    rejectUnauthorized: true,
  });
  const connected = new Promise<void>((resolve) => {
    server.on('stream', (s) => {
      stream = s;
      s.respond({ ':status': 200 });
      const lines = new LineBuffer();
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => {
        for (const line of lines.push(chunk)) said.push(JSON.parse(line) as ProxyMessage);
        heard();
      });
      resolve();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  agent = new Agent({
    controlPlane: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    rootCertPem: ca.trustBundlePem(),
    node,
    identity,
    creds,
    // The proxy's own validation: a rebuilt snapshot gets the same as a whole one.
    async apply(snapshot) {
      ProxyConfig.build(snapshot);
      applied.push(snapshot);
    },
    log: SILENT,
  });
  agent.connect();
  await connected;
  assert.equal((await answer()).type, 'hello');
});

after(async () => {
  agent.stop();
  server.close();
  await rm(dir, { recursive: true, force: true });
});

test('the agent rebuilds a delta from the snapshot it runs, applies it, and NACKs one for another base', async () => {
  const a = parts('1s');
  write(encodeSnapshotMessage(a));
  assert.deepEqual(await answer(), { type: 'ack', version: a.version });

  const b = parts('2s');
  const delta = encodeDeltaMessage(a, b)!;
  assert.ok(delta, 'b reuses most of a');
  write(delta);
  assert.deepEqual(await answer(), { type: 'ack', version: b.version });
  assert.deepEqual(applied.at(-1), wire(assembleSnapshot(b)));
  assert.equal(agent.running?.version, b.version);

  // The agent runs b now: a delta against a is refused, and it keeps running b.
  const c = parts('3s');
  write(encodeDeltaMessage(a, c)!);
  const nack = await answer();
  assert.equal(nack.type, 'nack');
  assert.equal(nack.type === 'nack' && nack.version, c.version);
  assert.match(nack.type === 'nack' ? nack.reason : '', new RegExp(`^${DELTA_BASE_MISMATCH}`));
  assert.equal(applied.length, 2);
  assert.equal(agent.running?.version, b.version);

  // A run beyond the base's list is refused the same way.
  const { routeTables: _, clusters: __, ...own } = assembleSnapshot(c);
  write({
    type: 'delta',
    delta: {
      ...own,
      base: b.version,
      routeTables: [{ name: 'outbound', virtualHosts: [[0, 99]] }],
      clusters: [],
    },
  });
  const out = await answer();
  assert.match(out.type === 'nack' ? out.reason : '', new RegExp(`^${DELTA_BASE_MISMATCH}`));

  // A rebuilt snapshot is validated as a whole one: without its clusters, an ordinary NACK.
  write({
    type: 'delta',
    delta: {
      ...own,
      version: 'no-clusters',
      base: b.version,
      routeTables: [{ name: 'outbound', virtualHosts: [[0, 3]] }],
      clusters: [],
    },
  });
  const invalid = await answer();
  assert.equal(invalid.type, 'nack');
  assert.match(invalid.type === 'nack' ? invalid.reason : '', /refers to unknown cluster/);
  assert.equal(agent.running?.version, b.version);
});
