// A snapshot turned into runtime structures. Everything that can fail (regexes, dangling references)
// fails here, when the snapshot is applied, so a bad snapshot is NACKed and the previous one keeps
// serving; nothing on the request path compiles or validates.
import type { InboundListener, ProxySnapshot } from '../compile/snapshot.ts';
import { SNAPSHOT_SCHEMA_VERSION } from '../compile/snapshot.ts';
import { errorMessage, TrellisError } from '../lib/errors.ts';
import { CompiledRouteTable } from './http/route-table.ts';
import { ClusterRuntime } from './upstream/cluster.ts';
import { UpstreamState } from './upstream/state.ts';

export class ProxyConfig {
  readonly snapshot: ProxySnapshot;
  readonly routeTables = new Map<string, CompiledRouteTable>();
  readonly clusters = new Map<string, ClusterRuntime>();
  /** `host:port` → workload port, from the SNI the client proxy sent. */
  readonly inboundByService = new Map<string, number>();
  readonly inbound?: InboundListener;
  /** Every way a plaintext client may name an inbound service in its Host header → `host:port`. */
  private readonly plaintextHosts = new Map<string, string>();
  /** Whether any inbound port takes plaintext (PERMISSIVE): if none does, plaintext is cut at accept. */
  readonly acceptsPlaintext: boolean;

  private constructor(snapshot: ProxySnapshot) {
    this.snapshot = snapshot;
    this.inbound = snapshot.listeners.find((l): l is InboundListener => l.type === 'inbound');
    const modes = [this.inbound?.mtls, ...Object.values(this.inbound?.portMtls ?? {})];
    this.acceptsPlaintext = this.inbound !== undefined && modes.includes('PERMISSIVE');
  }

  /** The keys of the upstream state this config uses: the rest can go once it serves. */
  liveState(): { endpoints: Set<string>; clusters: Set<string> } {
    const endpoints = new Set<string>();
    for (const c of this.clusters.values()) for (const e of c.endpoints) endpoints.add(e.state.key);
    return { endpoints, clusters: new Set(this.clusters.keys()) };
  }

  /** The mTLS mode of a workload port: its port-level setting, else the workload's. */
  inboundMtls(port: number): 'STRICT' | 'PERMISSIVE' {
    return this.inbound?.portMtls?.[String(port)] ?? this.inbound?.mtls ?? 'STRICT';
  }

  /** The service a plaintext request names: `reviews`, `reviews.default`, … or the FQDN, port 80 implied. */
  inboundService(authority: string): string | undefined {
    return this.plaintextHosts.get(authority);
  }

  /**
   * `state` is the proxy's upstream state, which outlives snapshots: the new clusters' endpoints
   * pick up what the previous ones knew. Call `state.retain` with `liveState()` once this config is
   * the one serving.
   */
  static build(snapshot: ProxySnapshot, state: UpstreamState = new UpstreamState()): ProxyConfig {
    const reject = (msg: string): never => {
      throw new TrellisError('TRL_SNAPSHOT_REJECTED', `snapshot ${snapshot.version}: ${msg}`);
    };
    if (snapshot.schema !== SNAPSHOT_SCHEMA_VERSION) {
      reject(
        `schema ${snapshot.schema} is not supported by this proxy (supports ${SNAPSHOT_SCHEMA_VERSION})`,
      );
    }
    const cfg = new ProxyConfig(snapshot);
    const [region = '', zone = '', subzone = ''] = (snapshot.proxy.locality ?? '').split('/');
    const self = { locality: { region, zone, subzone }, labels: snapshot.proxy.labels };
    for (const c of snapshot.clusters) {
      try {
        cfg.clusters.set(c.name, new ClusterRuntime(c, state, self));
      } catch (err) {
        reject(`cluster ${c.name}: ${errorMessage(err)}`);
      }
    }
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
      for (const t of (l.type === 'gateway' && l.tls) || [])
        if (!cfg.routeTables.has(t.routeTable))
          reject(`listener ${l.name} server ${t.name} refers to unknown route table ${t.routeTable}`);
    }
    for (const s of cfg.inbound?.services ?? []) {
      const key = `${s.host}:${s.port}`;
      cfg.inboundByService.set(key, s.targetPort);
      const labels = s.host.split('.');
      for (let n = 1; n <= labels.length; n++) {
        const name = labels.slice(0, n).join('.');
        cfg.plaintextHosts.set(`${name}:${s.port}`, key);
        if (s.port === 80) cfg.plaintextHosts.set(name, key);
      }
    }
    return cfg;
  }
}
