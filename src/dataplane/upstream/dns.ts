// DNS clusters (ServiceEntry resolution DNS and DNS_ROUND_ROBIN): the snapshot names endpoints by
// host name and the proxy resolves them, as Envoy's STRICT_DNS and LOGICAL_DNS clusters do. Before a
// snapshot is applied its names are resolved, so the clusters it builds have addresses; each name is
// resolved again every refresh interval (bounded below and above), and when its addresses change the
// proxy applies its snapshot again. A failed refresh keeps the last good addresses, as Envoy does.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { Cluster, Endpoint, ProxySnapshot } from '../../compile/snapshot.ts';
import { errorMessage } from '../../lib/errors.ts';

/** A name is never resolved more often than this, nor less often. */
export const DNS_REFRESH_BOUNDS_MS = { min: 1000, max: 60_000 };

interface Name {
  addresses: string[];
  error?: string;
  refreshMs: number;
  timer?: NodeJS.Timeout;
}

export class DnsResolver {
  private readonly names = new Map<string, Name>();
  private readonly changed: () => void;
  private readonly resolveName: (name: string) => Promise<string[]>;

  /** `changed` runs when a refresh finds other addresses: the proxy applies its snapshot again. */
  constructor(changed: () => void, resolveName = resolveAll) {
    this.changed = changed;
    this.resolveName = resolveName;
  }

  /** The snapshot with each DNS cluster's names replaced by their addresses; the snapshot itself if none. */
  async resolve(snapshot: ProxySnapshot): Promise<ProxySnapshot> {
    const wanted = new Map<string, number>();
    for (const c of snapshot.clusters) {
      if (!c.dns) continue;
      const refresh = Math.min(
        Math.max(c.dns.refreshMs, DNS_REFRESH_BOUNDS_MS.min),
        DNS_REFRESH_BOUNDS_MS.max,
      );
      for (const e of c.endpoints)
        if (net.isIP(e.address) === 0)
          wanted.set(e.address, Math.min(wanted.get(e.address) ?? refresh, refresh));
    }
    for (const [name, n] of this.names) {
      if (wanted.has(name)) continue;
      clearTimeout(n.timer);
      this.names.delete(name);
    }
    if (wanted.size === 0) return snapshot;
    await Promise.all(
      [...wanted].map(async ([name, refreshMs]) => {
        const known = this.names.get(name);
        if (known) {
          known.refreshMs = refreshMs;
          return;
        }
        const n: Name = { addresses: [], refreshMs };
        this.names.set(name, n);
        await this.lookup(name, n);
        this.schedule(name, n);
      }),
    );
    return { ...snapshot, clusters: snapshot.clusters.map((c) => (c.dns ? this.expand(c) : c)) };
  }

  close(): void {
    for (const n of this.names.values()) clearTimeout(n.timer);
    this.names.clear();
  }

  private expand(c: Cluster): Cluster {
    const endpoints: Endpoint[] = [];
    for (const e of c.endpoints) {
      if (net.isIP(e.address) !== 0) {
        endpoints.push(e);
        continue;
      }
      const addresses = this.names.get(e.address)?.addresses ?? [];
      // LOGICAL: the first address only, which changes as DNS answers change.
      for (const address of c.dns!.mode === 'LOGICAL' ? addresses.slice(0, 1) : addresses)
        endpoints.push({ ...e, address });
    }
    return { ...c, endpoints };
  }

  private async lookup(name: string, n: Name): Promise<boolean> {
    try {
      const addresses = await this.resolveName(name);
      const changed = addresses.join() !== n.addresses.join();
      n.addresses = addresses;
      n.error = undefined;
      return changed;
    } catch (err) {
      n.error = errorMessage(err);
      return false;
    }
  }

  private schedule(name: string, n: Name): void {
    n.timer = setTimeout(async () => {
      if (this.names.get(name) !== n) return;
      const changed = await this.lookup(name, n);
      if (this.names.get(name) !== n) return;
      this.schedule(name, n);
      if (changed) this.changed();
    }, n.refreshMs);
    n.timer.unref();
  }
}

/** Every address of a name, as the system resolver (hosts file included) answers, duplicates dropped. */
async function resolveAll(name: string): Promise<string[]> {
  const answers = await lookup(name, { all: true, order: 'verbatim' });
  return [...new Set(answers.map((a) => a.address))];
}
