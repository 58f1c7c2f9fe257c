// authorize: the AuthorizationPolicies of the workload (inbound) or of the gateway listener, compiled
// when the snapshot is applied (../authorization.ts). A request a CUSTOM rule matches is first put to
// the external authorizer (../ext-authz/), holding the exchange until it answers; if it allows, DENY
// and ALLOW still apply. A denial answers as Envoy's RBAC filter does, `403 RBAC: access denied` with
// the flag RBAC (UAEX for the external authorizer), and names the policy and rule in the log (and, for
// mesh clients, the rule header). AUDIT matches and dry-run decisions are logged, never enforced.
import type { Authorization, ExtAuthzProvider } from '../../../compile/snapshot.ts';
import type { Counter, CounterSeries } from '../../../telemetry/metrics.ts';
import { type AuthorizationAttributes, CompiledAuthorization, type Verdict } from '../authorization.ts';
import type { Exchange } from '../context.ts';
import { EXT_AUTHZ_FLAG, externalAuthorizer } from '../ext-authz/authorizer.ts';
import type { ChainSetup, Phase, PhaseDeps, Step } from '../phase.ts';

export const RBAC_DENIED_BODY = 'RBAC: access denied';

/** The request as policies see it, worked out lazily: most policies ask about a few attributes. */
class ExchangeAttributes implements AuthorizationAttributes {
  private readonly ex: Exchange;
  readonly port: number;
  readonly principal: string | undefined;
  private parsed = false;
  private ns: string | undefined;
  private sa: string | undefined;
  private td: string | undefined;

  constructor(ex: Exchange, port: number) {
    this.ex = ex;
    this.port = port;
    const id = ex.peerTls.identity;
    this.principal = id?.startsWith('spiffe://') ? id.slice(9) : id;
  }

  private parse(): void {
    if (this.parsed) return;
    this.parsed = true;
    const p = this.principal;
    if (!p) return;
    const m = /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(p);
    if (!m) return;
    this.td = m[1];
    this.ns = m[2];
    this.sa = `${m[2]}/${m[3]}`;
  }
  get namespace(): string | undefined {
    this.parse();
    return this.ns;
  }
  get serviceAccount(): string | undefined {
    this.parse();
    return this.sa;
  }
  get trustDomain(): string | undefined {
    this.parse();
    return this.td;
  }
  get sourceIp(): string | undefined {
    return this.ex.down.remoteAddress;
  }
  /** Without trusted proxies in front (Istio's default numTrustedProxies 0), the peer itself. */
  get remoteIp(): string | undefined {
    return this.ex.down.remoteAddress;
  }
  get destinationIp(): string | undefined {
    return this.ex.down.localAddress;
  }
  get sni(): string | undefined {
    return this.ex.peerTls.sni;
  }
  get requestPrincipal(): string | undefined {
    return this.ex.auth?.principal;
  }
  get audiences(): readonly string[] | undefined {
    return this.ex.auth?.audiences;
  }
  get presenter(): string | undefined {
    return this.ex.auth?.presenter;
  }
  get claims(): Readonly<Record<string, unknown>> | undefined {
    return this.ex.auth?.claims;
  }
  header(name: string): string | undefined {
    const v = this.ex.down.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  }
  get method(): string {
    return this.ex.down.method;
  }
  get host(): string {
    return this.ex.authority;
  }
  get path(): string {
    return this.ex.path;
  }
}

/** A counter series per verdict (a compiled rule), resolved on its first use and kept with it. */
function counted(family: Counter, labels: (v: Verdict) => string[]): (v: Verdict) => void {
  const series = new WeakMap<Verdict, CounterSeries>();
  return (v) => {
    let s = series.get(v);
    if (!s) {
      s = family.series(labels(v));
      series.set(v, s);
    }
    s.inc();
  };
}

const policyLabels = (v: Verdict) => [v.policy ?? '', v.index === undefined ? '' : String(v.index)];

/** Why CUSTOM policies cannot be evaluated here, if they cannot: what they match is denied. */
function customUnavailable(a: Authorization, deps: PhaseDeps): string | undefined {
  const ext = a.extAuthz;
  if (!ext) return 'no extension provider in the snapshot';
  if ('error' in ext) return ext.error;
  if (!deps.extAuthz)
    return `the decision is the external authorizer's (provider ${ext.name}); a simulation does not ask it`;
  return undefined;
}

function authorizer(
  authorization: Authorization,
  port: (ex: Exchange) => number,
  s: Pick<ChainSetup, 'cfg' | 'deps' | 'resume'>,
): Step {
  const authz = new CompiledAuthorization(authorization);
  const metrics = s.deps.telemetry.metrics;
  const denied = counted(metrics.authorizationDenied, (v) => [v.action ?? '', ...policyLabels(v)]);
  const shadow = (engine: string) =>
    counted(metrics.authorizationDryRun, (v) => [
      engine,
      v.allow ? 'shadow_allowed' : 'shadow_denied',
      ...policyLabels(v),
    ]);
  const shadowAllow = shadow('allow');
  const shadowDeny = shadow('deny');
  const unavailable = authorization.custom?.length ? customUnavailable(authorization, s.deps) : undefined;
  const ext =
    authorization.custom?.length && !unavailable
      ? externalAuthorizer(authorization.extAuthz as ExtAuthzProvider, s.cfg!, s.deps)
      : undefined;
  const resume = s.resume;
  const rest = (ex: Exchange, attrs: ExchangeAttributes): boolean => {
    const verdict = authz.decide(attrs);
    ex.authorization = verdict;
    if (verdict.allow) return true;
    denied(verdict);
    ex.reply(403, 'RBAC', verdict.rule, RBAC_DENIED_BODY);
    return false;
  };
  return (ex) => {
    const attrs = new ExchangeAttributes(ex, port(ex));
    if (authz.records) {
      const log = ex.site.log;
      for (const rule of authz.audited(attrs))
        log.info('authorization audit', { rule, authority: ex.authority, path: ex.path });
      const allow = authz.shadowAllow(attrs);
      if (allow) shadowAllow(allow);
      const deny = authz.shadowDeny(attrs);
      if (deny) shadowDeny(deny);
      const effective = authz.dryRun(attrs);
      if (effective)
        log.info('authorization dry-run', {
          result: effective.allow ? 'allowed' : 'denied',
          rule: effective.rule,
          authority: ex.authority,
          path: ex.path,
        });
    }
    const custom = authz.custom(attrs);
    if (!custom) return rest(ex, attrs);
    if (!ext) {
      // Istio denies what a CUSTOM policy it cannot evaluate matches, as its RBAC filter would.
      ex.authorization = { allow: false, rule: `${custom.rule}: ${unavailable}` };
      ex.reply(403, EXT_AUTHZ_FLAG, ex.authorization.rule, RBAC_DENIED_BODY);
      return false;
    }
    ext.ask(ex, custom.rule, attrs.port).then(
      (outcome) => {
        if (outcome === 'continue' && rest(ex, attrs)) resume(ex);
      },
      (err: unknown) => {
        if (ex.flags !== 'DC')
          ex.reply(
            500,
            EXT_AUTHZ_FLAG,
            `${custom.rule}: ${(err as Error).message}`,
            'external authorization failed\n',
          );
      },
    );
    return false;
  };
}

export const authorize: Phase = {
  name: 'authorize',
  setup(setup) {
    const { kind, cfg, tableName } = setup;
    if (kind === 'inbound') {
      const a = cfg?.inbound?.authorization;
      return a ? authorizer(a, (ex) => ex.targetPort!, setup) : undefined;
    }
    if (kind !== 'gateway') return undefined;
    const listener = cfg?.snapshot.listeners.find((l) => l.type === 'gateway' && l.routeTable === tableName);
    if (listener?.type !== 'gateway' || !listener.authorization) return undefined;
    const port = listener.port;
    return authorizer(listener.authorization, () => port, setup);
  },
};
