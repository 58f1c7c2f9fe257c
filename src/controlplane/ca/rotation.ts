// Root rotation without an outage: the mesh moves to a new root in phases, each entered only once every
// proxy is ready for it, so at no moment does a proxy present a certificate a peer cannot verify.
//   distributing: a new root joins the trust bundle; wait until every proxy has ACKed that bundle;
//   reissuing:    the new root signs (workloads and the control plane's serving certificate); every
//                 proxy renews at once; wait until every workload presents a certificate from it;
//   retiring:     the old root leaves the bundle; wait until every proxy has ACKed it; then the new
//                 root's files replace the old one's and the rotation is complete.
// "Every proxy" is every proxy the registry counts on, including those restored after a control-plane
// restart that have not reconnected yet: a restart mid-way never counts an empty mesh as a ready one.
import type { X509Certificate } from 'node:crypto';
import { TrellisError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { ProxyTrust } from '../push/push.ts';
import type { CertificateAuthority } from './ca.ts';
import { loadOrCreateRootPair } from './root.ts';
import {
  loadGeneratedCa,
  NEXT_ROOT_FILES,
  promoteNextRoot,
  type RotationPhase,
  type RotationRecord,
  readRotation,
  removeNextRoot,
  writeRotation,
} from './rotation-files.ts';

/** What the rotation waits on: the push server's view of every proxy, and the registry's ids. */
export interface MeshTrust {
  trustStatus(): ProxyTrust[];
  onTrustProgress(listener: () => void): void;
}
export interface ExpectedProxies {
  list(): { id: string }[];
  onChange(listener: () => void): void;
}

export interface RootInfo {
  fingerprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
}

export interface CaStatus {
  trustDomain: string;
  mode: 'generated' | 'plugged';
  /** The least time a rotation spends in each phase. */
  soakMs: number;
  signingRoot: RootInfo;
  trustBundle: { version: string; roots: RootInfo[] };
  /** The rotation under way, or the last one (phase complete), or null. */
  rotation: (RotationRecord & { waitingFor: { proxy: string; reason: string }[] }) | null;
  /** Connected proxies by the root of the certificate they present ("none": chains to no trusted root). */
  certificates: { root: string; proxies: number }[];
  proxies: {
    id: string;
    connected: boolean;
    trustBundle: 'current' | 'stale';
    certificateRoot?: string;
    notAfter?: string;
  }[];
}

const info = (c: X509Certificate): RootInfo => ({
  fingerprint: c.fingerprint256,
  subject: c.subject.replaceAll('\n', ', '),
  notBefore: c.validFromDate.toISOString(),
  notAfter: c.validToDate.toISOString(),
});

export class RootRotation {
  private readonly ca: CertificateAuthority;
  private readonly mesh: MeshTrust;
  private readonly expected: ExpectedProxies;
  private readonly log: Logger;
  private record: RotationRecord | undefined;
  /** Phase changes run one at a time; a check while one runs looks again when it is done. */
  private running?: Promise<void>;
  private starting = false;
  private readonly soakMs: number;
  private soak?: NodeJS.Timeout;

  /**
   * `soakMs`: each phase lasts at least this long, even when every proxy is ready sooner, for clients
   * outside the mesh that read trust-bundle.pem on their own schedule.
   */
  constructor(o: {
    ca: CertificateAuthority;
    mesh: MeshTrust;
    expected: ExpectedProxies;
    log: Logger;
    soakMs?: number;
  }) {
    this.soakMs = o.soakMs ?? 0;
    this.ca = o.ca;
    this.mesh = o.mesh;
    this.expected = o.expected;
    this.log = o.log;
    this.record = o.ca.rotation;
    o.mesh.onTrustProgress(() => this.check());
    o.expected.onChange(() => this.check());
    if (this.inProgress()) this.log.info('root rotation resumed', { ...this.record });
  }

  private inProgress(): boolean {
    return this.record !== undefined && this.record.phase !== 'complete';
  }

  /** Starts a rotation: a new root joins the trust bundle. Refused while one is under way. */
  async start(): Promise<CaStatus> {
    const dir = this.ca.dir;
    if (!dir)
      throw new TrellisError(
        'TRL_CA_ROTATION_PLUGGED',
        'the control plane signs with a plugged-in CA (--ca-dir): rotate its root in your PKI, as described in docs/tasks/ca-rotation.md#plugged-in-ca',
      );
    const refuse = (r: RotationRecord | undefined) =>
      new TrellisError(
        'TRL_CA_ROTATION_IN_PROGRESS',
        r
          ? `a root rotation is already under way (phase ${r.phase} since ${r.phaseSince}, to root ${r.to}): watch it with trellis ca status`
          : 'a root rotation is being started: watch it with trellis ca status',
      );
    if (this.starting) throw refuse(undefined);
    this.starting = true;
    try {
      return await this.begin(dir, refuse);
    } finally {
      this.starting = false;
    }
  }

  private async begin(dir: string, refuse: (r: RotationRecord) => TrellisError): Promise<CaStatus> {
    await this.running;
    // The file, not memory, decides: it is what a restart would resume.
    const current = await readRotation(dir);
    if (current && current.phase !== 'complete') throw refuse(current);
    await removeNextRoot(dir);
    const now = new Date();
    const next = await loadOrCreateRootPair(dir, NEXT_ROOT_FILES, this.ca.trustDomain, now);
    const from = this.ca.signingRoot().fingerprint256;
    const record: RotationRecord = {
      phase: 'distributing',
      startedAt: now.toISOString(),
      phaseSince: now.toISOString(),
      from,
      to: next.cert.fingerprint256,
    };
    await this.enter(record);
    this.check();
    return this.status();
  }

  /** Writes the phase, then loads the CA from the files as a restart would, and switches to it. */
  private async enter(record: RotationRecord): Promise<void> {
    const dir = this.ca.dir!;
    if (record.phase === 'complete') await promoteNextRoot(dir);
    await writeRotation(dir, record);
    if (record.phase === 'complete') await removeNextRoot(dir);
    const { material } = await loadGeneratedCa(dir, this.ca.trustDomain, new Date());
    this.record = record;
    this.ca.use(material);
    this.log.info('root rotation phase', { ...record });
  }

  close(): void {
    clearTimeout(this.soak);
  }

  /** Enters the next phase when every proxy is ready for it. */
  check(): void {
    if (!this.inProgress()) return;
    if (this.running) return;
    if (this.waitingFor().length > 0) return;
    const r = this.record!;
    const soakLeft = Date.parse(r.phaseSince) + this.soakMs - Date.now();
    if (soakLeft > 0) {
      clearTimeout(this.soak);
      this.soak = setTimeout(() => this.check(), soakLeft + 1);
      this.soak.unref();
      return;
    }
    const order: RotationPhase[] = ['distributing', 'reissuing', 'retiring', 'complete'];
    const phase = order[order.indexOf(r.phase) + 1];
    this.running = this.enter({ ...r, phase, phaseSince: new Date().toISOString() })
      .catch((err: unknown) =>
        this.log.error('root rotation cannot enter the next phase; it stays where it is', {
          phase,
          error: String(err),
        }),
      )
      .finally(() => {
        this.running = undefined;
        // The new phase may already be satisfied (e.g. no proxies): look again.
        setImmediate(() => this.check());
      });
  }

  /** Who holds the current phase back, and why. */
  private waitingFor(): { proxy: string; reason: string }[] {
    if (!this.inProgress()) return [];
    const r = this.record!;
    const trust = this.ca.trust();
    const byId = new Map(this.mesh.trustStatus().map((p) => [p.id, p]));
    const ids = new Set([...this.expected.list().map((p) => p.id), ...byId.keys()]);
    const out: { proxy: string; reason: string }[] = [];
    for (const id of [...ids].sort()) {
      const p = byId.get(id);
      if (!p) out.push({ proxy: id, reason: 'not connected (restored after a restart, or gone)' });
      else if (r.phase === 'reissuing' && p.certificate?.root !== r.to)
        out.push({
          proxy: id,
          reason: p.certificate
            ? `presents a certificate from ${p.certificate.root ?? 'no trusted root'}`
            : 'has not reported its certificate',
        });
      else if (r.phase !== 'reissuing' && p.trustAcked !== trust.version)
        out.push({ proxy: id, reason: `has not ACKed trust bundle ${trust.version}` });
    }
    return out;
  }

  status(): CaStatus {
    const trust = this.ca.trust();
    const live = this.mesh.trustStatus();
    const byRoot = new Map<string, number>();
    for (const p of live) {
      const root = p.certificate?.root ?? 'none';
      byRoot.set(root, (byRoot.get(root) ?? 0) + 1);
    }
    const connected = new Set(live.map((p) => p.id));
    const restored = this.expected
      .list()
      .filter((p) => !connected.has(p.id))
      .map((p) => ({ id: p.id, connected: false, trustBundle: 'stale' as const }));
    return {
      trustDomain: this.ca.trustDomain,
      soakMs: this.soakMs,
      mode: this.ca.dir ? 'generated' : 'plugged',
      signingRoot: info(this.ca.signingRoot()),
      trustBundle: { version: trust.version, roots: this.ca.trustedRoots().map(info) },
      rotation: this.record ? { ...this.record, waitingFor: this.waitingFor() } : null,
      certificates: [...byRoot].map(([root, proxies]) => ({ root, proxies })),
      proxies: [
        ...live.map((p) => ({
          id: p.id,
          connected: true,
          trustBundle: p.trustAcked === trust.version ? ('current' as const) : ('stale' as const),
          certificateRoot: p.certificate?.root,
          notAfter: p.certificate?.notAfter,
        })),
        ...restored,
      ].sort((a, b) => (a.id < b.id ? -1 : 1)),
    };
  }
}
