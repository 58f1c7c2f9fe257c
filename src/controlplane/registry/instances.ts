// The platform's record of every workload instance it started (cf. a Kubernetes pod and its service
// account token): who the instance is (namespace, service account, workload), its labels, ports and
// address, and the bootstrap credential its proxy alone was given. The registry takes an instance from
// here, never from what its proxy claims; the CA issues a credential's holder only the identity it is
// bound to. Only token hashes are kept, so the file holding the records gives no one a credential.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import type { ProxyNode } from '../../compile/snapshot.ts';
import { TrellisError } from '../../lib/errors.ts';

/** What the platform decides about an instance: everything but its health, which its proxy probes. */
export type InstanceRecord = Omit<ProxyNode, 'healthy'>;

interface Stored {
  record: InstanceRecord;
  tokenSha256: string;
}

const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');

export class PlatformInstances {
  private readonly byId = new Map<string, Stored>();
  private readonly byHash = new Map<string, Stored>();
  private readonly file?: string;
  private saving = Promise.resolve();
  /** The write not started yet; registrations meanwhile share it (a rollout costs a few writes). */
  private queued?: Promise<void>;

  private constructor(file?: string) {
    this.file = file;
  }

  /** Loads `<stateDir>/instances.json` (if any), so a restarted control plane still knows every proxy. */
  static async open(stateDir?: string): Promise<PlatformInstances> {
    const instances = new PlatformInstances(stateDir ? path.join(stateDir, 'instances.json') : undefined);
    if (!instances.file) return instances;
    let stored: Stored[] = [];
    try {
      stored = JSON.parse(await readFile(instances.file, 'utf8')) as Stored[];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new TrellisError('TRL_STORE', `cannot read ${instances.file}: ${String(err)}`);
    }
    for (const s of stored) instances.put(s);
    return instances;
  }

  /**
   * Records an instance and returns a new bootstrap token bound to it. Registering an id again
   * replaces its record and revokes the token given before.
   */
  async register(record: InstanceRecord): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const old = this.byId.get(record.id);
    if (old) this.byHash.delete(old.tokenSha256);
    this.put({ record, tokenSha256: sha256(token) });
    await this.persist();
    return token;
  }

  async remove(id: string): Promise<boolean> {
    const old = this.byId.get(id);
    if (!old) return false;
    this.byId.delete(id);
    this.byHash.delete(old.tokenSha256);
    await this.persist();
    return true;
  }

  /** The instance a bootstrap token was given to. */
  byToken(token: string): InstanceRecord | undefined {
    return this.byHash.get(sha256(token))?.record;
  }

  list(): InstanceRecord[] {
    return [...this.byId.values()].map((s) => s.record);
  }

  private put(s: Stored): void {
    this.byId.set(s.record.id, s);
    this.byHash.set(s.tokenSha256, s);
  }

  /** Resolves once a write holding every change made so far is on disk. */
  private persist(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    if (!this.queued) {
      this.queued = this.saving.then(async () => {
        this.queued = undefined;
        await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
        await writeFile(`${file}.tmp`, JSON.stringify([...this.byId.values()]), { mode: 0o600 });
        await rename(`${file}.tmp`, file);
      });
      this.saving = this.queued.catch(() => {});
    }
    return this.queued;
  }
}

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ID = /^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/;

/** An API body's instance, checked field by field; a bad one is refused with the field's path. */
export function parseInstanceRecord(value: unknown): InstanceRecord {
  const bad = (field: string, want: string): never => {
    throw new TrellisError('TRL_INVALID_ARGUMENT', `node${field && `.${field}`}: expected ${want}`);
  };
  const n = (value ?? {}) as Record<string, unknown>;
  if (typeof value !== 'object' || value === null) bad('', 'an object');
  if (typeof n.id !== 'string' || !ID.test(n.id)) bad('id', 'a proxy id such as reviews-v1-0.default');
  if (n.role !== 'sidecar' && n.role !== 'gateway') bad('role', '"sidecar" or "gateway"');
  for (const f of ['workload', 'namespace', 'serviceAccount']) {
    if (typeof n[f] !== 'string' || !NAME.test(n[f] as string)) bad(f, 'a DNS label');
  }
  if (typeof n.address !== 'string' || isIP(n.address) === 0) bad('address', 'an IP address');
  const labels = n.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels))
    bad('labels', 'a map of strings');
  for (const [k, v] of Object.entries(labels as object))
    if (typeof v !== 'string') bad(`labels.${k}`, 'a string');
  const isPort = (p: unknown) => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536;
  if (n.inboundPort !== undefined && !isPort(n.inboundPort)) bad('inboundPort', 'a port number');
  if (n.role === 'sidecar' && n.inboundPort === undefined)
    bad('inboundPort', 'the port the platform gave the sidecar');
  const ports = n.ports ?? [];
  if (!Array.isArray(ports)) bad('ports', 'a list of {name, port, protocol}');
  (ports as unknown[]).forEach((p, i) => {
    const q = (p ?? {}) as Record<string, unknown>;
    if (!isPort(q.port)) bad(`ports[${i}].port`, 'a port number');
    if (q.name !== undefined && typeof q.name !== 'string') bad(`ports[${i}].name`, 'a string');
    if (q.protocol !== undefined && typeof q.protocol !== 'string') bad(`ports[${i}].protocol`, 'a string');
  });
  const gatewayPorts = n.gatewayPorts;
  if (gatewayPorts !== undefined) {
    if (typeof gatewayPorts !== 'object' || gatewayPorts === null) bad('gatewayPorts', 'a map of ports');
    for (const [k, v] of Object.entries(gatewayPorts as object))
      if (!isPort(Number(k)) || !isPort(v)) bad(`gatewayPorts.${k}`, 'server port → host port');
  }
  return {
    id: n.id as string,
    role: n.role as ProxyNode['role'],
    workload: n.workload as string,
    namespace: n.namespace as string,
    serviceAccount: n.serviceAccount as string,
    labels: labels as Record<string, string>,
    address: n.address as string,
    inboundPort: n.inboundPort as number | undefined,
    ports: ports as ProxyNode['ports'],
    gatewayPorts: gatewayPorts as Record<string, number> | undefined,
  };
}

/** The fields in which a proxy's hello differs from the platform's record of it. */
export function mismatches(record: InstanceRecord, claimed: ProxyNode): string[] {
  const fields = [
    'id',
    'role',
    'workload',
    'namespace',
    'serviceAccount',
    'labels',
    'address',
    'inboundPort',
    'ports',
    'gatewayPorts',
  ] as const;
  return fields.filter((f) => canonical(record[f]) !== canonical(claimed[f]));
}

/** JSON with sorted keys and without undefined members: equal values, equal text. */
function canonical(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
