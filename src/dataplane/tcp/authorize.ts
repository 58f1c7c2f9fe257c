// AuthorizationPolicy for one TCP connection, evaluated once before any byte goes to the app, with
// the same compiled policies as HTTP (../http/authorization.ts) built from the snapshot's TCP view
// of them (compile/tcp-authorization.ts). A connection has no method, host, path, headers or JWT.
import type { Authorization } from '../../compile/snapshot.ts';
import type { Counter } from '../../telemetry/metrics.ts';
import { type AuthorizationAttributes, CompiledAuthorization, type Verdict } from '../http/authorization.ts';

export class ConnectionAttributes implements AuthorizationAttributes {
  readonly principal: string | undefined;
  readonly namespace: string | undefined;
  readonly serviceAccount: string | undefined;
  readonly trustDomain: string | undefined;
  readonly sourceIp: string | undefined;
  readonly remoteIp: string | undefined;
  readonly destinationIp: string | undefined;
  readonly sni: string | undefined;
  readonly port: number;
  readonly requestPrincipal = undefined;
  readonly audiences = undefined;
  readonly presenter = undefined;
  readonly claims = undefined;
  readonly method = '';
  readonly host = '';
  readonly path = '';

  constructor(c: {
    identity: string | undefined;
    sourceIp: string | undefined;
    destinationIp: string | undefined;
    sni: string | undefined;
    port: number;
  }) {
    const p = c.identity?.startsWith('spiffe://') ? c.identity.slice(9) : c.identity;
    this.principal = p;
    const m = p ? /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(p) : null;
    this.trustDomain = m?.[1];
    this.namespace = m?.[2];
    this.serviceAccount = m ? `${m[2]}/${m[3]}` : undefined;
    this.sourceIp = c.sourceIp;
    this.remoteIp = c.sourceIp;
    this.destinationIp = c.destinationIp;
    this.sni = c.sni;
    this.port = c.port;
  }

  header(): undefined {
    return undefined;
  }
}

export interface ConnectionVerdict {
  allow: boolean;
  rule: string;
}

/** A snapshot's policies for connections; built when the snapshot is applied. */
export class ConnectionAuthorization {
  private readonly authz: CompiledAuthorization;
  private readonly hasCustom: boolean;
  private readonly denied: Counter;

  constructor(a: Authorization, denied: Counter) {
    this.authz = new CompiledAuthorization(a);
    this.hasCustom = (a.custom?.length ?? 0) > 0;
    this.denied = denied;
  }

  /** Audit and dry-run matches are logged, as for HTTP; the decision counts a denial by policy. */
  decide(a: ConnectionAttributes, log: (msg: string, f: Record<string, unknown>) => void): ConnectionVerdict {
    if (this.authz.records) {
      for (const rule of this.authz.audited(a)) log('authorization audit', { rule, protocol: 'tcp' });
      const effective = this.authz.dryRun(a);
      if (effective)
        log('authorization dry-run', {
          result: effective.allow ? 'allowed' : 'denied',
          rule: effective.rule,
          protocol: 'tcp',
        });
    }
    // The external authorizer speaks HTTP: what a CUSTOM rule matches on TCP is denied (fail closed).
    const custom = this.hasCustom ? this.authz.custom(a) : undefined;
    if (custom) {
      this.count(custom);
      return { allow: false, rule: `${custom.rule}: an external authorizer cannot check a TCP connection` };
    }
    const v = this.authz.decide(a);
    if (!v.allow) this.count(v);
    return v;
  }

  private count(v: Verdict): void {
    this.denied.series([v.action ?? '', v.policy ?? '', v.index === undefined ? '' : String(v.index)]).inc();
  }
}
