import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeRoot, pemChain, tempDir } from '../../../test/support/pki.ts';
import { TrellisError } from '../../lib/errors.ts';
import { x509 } from '../../lib/x509.ts';
import { CertificateAuthority } from './ca.ts';

const web = { namespace: 'default', serviceAccount: 'web' };
const WEB_ID = 'spiffe://cluster.local/ns/default/sa/web';

async function csrFor(sans: { type: 'url' | 'dns'; value: string }[]): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=ignored-by-the-ca',
    keys,
    signingAlgorithm: alg,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  return csr.toString('pem');
}

function isCaError(code: 'TRL_CA' | 'TRL_CSR_REJECTED' | 'TRL_INVALID_ARGUMENT', message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof TrellisError, `expected TrellisError, got ${err}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  };
}

test('generated root: P-256 self-signed CA, 10 years, persisted with a private key file', async (t) => {
  const dir = join(await tempDir(t), 'ca');
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  assert.equal(ca.trustDomain, 'cluster.local');

  const [root] = pemChain(ca.trustBundlePem());
  assert.equal(pemChain(ca.trustBundlePem()).length, 1);
  assert.equal(root.ca, true);
  assert.match(root.subject, /^O=Trellis\nCN=Trellis root CA cluster.local \d{4}-\d\d-\d\d$/);
  assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(root.verify(root.publicKey), 'self-signed');
  const years = (root.validToDate.getTime() - Date.now()) / (365.25 * 86400_000);
  assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);

  const p = new x509.X509Certificate(root.raw);
  const bc = p.getExtension(x509.BasicConstraintsExtension);
  assert.equal(bc?.critical, true);
  assert.equal(bc?.ca, true);
  const ku = p.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);

  assert.equal((await stat(join(dir, 'root-key.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  assert.equal(await readFile(join(dir, 'root-cert.pem'), 'utf8'), ca.trustBundlePem());
});

test('loading again returns the same root, and certs from before the restart still verify', async (t) => {
  const dir = await tempDir(t);
  const first = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org' });
  const issued = await first.signCsr(await csrFor([]), web);
  const keyBefore = await readFile(join(dir, 'root-key.pem'), 'utf8');

  const second = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org' });
  assert.equal(second.trustBundlePem(), first.trustBundlePem());
  assert.equal(await readFile(join(dir, 'root-key.pem'), 'utf8'), keyBefore);
  const [root] = pemChain(second.trustBundlePem());
  assert.ok(pemChain(issued.certChainPem)[0].verify(root.publicKey));
  // The new instance signs with the persisted key, so its leaves chain to the same root.
  const again = await second.signCsr(await csrFor([]), web);
  assert.ok(pemChain(again.certChainPem)[0].verify(root.publicKey));
});

test('corrupt, mismatched or half-missing root files are reported by name', async (t) => {
  const dir = await tempDir(t);
  await CertificateAuthority.loadOrCreate({ dir });
  const keyPath = join(dir, 'root-key.pem');
  const certPath = join(dir, 'root-cert.pem');
  const goodKey = await readFile(keyPath, 'utf8');

  await writeFile(keyPath, 'not a key');
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir }),
    isCaError('TRL_CA', /root-key\.pem.*not a readable private key/),
  );

  const other = await tempDir(t);
  await CertificateAuthority.loadOrCreate({ dir: other });
  await writeFile(keyPath, await readFile(join(other, 'root-key.pem')));
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir }),
    isCaError('TRL_CA', /root-key\.pem does not match .*root-cert\.pem/),
  );

  await writeFile(keyPath, goodKey);
  await writeFile(certPath, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir }),
    isCaError('TRL_CA', /root-cert\.pem has an unreadable certificate/),
  );

  const half = await tempDir(t);
  await writeFile(join(half, 'root-key.pem'), goodKey, { mode: 0o600 });
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir: half }),
    isCaError('TRL_CA', /root-cert\.pem is missing while .*root-key\.pem exists/),
  );
});

test('additional-roots.pem keeps an old root in the trust bundle during rotation', async (t) => {
  const dir = await tempDir(t);
  const old = await makeRoot('old root');
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  await writeFile(join(dir, 'additional-roots.pem'), old.pem);
  const reloaded = await CertificateAuthority.loadOrCreate({ dir });
  const bundle = pemChain(reloaded.trustBundlePem());
  assert.equal(bundle.length, 2);
  assert.equal(bundle[0].fingerprint256, pemChain(ca.trustBundlePem())[0].fingerprint256);
  assert.equal(bundle[1].subject, 'CN=old root');
});

test('workload leaf: identity from the caller, not the CSR, and the full certificate profile', async (t) => {
  const dir = await tempDir(t);
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  const before = Date.now();
  // The CSR's subject and DNS SAN are ignored; only its key is used.
  const res = await ca.signCsr(await csrFor([{ type: 'dns', value: 'evil.example.com' }]), web);
  const chain = pemChain(res.certChainPem);
  assert.equal(chain.length, 1, 'a generated root is not sent in the chain');
  const [leaf] = chain;
  const [root] = pemChain(ca.trustBundlePem());

  assert.equal(leaf.subjectAltName, `URI:${WEB_ID}`);
  assert.equal(leaf.subject, undefined);
  assert.equal(leaf.ca, false);
  assert.ok(leaf.verify(root.publicKey));
  assert.ok(leaf.checkIssued(root));
  assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.match(leaf.serialNumber, /^[0-7][0-9A-F]{31}$/, '16 bytes, positive');

  const p = new x509.X509Certificate(leaf.raw);
  assert.equal(p.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  assert.equal(
    p.getExtension(x509.KeyUsagesExtension)?.usages,
    x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  );
  assert.equal(p.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
  const rootSki = new x509.X509Certificate(root.raw).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  assert.equal(p.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, rootSki);
  assert.ok(p.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);

  // notBefore is backdated a minute for clock skew; notAfter is 24 h out by default.
  assert.ok(
    Math.abs(res.notBefore.getTime() - (before - 60_000)) < 2_000,
    `notBefore ${res.notBefore.toISOString()}`,
  );
  assert.ok(
    Math.abs(res.notAfter.getTime() - (before + 86400_000)) < 2_000,
    `notAfter ${res.notAfter.toISOString()}`,
  );
  assert.deepEqual(res.notAfter, leaf.validToDate);
});

test('serials are random', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const csr = await csrFor([]);
  const a = pemChain((await ca.signCsr(csr, web)).certChainPem)[0].serialNumber;
  const b = pemChain((await ca.signCsr(csr, web)).certChainPem)[0].serialNumber;
  assert.notEqual(a, b);
});

test('a 2-second TTL gives notAfter ≈ now + 2 s', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const now = Date.now();
  const res = await ca.signCsr(await csrFor([]), web, { ttlMs: 2_000 });
  // X.509 times have whole seconds; the CA rounds notAfter up so the cert lives at least the TTL.
  const delta = res.notAfter.getTime() - now;
  assert.ok(delta >= 2_000 && delta < 3_100, `notAfter - now = ${delta} ms`);
  assert.ok(
    res.notBefore.getTime() <= now && res.notBefore.getTime() > now - 2_000,
    'short TTLs are barely backdated',
  );
});

test('workloadCertTtlMs sets the default lifetime', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t), workloadCertTtlMs: 3_600_000 });
  const now = Date.now();
  const res = await ca.signCsr(await csrFor([]), web);
  assert.ok(Math.abs(res.notAfter.getTime() - (now + 3_600_000)) < 2_000);
});

test('a leaf never outlives the certificate that signed it', async (t) => {
  const dir = await tempDir(t);
  const root = pemChain((await CertificateAuthority.loadOrCreate({ dir })).trustBundlePem())[0];
  const nearEnd = root.validToDate.getTime() - 3_600_000;
  const ca = await CertificateAuthority.loadOrCreate({ dir, now: () => new Date(nearEnd) });
  const res = await ca.signCsr(await csrFor([]), web);
  assert.deepEqual(res.notAfter, root.validToDate);

  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir, now: () => new Date(root.validToDate.getTime() + 1_000) }),
    isCaError('TRL_CA', /root-cert\.pem expired/),
  );
});

test('CSR checks: matching URI SAN ok, other URI SAN, tampered signature and garbage rejected', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const ok = await ca.signCsr(await csrFor([{ type: 'url', value: WEB_ID }]), web);
  assert.equal(pemChain(ok.certChainPem)[0].subjectAltName, `URI:${WEB_ID}`);

  await assert.rejects(
    ca.signCsr(await csrFor([{ type: 'url', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }]), web),
    isCaError(
      'TRL_CSR_REJECTED',
      /URI SAN spiffe:\/\/cluster\.local\/ns\/kube-system\/sa\/admin .*authenticated as spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/,
    ),
  );
  await assert.rejects(
    ca.signCsr(
      await csrFor([
        { type: 'url', value: WEB_ID },
        { type: 'url', value: 'https://example.com' },
      ]),
      web,
    ),
    isCaError('TRL_CSR_REJECTED', /URI SAN https:\/\/example\.com/),
  );

  const der = Buffer.from(new x509.Pkcs10CertificateRequest(await csrFor([])).rawData);
  der[der.length - 5] ^= 0x01; // inside the ECDSA signature
  const tampered = new x509.Pkcs10CertificateRequest(der).toString('pem');
  await assert.rejects(ca.signCsr(tampered, web), isCaError('TRL_CSR_REJECTED', /signature does not verify/));

  await assert.rejects(ca.signCsr('hello', web), isCaError('TRL_CSR_REJECTED', /not a PEM PKCS#10/));
  await assert.rejects(
    ca.signCsr(await csrFor([]), { namespace: 'a/b', serviceAccount: 'web' }),
    isCaError('TRL_INVALID_ARGUMENT', /invalid namespace "a\/b"/),
  );
  await assert.rejects(
    ca.signCsr(await csrFor([]), web, { ttlMs: 10 }),
    isCaError('TRL_INVALID_ARGUMENT', /ttlMs/),
  );
});

test('a CSR whose key was swapped after signing fails proof of possession', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const a = new x509.Pkcs10CertificateRequest(await csrFor([]));
  const b = new x509.Pkcs10CertificateRequest(await csrFor([]));
  const derA = Buffer.from(a.rawData);
  const spkiA = Buffer.from(a.publicKey.rawData);
  const spkiB = Buffer.from(b.publicKey.rawData);
  const at = derA.indexOf(spkiA);
  assert.ok(at > 0);
  spkiB.copy(derA, at);
  const swapped = new x509.Pkcs10CertificateRequest(derA).toString('pem');
  await assert.rejects(ca.signCsr(swapped, web), isCaError('TRL_CSR_REJECTED', /signature does not verify/));
});

test('weak CSR keys are refused', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t) });
  const alg = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    modulusLength: 1024,
    publicExponent: new Uint8Array([1, 0, 1]),
  };
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg });
  await assert.rejects(ca.signCsr(csr.toString('pem'), web), isCaError('TRL_CSR_REJECTED', /too weak/));
});

test('invalid options are rejected up front', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir, trustDomain: 'Bad Domain' }),
    isCaError('TRL_INVALID_ARGUMENT', /invalid trust domain/),
  );
  await assert.rejects(
    CertificateAuthority.loadOrCreate({ dir, workloadCertTtlMs: 0 }),
    isCaError('TRL_INVALID_ARGUMENT', /workloadCertTtlMs/),
  );
});

test('serving cert: DNS, IP and optional SPIFFE SANs, with a key that matches', async (t) => {
  const ca = await CertificateAuthority.loadOrCreate({ dir: await tempDir(t), trustDomain: 'mesh.test' });
  const res = await ca.issueServingCert({
    dnsNames: ['trellis-ctl.trellis-system.svc', 'localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    identity: { namespace: 'trellis-system', serviceAccount: 'trellis-ctl' },
    ttlMs: 3_600_000,
  });
  const [leaf] = pemChain(res.certChainPem);
  assert.equal(
    leaf.subjectAltName,
    'DNS:trellis-ctl.trellis-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://mesh.test/ns/trellis-system/sa/trellis-ctl',
  );
  assert.ok(leaf.checkPrivateKey(createPrivateKey(res.keyPem)));
  assert.deepEqual(res.notAfter, leaf.validToDate);
  assert.ok(leaf.checkHost('localhost'));
  assert.ok(leaf.checkIP('127.0.0.1'));
  assert.ok(new X509Certificate(leaf.raw).verify(pemChain(ca.trustBundlePem())[0].publicKey));

  await assert.rejects(
    ca.issueServingCert({ dnsNames: ['bad name'], ipAddresses: [] }),
    isCaError('TRL_INVALID_ARGUMENT', /invalid DNS name "bad name"/),
  );
  await assert.rejects(
    ca.issueServingCert({ dnsNames: [], ipAddresses: ['300.1.1.1'] }),
    isCaError('TRL_INVALID_ARGUMENT', /invalid IP address "300\.1\.1\.1"/),
  );
  await assert.rejects(
    ca.issueServingCert({ dnsNames: [], ipAddresses: [] }),
    isCaError('TRL_INVALID_ARGUMENT', /at least one/),
  );
});
