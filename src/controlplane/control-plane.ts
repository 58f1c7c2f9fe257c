// The control-plane process, assembled: store, CA, registry, push, the proxies' TLS door and the API.
// Everything lives in the state directory, so a restart loses nothing.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { createApiServer } from './api-server.ts';
import { CertificateAuthority, type ServingCert } from './ca/ca.ts';
import { RootRotation } from './ca/rotation.ts';
import { CredentialStore } from './credentials.ts';
import { JwksResolver } from './jwks.ts';
import { createProxyServer } from './proxy-server.ts';
import { PushServer } from './push/push.ts';
import { PlatformInstances } from './registry/instances.ts';
import { Registry } from './registry/registry.ts';
import { FileStore } from './store/file.ts';

export interface ControlPlaneOptions {
  stateDir: string;
  host: string;
  apiPort: number;
  xdsPort: number;
  trustDomain: string;
  workloadCertTtlMs?: number;
  /** Istio `cacerts` layout: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem. */
  pluggedCaDir?: string;
  /** The least time a root rotation spends in each phase (default 0: as soon as every proxy is ready). */
  caRotationSoakMs?: number;
  /** How long restored registry entries wait for their proxies. */
  registryGraceMs?: number;
  /** How often remote JWKS are refreshed (Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, 20 min). */
  jwksRefreshMs?: number;
  /** The first retry after a failed JWKS fetch (doubling up to the refresh interval). */
  jwksRetryMs?: number;
  version: string;
  log: Logger;
}

/** Written to `<state>/control-plane.json` for the CLI and the local runtime. */
export interface ControlPlaneInfo {
  pid: number;
  api: string;
  xds: string;
  /** The trust bundle (every root proxies must trust). */
  rootCert: string;
  /** The API's admin credential (mode 0600): whoever can read it can change the mesh. */
  adminTokenFile: string;
}

export interface RunningControlPlane {
  info: ControlPlaneInfo;
  push: PushServer;
  close(): Promise<void>;
}

async function writeAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  await writeFile(`${file}.tmp`, text, { mode });
  await rename(`${file}.tmp`, file);
}

/** The admin credential, created once and kept: operators and scripts hold on to it. */
async function adminToken(file: string, log: Logger): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const token = randomBytes(32).toString('base64url');
    await writeAtomic(file, `${token}\n`);
    return token;
  }
  // Like ssh with a private key: a credential others can read is no credential; it is closed again.
  if (((await stat(file)).mode & 0o077) !== 0) {
    log.warn('the admin credential was readable by others; its mode is now 0600', { file });
    await chmod(file, 0o600);
  }
  const token = text.trim();
  if (token.length < 16)
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${file} holds no usable credential: delete it to get a new one`,
    );
  return token;
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<RunningControlPlane> {
  await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const log = o.log;
  const store = await FileStore.open(path.join(o.stateDir, 'store'), { logger: log });
  const ca = await CertificateAuthority.loadOrCreate({
    dir: path.join(o.stateDir, 'ca'),
    trustDomain: o.trustDomain,
    pluggedDir: o.pluggedCaDir,
    workloadCertTtlMs: o.workloadCertTtlMs,
  });
  const registry = new Registry({ stateDir: o.stateDir, log });
  await registry.restore(o.registryGraceMs ?? 10_000);
  const jwks = new JwksResolver({ log, refreshMs: o.jwksRefreshMs, retryMs: o.jwksRetryMs });
  const credentials = new CredentialStore(path.join(o.stateDir, 'credentials'), log);
  const push = new PushServer({
    store,
    registry,
    mesh: { trustDomain: ca.trustDomain },
    log,
    jwks,
    credentials,
    trust: ca,
  });
  const instances = await PlatformInstances.open(o.stateDir);
  const adminTokenFile = path.join(o.stateDir, 'admin-token');
  const token = await adminToken(adminTokenFile, log);
  const issueServing = () =>
    ca.issueServingCert({
      dnsNames: ['localhost', 'trellis-control-plane'],
      ipAddresses: ['127.0.0.1', '::1'],
      identity: { namespace: 'trellis-system', serviceAccount: 'trellis-control-plane' },
      ttlMs: 365 * 24 * 3600 * 1000,
    });
  let serving: ServingCert = await issueServing();
  let servingRoot = ca.signingRoot().fingerprint256;
  const xds = createProxyServer({
    ca,
    push,
    instances,
    serving,
    workloadCertTtlMs: o.workloadCertTtlMs,
    log,
  });
  const rotation = new RootRotation({
    ca,
    mesh: push,
    expected: registry,
    log,
    soakMs: o.caRotationSoakMs,
  });
  const api = createApiServer({
    store,
    push,
    registry,
    instances,
    ca: rotation,
    adminToken: token,
    version: o.version,
    log,
  });
  let tlsUpdate = Promise.resolve();
  const close = async () => {
    rotation.close();
    await tlsUpdate;
    push.close();
    credentials.close();
    await Promise.all([closeQuietly(api), closeQuietly(xds)]);
    api.closeAllConnections();
    await registry.close();
    await store.close();
  };
  try {
    await listen(xds, o.xdsPort, o.host, 'proxy (xds)');
    await listen(api, o.apiPort, o.host, 'API');
  } catch (err) {
    // Nothing half-started stays behind: the store lock is released and the process can exit.
    await close();
    throw err;
  }
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  // Published for proxies and users, apart from the CA's own files, which it alone reads and writes.
  const rootCert = path.join(o.stateDir, 'trust-bundle.pem');
  await writeAtomic(rootCert, ca.trustBundlePem(), 0o644);
  // A rotation's phase change: proxies get the new bundle on their streams, proxies started from now
  // on read it from the file, and once a new root signs, the proxies' door presents a certificate
  // from it (proxies hold the bundle with both roots by then). Serialized: the last change wins.
  ca.onChange(() => {
    push.pushTrust();
    tlsUpdate = tlsUpdate
      .then(async () => {
        if (servingRoot !== ca.signingRoot().fingerprint256) {
          serving = await issueServing();
          servingRoot = ca.signingRoot().fingerprint256;
          log.info('control plane serving certificate re-issued', { root: servingRoot });
        }
        xds.setSecureContext({ key: serving.keyPem, cert: serving.certChainPem, ca: ca.trustBundlePem() });
        await writeAtomic(rootCert, ca.trustBundlePem(), 0o644);
      })
      .catch((err: unknown) => log.error('cannot switch to the new trust bundle', { error: String(err) }));
  });
  const info: ControlPlaneInfo = {
    pid: process.pid,
    api: `http://${host}:${(api.address() as AddressInfo).port}`,
    xds: `https://${host}:${(xds.address() as AddressInfo).port}`,
    rootCert,
    adminTokenFile,
  };
  await writeAtomic(path.join(o.stateDir, 'control-plane.json'), `${JSON.stringify(info, null, 2)}\n`);
  log.info('control plane ready', {
    api: info.api,
    xds: info.xds,
    trustDomain: ca.trustDomain,
    revision: store.revision,
  });
  return { info, push, close };
}

function closeQuietly(server: Server | Http2SecureServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

function listen(server: Server | Http2SecureServer, port: number, host: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new TrellisError(
          'TRL_LISTEN',
          `cannot listen for the ${what} on ${host}:${port}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (is another control plane running? pick another port)' : ''}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
}
