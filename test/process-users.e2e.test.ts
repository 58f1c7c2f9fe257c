// `trellis up` as root runs every app and every proxy as an unprivileged user of its own: an app cannot
// read the CA key or the admin credential, and one workload's proxy cannot read another's token.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Mesh } from './support/mesh.ts';

const asRoot = process.getuid?.() === 0;

/** An app that tries to read whatever file it is asked for (GET /read?file=...) and says how it went. */
const PROBE = `
import { readFileSync } from 'node:fs';
import http from 'node:http';
http.createServer((req, res) => {
  const file = new URL(req.url, 'http://x').searchParams.get('file');
  let result = 'read';
  if (file) try { readFileSync(file); } catch (e) { result = e.code; }
  res.end(JSON.stringify({ result, uid: process.getuid() }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const workload = (name: string) => `
apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: ${name}}
spec:
  command: node
  args: [probe.mjs]
  labels: {app: ${name}}
  serviceAccount: ${name}
  ports: [{name: http, port: 8080, protocol: HTTP}]
`;

let mesh: Mesh | undefined;
after(async () => mesh?.down());

async function uidOf(pidFile: string): Promise<number> {
  const pid = (await readFile(pidFile, 'utf8')).trim();
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
}

/** Whether the user `uid` can read `file`, tried by a real process running as that user. */
function canRead(uid: number, file: string): boolean {
  const gid = Number(
    spawnSync('id', ['-g', String(uid)])
      .stdout.toString()
      .trim(),
  );
  const r = spawnSync(process.execPath, ['-e', `require('node:fs').readFileSync(${JSON.stringify(file)})`], {
    uid,
    gid,
  });
  return r.status === 0;
}

test('apps and proxies run as their own users and cannot read what is not theirs', {
  skip: asRoot ? false : 'needs root: trellis up separates users only when it runs as root (CI runs as root)',
  timeout: 120_000,
}, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-users-'));
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'probe.mjs'), PROBE);
  await writeFile(path.join(dir, 'mesh.yaml'), `${workload('alpha')}---${workload('beta')}`);
  mesh = await Mesh.up(dir);
  const state = (...p: string[]) => path.join(mesh!.stateDir, ...p);
  const appPort = mesh.info.instances.find((i) => i.id === 'alpha-0.default')?.appPort;
  const probe = async (file: string) =>
    (await (await fetch(`http://127.0.0.1:${appPort}/read?file=${encodeURIComponent(file)}`)).json()) as {
      result: string;
      uid: number;
    };
  const token = (id: string) => state('proxies', `${id}-0.default.token`);

  const app = await uidOf(state('pids', 'alpha-0.default.app.pid'));
  assert.equal((await probe('')).uid, app);
  assert.equal((await probe(state('ca', 'root-key.pem'))).result, 'EACCES', 'the app cannot read the CA key');
  assert.equal((await probe(state('admin-token'))).result, 'EACCES', 'nor the admin credential');
  assert.equal((await probe(token('alpha'))).result, 'EACCES', "nor its own proxy's token");
  assert.equal((await probe(token('beta'))).result, 'EACCES', "nor another proxy's token");
  assert.equal(
    (await probe(state('trust-bundle.pem'))).result,
    'read',
    'control: the trust bundle is public',
  );

  const alphaProxy = await uidOf(state('pids', 'alpha-0.default.proxy.pid'));
  const betaProxy = await uidOf(state('pids', 'beta-0.default.proxy.pid'));
  assert.equal(new Set([0, alphaProxy, betaProxy, app]).size, 4, 'root, two proxies and the app: four users');
  assert.equal(canRead(alphaProxy, token('alpha')), true, 'a proxy reads its own token');
  assert.equal(canRead(alphaProxy, token('beta')), false, "a proxy cannot read another proxy's token");
  assert.equal(canRead(alphaProxy, state('ca', 'root-key.pem')), false, 'nor the CA key');
  assert.equal(canRead(alphaProxy, state('admin-token')), false, 'nor the admin credential');
});
