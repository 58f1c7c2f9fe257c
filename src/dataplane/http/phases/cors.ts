// cors: a route's `corsPolicy`, as Envoy's CORS filter applies it after routing. A preflight from an
// allowed origin is answered here; an unmatched one goes on upstream (FORWARD) or is answered without
// an allow-origin (IGNORE). An ordinary request from an allowed origin gets the allow and expose
// headers added to its response.
import type { Route } from '../../../compile/snapshot.ts';
import { Cors } from '../cors.ts';
import type { Phase, Step } from '../phase.ts';

export const cors: Phase = {
  name: 'cors',
  setup({ kind, cfg, tableName }) {
    if (kind === 'inbound' || !cfg) return undefined;
    const policies = new Map<Route, Cors>();
    for (const vh of cfg.snapshot.routeTables.find((t) => t.name === tableName)?.virtualHosts ?? [])
      for (const r of vh.routes)
        if (r.action.type === 'forward' && r.action.cors) policies.set(r, new Cors(r.action.cors));
    if (policies.size === 0) return undefined;
    const step: Step = (ex) => {
      const policy = policies.get(ex.route!);
      if (!policy) return true;
      const down = ex.down;
      const pre = policy.preflight(down.method, down.headers);
      if (pre?.answer) {
        ex.code = pre.answer.status;
        ex.rule = `${ex.route!.origin} corsPolicy`;
        down.respond(pre.answer.status, { ...pre.answer.headers, 'content-length': 0 }, '');
        return false;
      }
      if (pre?.forward) return true;
      const origin = down.headers.origin;
      const add = policy.responseHeaders(typeof origin === 'string' ? origin : undefined);
      if (add) {
        ex.responseHeaders ??= [];
        for (const name in add) ex.responseHeaders.push({ name, value: add[name] });
      }
      return true;
    };
    return step;
  },
};
