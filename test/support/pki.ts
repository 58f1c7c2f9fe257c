// Test-only helpers: an operator's own PKI (root + intermediate) as openssl or cert-manager would make it,
// to exercise the plugged-in CA path, plus small TLS helpers shared by the CA tests.

import { generateKeyPairSync, KeyObject, type webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { x509 } from '../../src/lib/x509.ts';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-ca-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestCa {
  cert: PeculiarCertificate;
  keys: webcrypto.CryptoKeyPair;
  pem: string;
  keyPem: string;
}

export async function makeRoot(cn: string): Promise<TestCa> {
  const keys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [cn] }],
    keys,
    signingAlgorithm: EC,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, pem: cert.toString('pem'), keyPem: pkcs8(keys.privateKey) };
}

/** An intermediate signed by `parent`; `rsa` gives a PKCS#1 "RSA PRIVATE KEY" as older Istio tooling writes. */
export async function makeIntermediate(
  parent: TestCa,
  cn: string,
  opts: { rsa?: boolean; notAfter?: Date } = {},
): Promise<TestCa> {
  let keys: webcrypto.CryptoKeyPair;
  let keyPem: string;
  if (opts.rsa) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    keys = {
      privateKey: pair.privateKey.toCryptoKey(alg, true, ['sign']),
      publicKey: pair.publicKey.toCryptoKey(alg, true, ['verify']),
    };
    keyPem = pair.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string;
  } else {
    keys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    keyPem = pkcs8(keys.privateKey);
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ O: ['Example Corp'] }, { CN: [cn] }],
    issuer: parent.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: parent.keys.privateKey,
    signingAlgorithm: EC,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: opts.notAfter ?? new Date(Date.now() + 180 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey),
    ],
  });
  return { cert, keys, pem: cert.toString('pem'), keyPem };
}

/**
 * A server or client certificate for TLS outside the mesh, signed by `issuer`: `dns` names become
 * DNS SANs; `client` makes it a client certificate.
 */
export async function makeLeaf(
  issuer: TestCa,
  cn: string,
  opts: { dns?: string[]; client?: boolean } = {},
): Promise<TestCa> {
  const keys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [cn] }],
    issuer: issuer.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: EC,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 30 * 86400_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        opts.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth,
      ]),
      ...(opts.dns?.length
        ? [
            new x509.SubjectAlternativeNameExtension(
              opts.dns.map((value) => ({ type: 'dns' as const, value })),
            ),
          ]
        : []),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ],
  });
  return { cert, keys, pem: cert.toString('pem'), keyPem: pkcs8(keys.privateKey) };
}

function pkcs8(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** Istio's `cacerts` files: cert-chain.pem is the intermediate followed by the root. */
export async function writeIstioCacerts(
  dir: string,
  files: { caCert: string; caKey: string; rootCert: string; certChain: string },
): Promise<void> {
  await writeFile(join(dir, 'ca-cert.pem'), files.caCert);
  await writeFile(join(dir, 'ca-key.pem'), files.caKey, { mode: 0o600 });
  await writeFile(join(dir, 'root-cert.pem'), files.rootCert);
  await writeFile(join(dir, 'cert-chain.pem'), files.certChain);
}

/** All certificates in a PEM chain, leaf first. */
export function pemChain(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (b) => new X509Certificate(b),
  );
}
