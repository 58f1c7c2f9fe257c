// The rotation's state machine against the real CA and its files: each phase waits for the proxies it
// names, and a control plane restarted mid-way (a new CA loaded from the same dir) resumes the same
// phase with the same two roots.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeIntermediate, makeRoot, writeIstioCacerts } from '../../../test/support/pki.ts';
import { SILENT } from '../../lib/log.ts';
import type { ProxyTrust } from '../push/push.ts';
import { CertificateAuthority } from './ca.ts';
import { fileExists } from './files.ts';
import { RootRotation } from './rotation.ts';

/** The proxies as the push server would report them; the test plays their ACKs and renewals. */
class Proxies {
  readonly state = new Map<string, ProxyTrust>();
  private listeners: (() => void)[] = [];
  trustStatus = () => [...this.state.values()];
  onTrustProgress = (l: () => void) => void this.listeners.push(l);
  list = () => [...this.state.values()].map((p) => ({ id: p.id }));
  onChange = (l: () => void) => void this.listeners.push(l);
  set(id: string, p: Partial<ProxyTrust>): void {
    this.state.set(id, {
      id,
      identity: `spiffe://cluster.local/ns/default/sa/${id}`,
      ...this.state.get(id),
      ...p,
    });
    for (const l of this.listeners) l();
  }
}

async function phaseOf(r: RootRotation, want: string): Promise<void> {
  for (let i = 0; i < 200 && r.status().rotation?.phase !== want; i++)
    await new Promise((res) => setTimeout(res, 5));
  assert.equal(r.status().rotation?.phase, want);
}

test('each phase waits for every proxy; a restart resumes it; completion leaves only the new root', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-rotation-'));
  const ca = await CertificateAuthority.loadOrCreate({ dir });
  const oldRoot = ca.signingRoot().fingerprint256;
  const proxies = new Proxies();
  proxies.set('a', {
    trustAcked: ca.trust().version,
    certificate: { serial: '1', notAfter: '', root: oldRoot },
  });
  const rotation = new RootRotation({ ca, mesh: proxies, expected: proxies, log: SILENT });
  const started = await rotation.start();
  const newRoot = started.rotation!.to;
  assert.equal(started.rotation?.phase, 'distributing');
  assert.deepEqual(
    started.trustBundle.roots.map((r) => r.fingerprint),
    [oldRoot, newRoot],
  );
  assert.equal(
    started.signingRoot.fingerprint,
    oldRoot,
    'the old root signs until every proxy trusts the new one',
  );
  assert.deepEqual(
    started.rotation?.waitingFor.map((w) => w.proxy),
    ['a'],
  );
  await assert.rejects(rotation.start(), { code: 'TRL_CA_ROTATION_IN_PROGRESS' });
  assert.equal((await stat(join(dir, 'next-root-key.pem'))).mode & 0o777, 0o600);

  // The control plane restarts here: the same phase, the same two roots.
  const ca2 = await CertificateAuthority.loadOrCreate({ dir });
  assert.equal(ca2.rotation?.phase, 'distributing');
  assert.equal(ca2.trust().version, ca.trust().version);
  const resumed = new RootRotation({ ca: ca2, mesh: proxies, expected: proxies, log: SILENT });
  await assert.rejects(resumed.start(), { code: 'TRL_CA_ROTATION_IN_PROGRESS' });

  proxies.set('a', { trustAcked: ca2.trust().version });
  await phaseOf(resumed, 'reissuing');
  assert.equal(ca2.signingRoot().fingerprint256, newRoot);
  assert.deepEqual(
    ca2.trustedRoots().map((r) => r.fingerprint256),
    [newRoot, oldRoot],
  );
  assert.match(resumed.status().rotation!.waitingFor[0].reason, /certificate from/);
  // Restarted again: signing stays with the new root.
  assert.equal((await CertificateAuthority.loadOrCreate({ dir })).signingRoot().fingerprint256, newRoot);

  proxies.set('a', { certificate: { serial: '2', notAfter: '', root: newRoot } });
  await phaseOf(resumed, 'retiring');
  assert.deepEqual(
    ca2.trustedRoots().map((r) => r.fingerprint256),
    [newRoot],
  );
  proxies.set('a', { trustAcked: ca2.trust().version });
  await phaseOf(resumed, 'complete');

  assert.equal(
    new X509Certificate(await readFile(join(dir, 'root-cert.pem'), 'utf8')).fingerprint256,
    newRoot,
  );
  assert.equal((await stat(join(dir, 'root-key.pem'))).mode & 0o777, 0o600);
  assert.equal(await fileExists(join(dir, 'next-root-key.pem')), false, "the old root's key is gone");
  const after = await CertificateAuthority.loadOrCreate({ dir });
  assert.equal(after.signingRoot().fingerprint256, newRoot);
  assert.equal(after.trustedRoots().length, 1);
  // A finished rotation does not block the next one.
  const again = new RootRotation({ ca: after, mesh: new Proxies(), expected: new Proxies(), log: SILENT });
  await again.start();
  await phaseOf(again, 'complete');
  assert.notEqual(after.signingRoot().fingerprint256, newRoot);
});

test('a plugged-in CA is not rotated by Trellis', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-rotation-'));
  const root = await makeRoot('Operator Root');
  const inter = await makeIntermediate(root, 'Operator Intermediate');
  await writeIstioCacerts(dir, {
    caCert: inter.pem,
    caKey: inter.keyPem,
    rootCert: root.pem,
    certChain: `${inter.pem}${root.pem}`,
  });
  const ca = await CertificateAuthority.loadOrCreate({ dir: join(dir, 'unused'), pluggedDir: dir });
  assert.equal(ca.signingRoot().fingerprint256, new X509Certificate(root.pem).fingerprint256);
  const p = new Proxies();
  const rotation = new RootRotation({ ca, mesh: p, expected: p, log: SILENT });
  await assert.rejects(rotation.start(), { code: 'TRL_CA_ROTATION_PLUGGED' });
});
