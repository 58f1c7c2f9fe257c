// The request pipeline is a fixed sequence of named phases. Each phase has a setup step, run when a
// snapshot is applied, that compiles what it needs and returns the per-request step, or nothing when
// the snapshot does not configure it: an unconfigured phase is not on the request path at all.
// Outbound, gateway and inbound chains are built from the same list with their own settings.
import type { Logger } from '../../lib/log.ts';
import type { ProxyConfig } from '../config.ts';
import type { RequestTelemetry } from '../telemetry.ts';
import type { Dispatch } from '../upstream/dispatch.ts';
import type { ExternalPool } from '../upstream/external-pool.ts';
import type { PeerPool } from '../upstream/peer-pool.ts';
import type { Exchange, ListenerKind, Site } from './context.ts';
import type { ExtAuthzClients } from './ext-authz/clients.ts';
import type { CompiledRouteTable } from './route-table.ts';

/**
 * False when the step answered the exchange, handed it on for good, or holds it for an asynchronous
 * check and calls its `resume` when done: the chain stops there.
 */
export type Step = (ex: Exchange) => boolean;

/** What lives as long as the proxy, for the phases' setup. */
export interface PhaseDeps {
  peers: PeerPool;
  /** Upstreams outside the mesh (tls DISABLE, SIMPLE, MUTUAL). */
  external: ExternalPool;
  /** Who we are, as the peer header says it. */
  selfHeader: string;
  /** Our SPIFFE identity. */
  selfIdentity: string;
  telemetry: RequestTelemetry;
  log: Logger;
  accessLog: boolean;
  /**
   * The app beside the proxy, on a workload port: keep-alive connections that outlive snapshots;
   * with `http2`, one h2c session.
   */
  app(workloadPort: number, http2?: boolean): Dispatch;
  /** Connections to external authorizers outside the mesh; absent where nothing is sent (a simulation). */
  extAuthz?: ExtAuthzClients;
}

export interface ChainSetup {
  kind: ListenerKind;
  /** Undefined before the first snapshot. */
  cfg: ProxyConfig | undefined;
  /** The route table of an outbound or gateway listener. */
  table: CompiledRouteTable | undefined;
  tableName: string;
  deps: PhaseDeps;
  /** Runs the rest of the chain after this phase, for a step that held the exchange (returned false). */
  resume: (ex: Exchange) => void;
}

export interface Phase {
  readonly name: string;
  setup(s: ChainSetup): Step | undefined;
}

export class Chain {
  readonly site: Site;
  /** The phases on this chain's request path, in order. */
  readonly phases: readonly string[];
  private readonly steps: readonly Step[];
  private readonly record: (ex: Exchange) => void;

  constructor(
    site: Site,
    phases: readonly Phase[],
    setup: Omit<ChainSetup, 'resume'>,
    record: (ex: Exchange) => void,
  ) {
    this.site = site;
    const names: string[] = [];
    const steps: Step[] = [];
    for (const p of phases) {
      const next = steps.length + 1;
      const step = p.setup({ ...setup, resume: (ex) => this.from(ex, next) });
      if (!step) continue;
      names.push(p.name);
      steps.push(step);
    }
    this.phases = names;
    this.steps = steps;
    this.record = record;
  }

  run(ex: Exchange): void {
    // Telemetry comes last for every exchange, whichever phase answered it.
    ex.down.onClose(() => {
      ex.call?.abort();
      if (!ex.code) ex.flags = 'DC'; // the client went away before any response
      this.record(ex);
    });
    this.from(ex, 0);
  }

  private from(ex: Exchange, first: number): void {
    const steps = this.steps;
    for (let i = first; i < steps.length; i++) if (!steps[i](ex)) return;
  }
}
