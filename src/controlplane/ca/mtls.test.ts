// End to end: proxies' keys and CSRs from the data-plane identity module, certificates from this CA,
// verified by real TLS handshakes over loopback.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tls from 'node:tls';
import { tempDir } from '../../../test/support/pki.ts';
import { exchange, type Side } from '../../../test/support/tls-exchange.ts';
import { certValidity, rotationDelayMs } from '../../dataplane/identity/cert.ts';
import { generateKeyAndCsr } from '../../dataplane/identity/csr.ts';
import { CertificateAuthority, type WorkloadIdentity } from './ca.ts';

const reviews = { namespace: 'bookinfo', serviceAccount: 'reviews' };
const ratings = { namespace: 'bookinfo', serviceAccount: 'ratings' };
const REVIEWS_ID = 'spiffe://cluster.local/ns/bookinfo/sa/reviews';
const RATINGS_ID = 'spiffe://cluster.local/ns/bookinfo/sa/ratings';

async function workload(ca: CertificateAuthority, who: WorkloadIdentity, ttlMs?: number): Promise<Side> {
  const { keyPem, csrPem } = await generateKeyAndCsr(
    `spiffe://${ca.trustDomain}/ns/${who.namespace}/sa/${who.serviceAccount}`,
  );
  const { certChainPem } = await ca.signCsr(csrPem, who, { ttlMs });
  return { key: keyPem, cert: certChainPem, ca: ca.trustBundlePem() };
}

test('mutual TLS between two workloads: each side sees the other SPIFFE ID', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const server = await workload(ca, ratings);
  const client = await workload(ca, reviews);
  const r = await exchange(server, client, RATINGS_ID);
  assert.equal(r.serverError, undefined);
  assert.equal(r.clientError, undefined);
  assert.equal(r.clientReceived, 'hello');
  assert.equal(r.serverSawPeer, REVIEWS_ID);
  assert.equal(r.clientSawPeer, RATINGS_ID);
});

test('a client whose cert comes from a foreign CA is rejected by the server', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const foreign = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const server = await workload(ca, ratings);
  // The impostor trusts our root, so only the server's client-cert check can stop it.
  const impostor = { ...(await workload(foreign, reviews)), ca: ca.trustBundlePem() };
  const r = await exchange(server, impostor, RATINGS_ID);
  assert.equal(r.serverSawPeer, undefined);
  assert.equal(r.clientReceived, '');
  assert.ok(r.serverError, 'server reports the failed handshake');
  assert.equal(r.serverAuthError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
});

test('a client checking the SPIFFE ID refuses a server with the wrong identity', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const r = await exchange(await workload(ca, reviews), await workload(ca, ratings), RATINGS_ID);
  assert.match(
    String(r.clientError),
    /server is spiffe:\/\/cluster\.local\/ns\/bookinfo\/sa\/reviews, expected/,
  );
  assert.equal(r.clientReceived, '');
});

test('the control plane serving cert works for a hostname-verifying client', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const serving = await ca.issueServingCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const srv = tls.createServer({ key: serving.keyPem, cert: serving.certChainPem }, (s) => s.end('ok'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const port = (srv.address() as AddressInfo).port;
  const got = await new Promise<string>((resolve, reject) => {
    let data = '';
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: ca.trustBundlePem() });
    s.on('data', (d) => {
      data += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve(data));
  });
  assert.equal(got, 'ok');
});

test('short-lived certs expire for real, and the rotated cert restores the connection', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const server = await workload(ca, ratings, 60_000);
  const client = await workload(ca, reviews, 2_000);

  const { notBefore, notAfter } = certValidity(client.cert);
  const delay = rotationDelayMs(notBefore, notAfter, new Date());
  assert.ok(delay > 0 && delay < 2_000, `a fresh 2 s cert is due for rotation within its life (${delay} ms)`);

  assert.equal((await exchange(server, client, RATINGS_ID)).serverSawPeer, REVIEWS_ID);
  await sleep(notAfter.getTime() - Date.now() + 1_100);
  const expired = await exchange(server, client, RATINGS_ID);
  assert.equal(expired.serverSawPeer, undefined);
  assert.equal(expired.serverAuthError, 'CERT_HAS_EXPIRED');

  const rotated = await workload(ca, reviews, 2_000);
  assert.equal((await exchange(server, rotated, RATINGS_ID)).serverSawPeer, REVIEWS_ID);
});
