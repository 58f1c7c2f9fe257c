import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import type { JsonGeneralNames } from '@peculiar/x509';
import { TrellisError } from '../../lib/errors.ts';
import { parseSubjectAltName, peerIdentity } from '../../lib/spiffe.ts';
import { x509 } from '../../lib/x509.ts';
import { certValidity, rotationDelayMs } from './cert.ts';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

async function selfSigned(sans: JsonGeneralNames, notBefore?: Date, notAfter?: Date): Promise<string> {
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=test',
    keys,
    signingAlgorithm: alg,
    notBefore,
    notAfter,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  return `${cert.toString('pem')}\n`;
}

const peer = (subjectaltname?: string) => ({ subjectaltname }) as PeerCertificate;

test('peerIdentity reads the SPIFFE URI SAN from Node certificates', async () => {
  const pem = await selfSigned([
    { type: 'dns', value: 'web.default.svc' },
    { type: 'url', value: ID },
    { type: 'ip', value: '10.0.0.1' },
  ]);
  const cert = new X509Certificate(pem);
  assert.equal(peerIdentity(cert), ID);
  assert.equal(peerIdentity(peer(cert.subjectAltName)), ID);
  assert.equal(peerIdentity(peer(cert.toLegacyObject().subjectaltname)), ID);
});

test('peerIdentity: no SAN, no spiffe URI, or two spiffe URIs give undefined', async () => {
  assert.equal(peerIdentity(new X509Certificate(await selfSigned([]))), undefined);
  assert.equal(
    peerIdentity(new X509Certificate(await selfSigned([{ type: 'url', value: 'https://web' }]))),
    undefined,
  );
  const two = await selfSigned([
    { type: 'url', value: ID },
    { type: 'url', value: 'spiffe://cluster.local/ns/default/sa/admin' },
  ]);
  assert.equal(peerIdentity(new X509Certificate(two)), undefined);
  assert.equal(peerIdentity({} as PeerCertificate), undefined);
  assert.equal(peerIdentity(peer('')), undefined);
});

test('peerIdentity is not fooled by a SAN value that looks like a second entry', async () => {
  // Node quotes values containing commas, so this is one DNS name, not a DNS name plus a URI.
  const forged = await selfSigned([{ type: 'dns', value: `x, URI:${ID}` }]);
  const cert = new X509Certificate(forged);
  assert.match(cert.subjectAltName ?? '', /^DNS:"/);
  assert.equal(peerIdentity(cert), undefined);

  const quotedUri = await selfSigned([{ type: 'url', value: 'spiffe://cluster.local/ns/a,b/sa/c' }]);
  assert.equal(peerIdentity(new X509Certificate(quotedUri)), 'spiffe://cluster.local/ns/a,b/sa/c');
});

test('parseSubjectAltName handles plain and JSON-quoted values, rejects malformed text', () => {
  assert.deepEqual(parseSubjectAltName('DNS:a.b, URI:spiffe://x/y, IP Address:0:0:0:0:0:0:0:1'), [
    { type: 'DNS', value: 'a.b' },
    { type: 'URI', value: 'spiffe://x/y' },
    { type: 'IP Address', value: '0:0:0:0:0:0:0:1' },
  ]);
  assert.deepEqual(parseSubjectAltName('DNS:"a\\u002c b", URI:"spiffe://x/\\"q\\""'), [
    { type: 'DNS', value: 'a, b' },
    { type: 'URI', value: 'spiffe://x/"q"' },
  ]);
  assert.equal(parseSubjectAltName('DNS:"unterminated'), undefined);
  assert.equal(parseSubjectAltName('DNS:"a"junk, URI:spiffe://x'), undefined);
  assert.equal(parseSubjectAltName('no colon here'), undefined);
});

test('certValidity reads the leaf lifetime (second precision)', async () => {
  const notBefore = new Date('2030-01-02T03:04:05Z');
  const notAfter = new Date('2030-01-03T03:04:05Z');
  const leaf = await selfSigned([{ type: 'url', value: ID }], notBefore, notAfter);
  const other = await selfSigned([], new Date('2020-01-01T00:00:00Z'), new Date('2040-01-01T00:00:00Z'));
  assert.deepEqual(certValidity(leaf + other), { notBefore, notAfter });
  assert.throws(
    () => certValidity('garbage'),
    (e: unknown) => e instanceof TrellisError && e.code === 'TRL_INVALID_ARGUMENT',
  );
});

test('rotationDelayMs: half-life without jitter, never negative', () => {
  const nb = new Date('2030-01-01T00:00:00Z');
  const na = new Date('2030-01-02T00:00:00Z'); // 24 h
  const at = (iso: string) => new Date(iso);
  assert.equal(rotationDelayMs(nb, na, nb, 0), 12 * 3600_000);
  assert.equal(rotationDelayMs(nb, na, at('2030-01-01T10:00:00Z'), 0), 2 * 3600_000);
  assert.equal(rotationDelayMs(nb, na, at('2029-12-31T23:00:00Z'), 0), 13 * 3600_000);
  assert.equal(rotationDelayMs(nb, na, at('2030-01-01T12:00:00Z'), 0), 0);
  assert.equal(rotationDelayMs(nb, na, at('2030-01-01T18:00:00Z'), 0), 0);
  assert.equal(rotationDelayMs(nb, na, at('2030-01-05T00:00:00Z'), 0), 0);
  assert.equal(rotationDelayMs(na, nb, nb, 0), 0, 'inverted validity');
  // Short-lived certs work the same way: a 4 s cert renews 2 s in.
  assert.equal(rotationDelayMs(new Date(0), new Date(4_000), new Date(0), 0), 2_000);
});

test('rotationDelayMs jitter stays within ±fraction of the lifetime and spreads', () => {
  const nb = new Date(0);
  const na = new Date(1_000_000);
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const d = rotationDelayMs(nb, na, nb, 0.1);
    assert.ok(d >= 400_000 && d <= 600_000, `${d}`);
    seen.add(d);
  }
  assert.ok(seen.size > 100, 'jitter actually varies');
  const def = rotationDelayMs(nb, na, nb);
  assert.ok(def >= 450_000 && def <= 550_000, `default jitter 5%: ${def}`);
  assert.equal(rotationDelayMs(nb, na, new Date(999_999), 0.1), 0);
  for (const bad of [-0.1, 0.5, Number.NaN]) {
    assert.throws(
      () => rotationDelayMs(nb, na, nb, bad),
      (e: unknown) => e instanceof TrellisError,
    );
  }
});
