// A mesh whose certificates come from a plugged-in CA (Istio's cacerts layout): the sidecars present
// chains that end at the operator's root, and traffic flows.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { makeIntermediate, makeRoot, writeIstioCacerts } from '../test/support/pki.ts';
import { Mesh, page } from './support/mesh.ts';

let mesh: Mesh | undefined;
after(async () => mesh?.down());

test('trellis up --ca-dir issues workload certificates from the plugged-in intermediate', {
  timeout: 120_000,
}, async () => {
  const root = await makeRoot('Operator Root');
  const inter = await makeIntermediate(root, 'Operator Intermediate for Trellis');
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-cacerts-'));
  await writeIstioCacerts(dir, {
    caCert: inter.pem,
    caKey: inter.keyPem,
    rootCert: root.pem,
    certChain: `${inter.pem}\n${root.pem}\n`,
  });
  mesh = await Mesh.up('samples/bookinfo', ['--ca-dir', dir]);

  const p = await page(`${mesh.gateway}/productpage`);
  assert.equal(p.status, 200);
  assert.match(p.text, /Reviews served by:/);

  const trust = await readFile(mesh.controlPlane().rootCert, 'utf8');
  assert.equal(
    new X509Certificate(trust).fingerprint256,
    new X509Certificate(root.pem).fingerprint256,
    'the trust bundle is the plugged root',
  );
  const chain = await new Promise<X509Certificate[]>((resolve, reject) => {
    const s = tls.connect(
      {
        host: '127.0.0.1',
        port: mesh!.instance('ratings-v1').inboundPort,
        ca: trust,
        checkServerIdentity: () => undefined,
      },
      () => {
        const certs: X509Certificate[] = [];
        let c = s.getPeerCertificate(true);
        while (c?.raw) {
          certs.push(new X509Certificate(c.raw));
          if (c.issuerCertificate === c) break; // a self-signed root ends the chain
          c = c.issuerCertificate;
        }
        s.destroy();
        resolve(certs);
      },
    );
    s.on('error', reject);
  });
  const [leaf] = chain;
  assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/bookinfo-ratings');
  assert.ok(
    leaf.verify(new X509Certificate(inter.pem).publicKey),
    'the leaf is signed by the plugged intermediate',
  );
  assert.ok(new X509Certificate(inter.pem).verify(new X509Certificate(root.pem).publicKey));
});
