// A snapshot turned into runtime structures. Everything that can fail (regexes, dangling references)
// fails here, when the snapshot is applied, so a bad snapshot is NACKed and the previous one keeps
// serving; nothing on the request path compiles or validates.
import type { InboundListener, ProxySnapshot } from '../compile/snapshot.ts';
import { SNAPSHOT_SCHEMA_VERSION } from '../compile/snapshot.ts';
import { errorMessage, TrellisError } from '../lib/errors.ts';
import { CompiledRouteTable } from './http/route-table.ts';
import { ClusterRuntime } from './upstream/cluster.ts';

export class ProxyConfig {
  readonly snapshot: ProxySnapshot;
  readonly routeTables = new Map<string, CompiledRouteTable>();
  readonly clusters = new Map<string, ClusterRuntime>();
  /** `host:port` → workload port, from the SNI the client proxy sent. */
  readonly inboundByService = new Map<string, number>();
  readonly inbound?: InboundListener;

  private constructor(snapshot: ProxySnapshot) {
    this.snapshot = snapshot;
    this.inbound = snapshot.listeners.find((l): l is InboundListener => l.type === 'inbound');
  }

  static build(snapshot: ProxySnapshot): ProxyConfig {
    const reject = (msg: string): never => {
      throw new TrellisError('TRL_SNAPSHOT_REJECTED', `snapshot ${snapshot.version}: ${msg}`);
    };
    if (snapshot.schema !== SNAPSHOT_SCHEMA_VERSION) {
      reject(
        `schema ${snapshot.schema} is not supported by this proxy (supports ${SNAPSHOT_SCHEMA_VERSION})`,
      );
    }
    const cfg = new ProxyConfig(snapshot);
    for (const c of snapshot.clusters) cfg.clusters.set(c.name, new ClusterRuntime(c));
    for (const table of snapshot.routeTables) {
      for (const vh of table.virtualHosts) {
        for (const r of vh.routes) {
          if (r.action.type !== 'forward') continue;
          for (const w of r.action.clusters) {
            if (!cfg.clusters.has(w.cluster))
              reject(`route ${r.name} refers to unknown cluster ${w.cluster}`);
          }
        }
      }
      try {
        cfg.routeTables.set(table.name, new CompiledRouteTable(table));
      } catch (err) {
        reject(`route table ${table.name}: ${errorMessage(err)}`);
      }
    }
    for (const l of snapshot.listeners) {
      if ((l.type === 'outbound' || l.type === 'gateway') && !cfg.routeTables.has(l.routeTable)) {
        reject(`listener ${l.name} refers to unknown route table ${l.routeTable}`);
      }
    }
    for (const s of cfg.inbound?.services ?? [])
      cfg.inboundByService.set(`${s.host}:${s.port}`, s.targetPort);
    return cfg;
  }
}
