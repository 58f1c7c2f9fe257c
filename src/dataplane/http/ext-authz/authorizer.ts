// The external authorizer of a listener's CUSTOM policies (Istio's ext_authz), built when the
// snapshot is applied: the check in the provider's protocol over the cluster the snapshot names,
// bounded by the provider's timeout. Asking it runs the whole CUSTOM step for one request: the body
// (when the provider wants it), the check, and what its answer does — a denial or an error answers
// the client here, flag UAEX, naming the policy rule and the provider; an allow edits the request.
import type { Cluster, ExtAuthzProvider } from '../../../compile/snapshot.ts';
import type { ProxyConfig } from '../../config.ts';
import { balance, type Transports } from '../../upstream/balance.ts';
import { withTimeout } from '../../upstream/timeout.ts';
import type { Exchange } from '../context.ts';
import type { PhaseDeps } from '../phase.ts';
import { bufferBody } from './body.ts';
import type { Check, CheckInput } from './check.ts';
import { grpcCheck } from './grpc.ts';
import { httpCheck } from './http.ts';

export const EXT_AUTHZ_FLAG = 'UAEX';

/** Whether the request goes on to DENY and ALLOW, or has been answered. */
export type CustomOutcome = 'continue' | 'answered';

export interface ExternalAuthorizer {
  readonly provider: ExtAuthzProvider;
  /** `rule` is the CUSTOM rule that matched; `port` the destination port policies see. */
  ask(ex: Exchange, rule: string, port: number): Promise<CustomOutcome>;
}

/** Throws when the snapshot's provider names a cluster it does not hold: the snapshot is refused. */
export function externalAuthorizer(
  p: ExtAuthzProvider,
  cfg: ProxyConfig,
  deps: PhaseDeps,
): ExternalAuthorizer {
  const c = cfg.clusters.get(p.cluster);
  if (!c) throw new Error(`extension provider ${p.name} refers to unknown cluster ${p.cluster}`);
  const clients = deps.extAuthz;
  if (!clients) throw new Error('this proxy has no external authorization clients');
  let check: Check;
  if (p.protocol === 'GRPC') {
    if (c.cluster.tls.mode !== 'DISABLE')
      throw new Error(
        `extension provider ${p.name}: gRPC is spoken in plaintext to a ServiceEntry's endpoints only`,
      );
    check = grpcCheck(p, c, (ep) => clients.grpc(ep));
  } else {
    const ts = transportsOf(c.cluster, cfg, deps);
    const timeout = withTimeout(p.timeoutMs, `extension provider ${p.name}`);
    check = httpCheck(p, timeout(balance(c, `extension provider ${p.name}`, ts)));
  }
  return {
    provider: p,
    ask: (ex, rule, port) => ask(p, check, ex, rule, port, deps),
  };
}

/** Throws when the cluster has no transports (an unreadable certificate file): the snapshot is refused. */
function transportsOf(cluster: Cluster, cfg: ProxyConfig, deps: PhaseDeps): Transports[] {
  const c = cfg.clusters.get(cluster.name)!;
  const tls = cluster.tls;
  if (tls.mode === 'ISTIO_MUTUAL')
    return c.endpoints.map((ep) => deps.peers.transports(ep.endpoint, tls.sni, tls.identities));
  const ts = deps.external.transports({ ...cluster, tls });
  if (typeof ts === 'string') throw new Error(ts);
  return ts;
}

async function ask(
  p: ExtAuthzProvider,
  check: Check,
  ex: Exchange,
  rule: string,
  port: number,
  deps: PhaseDeps,
): Promise<CustomOutcome> {
  const down = ex.down;
  let body: Buffer | undefined;
  let partialBody = false;
  const settings = p.includeRequestBody;
  if (settings && down.hasBody) {
    const b = await bufferBody(down.body, settings.maxRequestBytes);
    if (!b.complete && !settings.allowPartialMessage) {
      ex.reply(
        413,
        EXT_AUTHZ_FLAG,
        `${rule}: request body over maxRequestBytes ${settings.maxRequestBytes} of provider ${p.name}`,
        'Payload Too Large',
      );
      return 'answered';
    }
    ex.requestBody = b.replay;
    body = b.head;
    partialBody = !b.complete;
  }
  const input: CheckInput = {
    method: down.method,
    path: ex.path + ex.query,
    host: ex.hostHeader,
    headers: down.headers,
    protocol: down.protocol,
    requestId: joinedId(down.headers['x-request-id']),
    source: { address: down.remoteAddress, port: undefined, principal: ex.peerTls.identity },
    destination: { address: down.localAddress, port, principal: deps.selfIdentity },
    body,
    partialBody,
  };
  const r = await check(input);
  if (ex.flags === 'DC') return 'answered'; // the client went away meanwhile
  const by = `${rule}, provider ${p.name}`;
  if (r.kind === 'allow') {
    const headers = down.headers;
    for (const h of r.removeUpstream) if (h !== 'host' && !h.startsWith(':')) delete headers[h];
    for (const h of r.upstream) {
      const cur = headers[h.name];
      headers[h.name] =
        h.append && cur !== undefined ? `${Array.isArray(cur) ? cur.join(',') : cur},${h.value}` : h.value;
    }
    if (r.downstream.length) ex.responseHeaders = r.downstream;
    return 'continue';
  }
  if (r.kind === 'deny') {
    ex.authorization = { allow: false, rule: `${by}: denied by the authorizer` };
    ex.reply(r.status, EXT_AUTHZ_FLAG, ex.authorization.rule, r.body, r.headers);
    return 'answered';
  }
  if (p.failOpen) {
    deps.log.warn('external authorization failed; allowed (failOpen)', {
      rule: by,
      error: r.message,
      path: ex.path,
    });
    return 'continue';
  }
  ex.authorization = { allow: false, rule: `${by}: authorizer error (${r.message}), denied` };
  ex.reply(p.statusOnError, EXT_AUTHZ_FLAG, ex.authorization.rule, 'external authorization failed\n');
  return 'answered';
}

function joinedId(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
