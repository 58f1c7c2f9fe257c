// The proxy's link to the control plane: certificate (CSR, rotation at half-life) and the push stream
// (hello, snapshots and deltas, ACK/NACK, health). When the control plane is away the proxy keeps
// serving its last good snapshot and reconnects with backoff and jitter.
// Trust: the root given at start only bootstraps. From the first certificate on, the proxy trusts the
// bundle the control plane sends (with the certificate, then on the push stream), for its peers and
// for the control plane itself, so a root rotation moves it to the new root and off the old one.
import http2, { type ClientHttp2Session } from 'node:http2';
import type { ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import { backoffDelay } from '../../lib/backoff.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { chainRootPem, pemCertificates } from '../../lib/trust-chain.ts';
import type {
  CertificateResponse,
  ClusterCounters,
  ControlPlaneMessage,
  Ejection,
  ProxyMessage,
  TrustBundle,
} from '../../push/protocol.ts';
import { applyDelta, CERTIFICATE_PATH, LineBuffer, PUSH_PATH } from '../../push/protocol.ts';
import { certValidity, rotationDelayMs } from '../identity/cert.ts';
import { generateKeyAndCsr } from '../identity/csr.ts';
import type { CredentialStore } from './credentials.ts';
import { postToControlPlane } from './post.ts';

const KEEPALIVE_MS = 10_000;

export interface AgentOptions {
  /** `https://127.0.0.1:15012` */
  controlPlane: string;
  rootCertPem: string;
  /**
   * The bootstrap token the platform gave this proxy alone: it gets the first certificate, and on the
   * push stream it names the instance whose platform record the control plane registers.
   */
  token?: string;
  node: ProxyNode;
  identity: string;
  creds: CredentialStore;
  /** Applies a snapshot; throws to NACK it. */
  apply(snapshot: ProxySnapshot): Promise<void>;
  log: Logger;
}

export class Agent {
  private readonly o: AgentOptions;
  private session?: ClientHttp2Session;
  private stream?: http2.ClientHttp2Stream;
  private stopped = false;
  private attempt = 0;
  private rotation?: NodeJS.Timeout;
  private reconnect?: NodeJS.Timeout;
  /** Once the push stream has sent a trust bundle, it alone decides; certificate responses' may be older. */
  private trustFromStream = false;
  private renewing?: Promise<void>;
  /** The snapshot applied last: what the proxy runs, and the base of the deltas it gets. */
  running?: ProxySnapshot;
  connected = false;

  constructor(o: AgentOptions) {
    this.o = o;
  }

  /** Resolves once the proxy holds a certificate. */
  async start(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.renewCertificate();
        break;
      } catch (err) {
        this.o.log.warn('certificate request failed; retrying', { error: errorMessage(err) });
        await sleep(backoffDelay(attempt));
      }
    }
  }

  /** The roots the control plane's serving certificate is checked against. */
  private controlPlaneTrust(): string {
    return this.o.creds.has() ? this.o.creds.get().trustBundlePem : this.o.rootCertPem;
  }

  /** One renewal at a time: a rotation's "renew now" during a scheduled renewal waits for it. */
  private renewCertificate(): Promise<void> {
    this.renewing ??= this.requestCertificate().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async requestCertificate(): Promise<void> {
    const { keyPem, csrPem } = await generateKeyAndCsr(this.o.identity);
    const body = JSON.stringify({
      csr: csrPem,
      namespace: this.o.node.namespace,
      serviceAccount: this.o.node.serviceAccount,
    });
    // Authenticate with the current certificate while it is valid, else with the bootstrap token. A
    // certificate the control plane no longer trusts (a root retired while this proxy was away) is
    // refused; the token, bound to the same identity, then gets a new one.
    const c = this.o.creds.has() ? this.o.creds.get() : undefined;
    const post = (auth: { key: string; cert: string } | { token?: string }) =>
      postToControlPlane(this.o.controlPlane, this.controlPlaneTrust(), CERTIFICATE_PATH, body, auth);
    let res: string;
    if (c && c.notAfter.getTime() > Date.now()) {
      try {
        res = await post({ key: c.keyPem, cert: c.certChainPem });
      } catch (err) {
        if (!this.o.token) throw err;
        this.o.log.warn('renewal with the current certificate failed; using the bootstrap token', {
          error: errorMessage(err),
        });
        res = await post({ token: this.o.token });
      }
    } else res = await post({ token: this.o.token });
    const { certChain, trustBundle } = JSON.parse(res) as CertificateResponse;
    const { notBefore, notAfter } = certValidity(certChain);
    this.o.creds.set({
      keyPem,
      certChainPem: certChain,
      trustBundlePem: this.trustFromStream && c ? c.trustBundlePem : trustBundle,
      identity: this.o.identity,
      notBefore,
      notAfter,
    });
    this.o.log.info('certificate issued', { identity: this.o.identity, notAfter: notAfter.toISOString() });
    this.send({ type: 'certificate', certChain });
    this.scheduleRotation();
  }

  /**
   * A trust bundle from the push stream: installed before it is ACKed (the control plane waits for
   * every ACK before anything is signed by a new root); a certificate from another root than the one
   * the CA signs with now is renewed at once, not at half-life.
   */
  private onTrust(trust: TrustBundle): void {
    const roots = pemCertificates(trust.bundle ?? '');
    if (roots.length === 0 || !roots.some((r) => r.fingerprint256 === trust.signingRoot)) {
      // An empty or inconsistent bundle would make every peer untrusted: keep the one in use.
      this.o.log.warn('ignoring a trust bundle without its signing root', { version: trust.version });
      return;
    }
    this.trustFromStream = true;
    if (this.o.creds.get().trustBundlePem !== trust.bundle) {
      this.o.creds.setTrustBundle(trust.bundle);
      this.o.log.info('trust bundle installed', { version: trust.version, roots: roots.length });
    }
    this.send({ type: 'trust-ack', version: trust.version });
    const mine = chainRootPem(this.o.creds.get().certChainPem, trust.bundle);
    if (mine?.fingerprint256 !== trust.signingRoot) {
      this.o.log.info('certificate is not from the signing root; renewing now', {
        signingRoot: trust.signingRoot,
      });
      clearTimeout(this.rotation);
      this.rotate(0);
    }
  }

  private scheduleRotation(): void {
    clearTimeout(this.rotation);
    const c = this.o.creds.get();
    this.rotation = setTimeout(() => this.rotate(0), rotationDelayMs(c.notBefore, c.notAfter));
    this.rotation.unref();
  }

  private rotate(attempt: number): void {
    if (this.stopped) return;
    this.renewCertificate().catch((err) => {
      this.o.log.warn('certificate rotation failed; retrying', { error: errorMessage(err) });
      this.rotation = setTimeout(() => this.rotate(attempt + 1), backoffDelay(attempt, 100, 2000));
      this.rotation.unref();
    });
  }

  /** Opens the push stream; it reconnects by itself until stop(). */
  connect(): void {
    if (this.stopped) return;
    const { keyPem, certChainPem } = this.o.creds.get();
    const session = http2.connect(this.o.controlPlane, {
      ca: this.controlPlaneTrust(),
      key: keyPem,
      cert: certChainPem,
    });
    this.session = session;
    session.on('error', () => {});
    session.on('close', () => {
      clearInterval(keepalive);
      this.disconnected();
    });
    // A control plane that vanished without closing the connection is noticed by a missed ping.
    const keepalive = setInterval(() => {
      // Between a destroy and its 'close' event the timer may still fire; ping would throw.
      if (session.destroyed) return;
      session.ping((err) => {
        if (err) session.destroy(err);
      });
    }, KEEPALIVE_MS);
    keepalive.unref();
    const stream = session.request({
      ':method': 'POST',
      ':path': PUSH_PATH,
      'content-type': 'application/x-ndjson',
      ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
    });
    this.stream = stream;
    stream.on('error', () => {});
    stream.on('response', (h) => {
      if (Number(h[':status']) !== 200) {
        this.o.log.warn('push stream refused', { status: h[':status'] });
        return void session.destroy();
      }
      this.connected = true;
      this.attempt = 0;
      this.o.log.info('connected to control plane', { controlPlane: this.o.controlPlane });
    });
    this.send({ type: 'hello', node: this.o.node, running: this.running?.version });
    this.send({ type: 'certificate', certChain: certChainPem });
    if (this.upstream) this.send(this.upstream);
    const lines = new LineBuffer();
    let chain = Promise.resolve();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      // Snapshots apply one at a time, in order.
      for (const line of lines.push(chunk)) chain = chain.then(() => this.onMessage(line));
    });
    stream.on('close', () => session.destroy());
  }

  private async onMessage(line: string): Promise<void> {
    let msg: ControlPlaneMessage;
    try {
      msg = JSON.parse(line) as ControlPlaneMessage;
    } catch {
      this.o.log.warn('ignoring malformed message from control plane');
      return;
    }
    if (msg.type === 'trust') return this.onTrust(msg.trust);
    if (msg.type !== 'snapshot' && msg.type !== 'delta') return;
    const version = msg.type === 'snapshot' ? msg.snapshot.version : msg.delta.version;
    if (version === this.running?.version) {
      // After a reconnect the control plane resends what we run: nothing to rebuild.
      this.send({ type: 'ack', version });
      return;
    }
    try {
      const snap = msg.type === 'snapshot' ? msg.snapshot : applyDelta(this.running, msg.delta);
      await this.o.apply(snap);
      this.running = snap;
      this.send({ type: 'ack', version });
    } catch (err) {
      const reason = errorMessage(err);
      this.o.log.warn('snapshot rejected; keeping the previous one', { version, reason });
      this.send({ type: 'nack', version, reason });
    }
  }

  private send(msg: ProxyMessage): void {
    if (this.stream && !this.stream.closed) this.stream.write(`${JSON.stringify(msg)}\n`);
  }

  /** The latest report, sent again after a reconnect. */
  private upstream: Extract<ProxyMessage, { type: 'upstream' }> | undefined;

  reportUpstream(ejections: Ejection[], clusters: Record<string, ClusterCounters>): void {
    this.upstream = { type: 'upstream', ejections, clusters };
    this.send(this.upstream);
  }

  reportHealth(healthy: boolean): void {
    if (this.o.node.healthy === healthy) return;
    this.o.node.healthy = healthy;
    this.send({ type: 'health', healthy });
  }

  private disconnected(): void {
    if (this.connected) this.o.log.warn('lost control plane; serving the last snapshot');
    this.connected = false;
    this.stream = undefined;
    if (this.stopped) return;
    clearTimeout(this.reconnect);
    this.reconnect = setTimeout(() => this.connect(), backoffDelay(this.attempt++, 100, 3000));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.rotation);
    clearTimeout(this.reconnect);
    this.session?.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
