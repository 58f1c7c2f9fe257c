// ExternalPool over real sockets: plaintext and TLS servers this test runs, with its own CAs.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { makeLeaf, makeRoot } from '../../../test/support/pki.ts';
import type { Cluster } from '../../compile/snapshot.ts';
import type { Transports } from './balance.ts';
import { type UpstreamFailure, upstreamRequest } from './dispatch.ts';
import { ExternalPool, type ExternalTls, matchSubjectAltNames } from './external-pool.ts';

const servers: http.Server[] = [];
let dir: string;
let plainPort: number;
let tlsPort: number;
let mtlsPort: number;
/** The remote port of each connection the plaintext server accepted. */
const plainConnections: number[] = [];

const file = async (name: string, text: string) => {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
};

async function listen(server: http.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

const files: Record<string, string> = {};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trellis-external-pool-'));
  const ca = await makeRoot('External CA');
  const other = await makeRoot('Some other CA');
  const server = await makeLeaf(ca, 'api.example.com', { dns: ['api.example.com'] });
  const client = await makeLeaf(ca, 'client', { client: true });
  files.ca = await file('ca.pem', ca.pem);
  files.other = await file('other.pem', other.pem);
  files.cert = await file('client.pem', client.pem);
  const stranger = await makeLeaf(other, 'stranger', { client: true });
  files.strangerCert = await file('stranger.pem', stranger.pem);
  files.strangerKey = await file('stranger-key.pem', stranger.keyPem);
  files.key = await file('client-key.pem', client.keyPem);
  const answer: http.RequestListener = (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate?.() as PeerCertificate | undefined;
    res.end(`${req.headers.host} ${(req.socket as TLSSocket).servername ?? '-'} ${peer?.subject?.CN ?? '-'}`);
  };
  const plain = http.createServer(answer);
  plain.on('connection', (s) => plainConnections.push(s.remotePort ?? 0));
  plainPort = await listen(plain);
  tlsPort = await listen(https.createServer({ cert: server.pem, key: server.keyPem }, answer));
  mtlsPort = await listen(
    https.createServer(
      { cert: server.pem, key: server.keyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: true },
      answer,
    ),
  );
});

after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await rm(dir, { recursive: true, force: true });
});

const cluster = (port: number, tls: ExternalTls): Cluster & { tls: ExternalTls } => ({
  name: 'outbound|80||api.example.com',
  direction: 'outbound',
  service: 'api.example.com',
  port: 80,
  lb: { type: 'ROUND_ROBIN' },
  tls,
  endpoints: [{ address: '127.0.0.1', port, healthy: true }],
});

/** One GET through the endpoint's HTTP/1.1 transport: the body, or the failure. */
function get(ts: Transports[] | string): Promise<{ status: number; body: string } | UpstreamFailure> {
  assert.ok(typeof ts !== 'string', ts as string);
  const req = upstreamRequest('HTTP/1.1', 'GET', '/', 'api.example.com', {}, undefined);
  return new Promise((resolve) => {
    let status = 0;
    const chunks: Buffer[] = [];
    ts[0]['HTTP/1.1'](req, {
      onHead: (s) => {
        status = s;
      },
      onData: (c) => chunks.push(c) > 0,
      onEnd: () => resolve({ status, body: Buffer.concat(chunks).toString() }),
      onError: (f) => resolve(f),
    });
  });
}

const ok = (r: Awaited<ReturnType<typeof get>>) => {
  assert.ok(!(r instanceof Error), r instanceof Error ? r.message : '');
  return r.body;
};

test('DISABLE: plaintext keep-alive HTTP/1.1 to the endpoint, reused across snapshots', async () => {
  const pool = new ExternalPool();
  const c = cluster(plainPort, { mode: 'DISABLE' });
  const before = plainConnections.length;
  assert.equal(ok(await get(pool.transports(c))), 'api.example.com - -');
  // The next snapshot's transports for the same cluster use the same connection.
  assert.equal(ok(await get(pool.transports(c))), 'api.example.com - -');
  assert.equal(plainConnections.length - before, 1);
  pool.retain(new Set());
  assert.equal(ok(await get(pool.transports(c))), 'api.example.com - -');
  assert.equal(plainConnections.length - before, 2, 'a retired pool is closed; a new one connects again');
  pool.close();
});

test('SIMPLE: the CA file verifies the server, the SNI is the host', async () => {
  const pool = new ExternalPool();
  const r = await get(
    pool.transports(cluster(tlsPort, { mode: 'SIMPLE', sni: 'api.example.com', caCertificates: files.ca })),
  );
  assert.equal(ok(r), 'api.example.com api.example.com -');
  pool.close();
});

test('SIMPLE refuses an unknown CA and a SAN mismatch as connect failures; insecureSkipVerify does not check', async () => {
  const pool = new ExternalPool();
  const unknown = await get(
    pool.transports(
      cluster(tlsPort, { mode: 'SIMPLE', sni: 'api.example.com', caCertificates: files.other }),
    ),
  );
  assert.ok(unknown instanceof Error);
  assert.equal(unknown.kind, 'connect');
  assert.match(
    unknown.message,
    /127\.0\.0\.1:\d+ \(TLS SIMPLE, SNI api\.example\.com, CA .*other\.pem.*\): .*certificate/,
  );
  const san = await get(
    pool.transports(
      cluster(tlsPort, {
        mode: 'SIMPLE',
        sni: 'api.example.com',
        caCertificates: files.ca,
        subjectAltNames: ['billing.example.com'],
      }),
    ),
  );
  assert.ok(san instanceof Error);
  assert.equal(san.kind, 'connect');
  assert.match(
    san.message,
    /SANs \(DNS:api\.example\.com\) match none of subjectAltNames billing\.example\.com/,
  );
  const skip = await get(
    pool.transports(cluster(tlsPort, { mode: 'SIMPLE', sni: 'wrong.example.com', insecureSkipVerify: true })),
  );
  assert.equal(ok(skip), 'api.example.com wrong.example.com -');
  pool.close();
});

test('MUTUAL: the client certificate files are presented; without one the server refuses: a connect failure', async () => {
  const pool = new ExternalPool();
  const mutual = await get(
    pool.transports(
      cluster(mtlsPort, {
        mode: 'MUTUAL',
        sni: 'api.example.com',
        caCertificates: files.ca,
        clientCertificate: files.cert,
        privateKey: files.key,
      }),
    ),
  );
  assert.equal(ok(mutual), 'api.example.com api.example.com client');
  const without = await get(
    pool.transports(cluster(mtlsPort, { mode: 'SIMPLE', sni: 'api.example.com', caCertificates: files.ca })),
  );
  assert.ok(without instanceof Error);
  assert.equal(without.kind, 'connect');
  assert.match(without.message, /alert certificate required/);
  const stranger = await get(
    pool.transports(
      cluster(mtlsPort, {
        mode: 'MUTUAL',
        sni: 'api.example.com',
        caCertificates: files.ca,
        clientCertificate: files.strangerCert,
        privateKey: files.strangerKey,
      }),
    ),
  );
  assert.ok(stranger instanceof Error);
  assert.equal(stranger.kind, 'connect');
  assert.match(stranger.message, /refused the client certificate/);
  pool.close();
});

test('a file that cannot be read, or is not PEM, leaves the cluster without transports, saying which', async () => {
  const pool = new ExternalPool();
  const missing = pool.transports(
    cluster(tlsPort, { mode: 'SIMPLE', caCertificates: join(dir, 'nope.pem') }),
  );
  assert.equal(typeof missing, 'string');
  assert.match(
    missing as string,
    /^cluster outbound\|80\|\|api\.example\.com: cannot read caCertificates .*nope\.pem: ENOENT/,
  );
  const junk = await file('junk.pem', 'not a certificate');
  const bad = pool.transports(
    cluster(tlsPort, { mode: 'MUTUAL', clientCertificate: junk, privateKey: files.key }),
  );
  assert.match(
    bad as string,
    /certificate files \(clientCertificate .*junk\.pem, privateKey .*\) do not make a TLS client/,
  );
});

test('matchSubjectAltNames: exact DNS, URI or IP SANs, and a wildcard DNS SAN for one label', () => {
  const cert = (subjectaltname: string) => ({ subjectaltname }) as PeerCertificate;
  assert.equal(matchSubjectAltNames(['a.example.com'], cert('DNS:a.example.com')), undefined);
  assert.equal(matchSubjectAltNames(['spiffe://td/x'], cert('DNS:a, URI:spiffe://td/x')), undefined);
  assert.equal(matchSubjectAltNames(['a.example.com'], cert('DNS:*.example.com')), undefined);
  assert.ok(matchSubjectAltNames(['a.b.example.com'], cert('DNS:*.example.com')));
  assert.ok(matchSubjectAltNames(['a.example.com'], cert('')));
});
