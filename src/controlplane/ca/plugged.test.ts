// A plugged-in CA in Istio's cacerts layout, built here the way an operator's PKI would be.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  makeIntermediate,
  makeRoot,
  pemChain,
  tempDir,
  writeIstioCacerts,
} from '../../../test/support/pki.ts';
import { exchange } from '../../../test/support/tls-exchange.ts';
import { generateKeyAndCsr } from '../../dataplane/identity/csr.ts';
import { TrellisError } from '../../lib/errors.ts';
import { CertificateAuthority } from './ca.ts';

const web = { namespace: 'default', serviceAccount: 'web' };
const WEB_ID = 'spiffe://corp.example/ns/default/sa/web';

function caError(file: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof TrellisError);
    assert.equal(err.code, 'TRL_CA');
    assert.match(err.message, file);
    return true;
  };
}

async function issue(ca: CertificateAuthority, who = web) {
  const id = `spiffe://${ca.trustDomain}/ns/${who.namespace}/sa/${who.serviceAccount}`;
  const { keyPem, csrPem } = await generateKeyAndCsr(id);
  return { key: keyPem, cert: (await ca.signCsr(csrPem, who)).certChainPem, ca: ca.trustBundlePem() };
}

test('plugged-in CA signs with the intermediate; certs verify against root-cert.pem (two roots)', async (t) => {
  const root = await makeRoot('Example Root A');
  const otherRoot = await makeRoot('Example Root B');
  const inter = await makeIntermediate(root, 'Trellis intermediate');
  const plugged = await tempDir(t);
  const rootCert = root.pem + '\n' + otherRoot.pem + '\n';
  await writeIstioCacerts(plugged, {
    caCert: inter.pem,
    caKey: inter.keyPem,
    rootCert,
    certChain: inter.pem + '\n' + root.pem + '\n',
  });
  const dir = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate({
    dir: join(dir, 'unused'),
    pluggedDir: plugged,
    trustDomain: 'corp.example',
  });

  const bundle = pemChain(ca.trustBundlePem());
  assert.deepEqual(
    bundle.map((c) => c.subject),
    ['CN=Example Root A', 'CN=Example Root B'],
  );

  const side = await issue(ca);
  const [leaf, sentInter, sentRoot, ...rest] = pemChain(side.cert);
  assert.equal(rest.length, 0);
  assert.equal(leaf.subjectAltName, `URI:${WEB_ID}`);
  assert.ok(leaf.checkIssued(sentInter) && leaf.verify(sentInter.publicKey), 'leaf signed by ca-cert.pem');
  assert.equal(sentInter.subject, 'O=Example Corp\nCN=Trellis intermediate');
  assert.ok(sentInter.verify(bundle[0].publicKey), 'intermediate chains to root-cert.pem');
  assert.equal(sentRoot.subject, 'CN=Example Root A', 'chain is leaf + cert-chain.pem');

  // Real TLS with only root-cert.pem as trust: the chain must carry the intermediate.
  const r = await exchange(await issue(ca, { namespace: 'default', serviceAccount: 'api' }), side, undefined);
  assert.equal(r.serverSawPeer, WEB_ID);
  assert.equal(r.clientSawPeer, 'spiffe://corp.example/ns/default/sa/api');
});

test('plugged-in RSA intermediate with a PKCS#1 key; cert-chain.pem without ca-cert is completed', async (t) => {
  const root = await makeRoot('RSA Test Root');
  const inter = await makeIntermediate(root, 'RSA intermediate', { rsa: true });
  assert.match(inter.keyPem, /BEGIN RSA PRIVATE KEY/);
  const plugged = await tempDir(t);
  await writeIstioCacerts(plugged, {
    caCert: inter.pem,
    caKey: inter.keyPem,
    rootCert: root.pem,
    certChain: root.pem,
  });
  const ca = await CertificateAuthority.loadOrCreate({ dir: plugged, pluggedDir: plugged });
  const side = await issue(ca);
  const chain = pemChain(side.cert);
  assert.equal(chain.length, 3);
  assert.equal(chain[1].subject, 'O=Example Corp\nCN=RSA intermediate');
  assert.ok(chain[0].verify(chain[1].publicKey));
  const r = await exchange(side, await issue(ca));
  assert.equal(r.serverSawPeer, 'spiffe://cluster.local/ns/default/sa/web');
});

test('leaves from a plugged-in CA stop at the intermediate notAfter', async (t) => {
  const root = await makeRoot('Root');
  const soon = new Date(Date.now() + 3_600_000);
  const inter = await makeIntermediate(root, 'Short intermediate', { notAfter: soon });
  const plugged = await tempDir(t);
  await writeIstioCacerts(plugged, {
    caCert: inter.pem,
    caKey: inter.keyPem,
    rootCert: root.pem,
    certChain: inter.pem,
  });
  const ca = await CertificateAuthority.loadOrCreate({ dir: plugged, pluggedDir: plugged });
  const { csrPem } = await generateKeyAndCsr('spiffe://cluster.local/ns/default/sa/web');
  const res = await ca.signCsr(csrPem, web);
  assert.equal(res.notAfter.getTime(), Math.floor(soon.getTime() / 1000) * 1000);
});

test('plugged-in CA validation: missing file, mismatched key, foreign root', async (t) => {
  const root = await makeRoot('Root');
  const inter = await makeIntermediate(root, 'Intermediate');
  const other = await makeIntermediate(root, 'Other intermediate');
  const stranger = await makeRoot('Stranger');
  const good = { caCert: inter.pem, caKey: inter.keyPem, rootCert: root.pem, certChain: inter.pem };

  const missing = await tempDir(t);
  await writeIstioCacerts(missing, good);
  await writeFile(join(missing, 'cert-chain.pem'), '');
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: missing, pluggedDir: join(missing, 'nope') }),
    caError(/nope\/ca-cert\.pem is missing: a plugged-in CA dir needs/),
  );
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: missing, pluggedDir: missing }),
    caError(/cert-chain\.pem holds no PEM certificate/),
  );

  const mismatched = await tempDir(t);
  await writeIstioCacerts(mismatched, { ...good, caKey: other.keyPem });
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: mismatched, pluggedDir: mismatched }),
    caError(/ca-key\.pem does not match .*ca-cert\.pem/),
  );

  const foreign = await tempDir(t);
  await writeIstioCacerts(foreign, { ...good, rootCert: stranger.pem });
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: foreign, pluggedDir: foreign }),
    caError(/ca-cert\.pem does not chain to any certificate in .*root-cert\.pem/),
  );

  const leafAsCa = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const { keyPem, csrPem } = await generateKeyAndCsr('spiffe://cluster.local/ns/default/sa/web');
  const leaf = (await ca.signCsr(csrPem, web)).certChainPem;
  await writeIstioCacerts(leafAsCa, {
    caCert: leaf,
    caKey: keyPem,
    rootCert: ca.trustBundlePem(),
    certChain: leaf,
  });
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: leafAsCa, pluggedDir: leafAsCa }),
    caError(/ca-cert\.pem is not a CA certificate/),
  );
});
