import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import { createSecureContext } from 'node:tls';
import { TrellisError } from '../../lib/errors.ts';
import { x509 } from '../../lib/x509.ts';
import { generateKeyAndCsr } from './csr.ts';

const ID = 'spiffe://cluster.local/ns/default/sa/web';

test('generateKeyAndCsr: P-256 PKCS#8 key and a self-signed CSR carrying the URI SAN', async () => {
  const { keyPem, csrPem } = await generateKeyAndCsr(ID);
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n$/);

  const key = createPrivateKey(keyPem);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.doesNotThrow(() => createSecureContext({ key: keyPem }));

  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(await csr.verify(), true);
  const san = csr.getExtension('2.5.29.17');
  assert.ok(san);
  assert.deepEqual(new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON(), [
    { type: 'url', value: ID },
  ]);
  // The CSR's public key is the one matching the private key kept locally.
  const fromCsr = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  assert.ok(fromCsr.equals(createPublicKey(key)));
});

test('a long identity (multi-byte DER lengths inside the SAN) still gives a valid CSR', async () => {
  const id = `spiffe://cluster.local/ns/default/sa/${'a'.repeat(200)}`;
  const csr = new x509.Pkcs10CertificateRequest((await generateKeyAndCsr(id)).csrPem);
  assert.equal(await csr.verify(), true);
  const san = new x509.SubjectAlternativeNameExtension(csr.getExtension('2.5.29.17')!.rawData);
  assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: id }]);
});

test('every call makes a fresh key', async () => {
  const a = await generateKeyAndCsr(ID);
  const b = await generateKeyAndCsr(ID);
  assert.notEqual(a.keyPem, b.keyPem);
});

test('generateKeyAndCsr refuses identities outside the mesh shape', async () => {
  for (const bad of [
    'spiffe://cluster.local/web',
    'https://x/ns/a/sa/b',
    'spiffe://cluster.local/ns/a/sa/b/c',
  ]) {
    await assert.rejects(
      generateKeyAndCsr(bad),
      (e: unknown) =>
        e instanceof TrellisError && e.code === 'TRL_INVALID_ARGUMENT' && e.message.includes(bad),
    );
  }
});
