// Workload instances, as their proxies announce them (cf. Istio's WorkloadEntry auto-registration).
// An instance leaves the moment its proxy's stream closes. The set is persisted so that after a
// control-plane restart the first snapshots still carry every endpoint; restored instances whose proxy
// does not come back within the grace period are dropped.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ProxyNode } from '../../compile/snapshot.ts';
import type { Logger } from '../../lib/log.ts';

interface Entry {
  node: ProxyNode;
  /** The push stream that registered it. */
  owner?: object;
  /** Restored from disk, its proxy not reconnected yet. */
  restored: boolean;
}

export class Registry {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners: (() => void)[] = [];
  private readonly file?: string;
  private readonly log: Logger;
  private saving = Promise.resolve();
  private persistQueued = false;
  private graceTimer?: NodeJS.Timeout;

  constructor(opts: { stateDir?: string; log: Logger }) {
    this.file = opts.stateDir ? path.join(opts.stateDir, 'registry.json') : undefined;
    this.log = opts.log;
  }

  async restore(graceMs: number): Promise<void> {
    if (!this.file) return;
    let nodes: ProxyNode[];
    try {
      nodes = JSON.parse(await readFile(this.file, 'utf8')) as ProxyNode[];
    } catch {
      return;
    }
    for (const node of nodes) this.entries.set(node.id, { node, restored: true });
    if (nodes.length)
      this.log.info('registry restored; waiting for proxies to reconnect', {
        instances: nodes.length,
        graceMs,
      });
    this.graceTimer = setTimeout(() => {
      let dropped = 0;
      for (const [id, e] of this.entries) {
        if (e.restored) {
          this.entries.delete(id);
          dropped++;
        }
      }
      if (dropped) {
        this.log.info('dropped instances whose proxies did not reconnect', { dropped });
        this.changed();
      }
    }, graceMs);
    this.graceTimer.unref();
  }

  upsert(node: ProxyNode, owner: object): void {
    this.entries.set(node.id, { node, owner, restored: false });
    this.changed();
  }

  remove(id: string, owner: object): void {
    // A proxy that reconnected already replaced the entry; the old stream's close must not remove it.
    if (this.entries.get(id)?.owner !== owner) return;
    this.entries.delete(id);
    this.changed();
  }

  setHealth(id: string, healthy: boolean): void {
    const e = this.entries.get(id);
    if (!e || e.node.healthy === healthy) return;
    e.node = { ...e.node, healthy };
    this.changed();
  }

  get(id: string): ProxyNode | undefined {
    return this.entries.get(id)?.node;
  }

  list(): ProxyNode[] {
    return [...this.entries.values()].map((e) => e.node);
  }

  onChange(l: () => void): void {
    this.listeners.push(l);
  }

  private changed(): void {
    for (const l of this.listeners) l();
    this.persist();
  }

  /**
   * Writes the registry after the write in progress, if any. Changes that arrive meanwhile share one
   * write of the then-current list, so a burst of connections costs a few writes, not one per proxy.
   */
  private persist(): void {
    const file = this.file;
    if (!file || this.persistQueued) return;
    this.persistQueued = true;
    this.saving = this.saving.then(async () => {
      this.persistQueued = false;
      const text = JSON.stringify(this.list());
      try {
        await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
        await writeFile(`${file}.tmp`, text, { mode: 0o600 });
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.log.warn('could not persist registry', { error: String(err) });
      }
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.graceTimer);
    await this.saving;
  }
}
