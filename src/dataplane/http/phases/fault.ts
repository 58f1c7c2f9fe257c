// fault: a route's fault injection (VirtualService `fault`), after routing and before the request goes
// upstream, as Envoy's fault filter runs before the router. A delay holds the exchange (flag DI); an
// abort answers with the configured HTTP status, or a gRPC status in a trailers-only 200 (flag FI).
// Each applies to its percentage of requests, independently of the other. Injected faults are counted
// by route in `trellis_fault_injected_total`.
import type { FaultPolicy, Route } from '../../../compile/snapshot.ts';
import type { CounterSeries } from '../../../telemetry/metrics.ts';
import type { Exchange } from '../context.ts';
import type { Phase, Step } from '../phase.ts';

const ABORT_BODY = 'fault filter abort';

interface RouteFault extends FaultPolicy {
  delays: CounterSeries;
  aborts: CounterSeries;
}

function hit(percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
}

export const fault: Phase = {
  name: 'fault',
  setup({ kind, cfg, tableName, deps, resume }) {
    if (kind === 'inbound' || !cfg) return undefined;
    const counter = deps.telemetry.metrics.faultInjected;
    const faults = new Map<Route, RouteFault>();
    for (const vh of cfg.snapshot.routeTables.find((t) => t.name === tableName)?.virtualHosts ?? [])
      for (const r of vh.routes)
        if (r.action.type === 'forward' && r.action.fault)
          faults.set(r, {
            ...r.action.fault,
            delays: counter.series(['delay', r.origin]),
            aborts: counter.series(['abort', r.origin]),
          });
    if (faults.size === 0) return undefined;

    const abort = (
      ex: Exchange,
      f: RouteFault,
      a: NonNullable<FaultPolicy['abort']>,
      delayed: boolean,
    ): void => {
      const origin = ex.route!.origin;
      f.aborts.inc();
      const flags = delayed ? 'DI,FI' : 'FI';
      if (a.grpcStatus !== undefined) {
        ex.reply(200, flags, `${origin} fault abort`, '', {
          'content-type': 'application/grpc',
          'grpc-status': String(a.grpcStatus),
          'grpc-message': ABORT_BODY,
        });
      } else ex.reply(a.status, flags, `${origin} fault abort`, ABORT_BODY);
    };

    const step: Step = (ex) => {
      const f = faults.get(ex.route!);
      if (!f) return true;
      const a = f.abort && hit(f.abort.percent) ? f.abort : undefined;
      if (f.delay && hit(f.delay.percent)) {
        f.delays.inc();
        ex.flags = 'DI';
        const timer = setTimeout(() => {
          ex.call = undefined;
          if (a) abort(ex, f, a, true);
          else resume(ex);
        }, f.delay.ms);
        // The client going away ends the wait (the chain aborts `call` when it closes).
        ex.call = { resume() {}, abort: () => clearTimeout(timer) };
        return false;
      }
      if (a) {
        abort(ex, f, a, false);
        return false;
      }
      return true;
    };
    return step;
  },
};
