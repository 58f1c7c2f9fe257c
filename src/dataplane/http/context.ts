// The request context: one object per exchange, handed from phase to phase. Phases write what they
// decide into it (the route, the inbound port, the outcome); none reaches into another phase.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Route } from '../../compile/snapshot.ts';
import type { Logger } from '../../lib/log.ts';
import { type PeerInfo, UNKNOWN_PEER } from '../telemetry.ts';
import type { UpstreamCall, UpstreamRequest } from '../upstream/dispatch.ts';
import type { Downstream } from './downstream.ts';
import { GrpcExchange, grpcStatusOf, isGrpc, trailersOnly } from './grpc.ts';
import { FLAGS_HEADER, RULE_HEADER } from './headers.ts';

export type ListenerKind = 'outbound' | 'gateway' | 'inbound';

/** What a client proxy's TLS connection says about it: per connection, worked out once. */
export interface PeerTls {
  identity?: string;
  /** SHA-256 of the peer's certificate (DER, lower-case hex), as x-forwarded-client-cert's Hash. */
  certHash?: string;
  sni?: string;
  /** `host:port` of the service the client proxy asked for in its SNI. */
  service?: string;
}

export const PLAINTEXT: PeerTls = {};

/** What a verified JWT says about the request's end user (RequestAuthentication); feeds `request.auth.*`. */
export interface RequestAuth {
  /** `<iss>/<sub>`, Istio's request principal. */
  principal: string;
  audiences: string[];
  /** The `azp` claim. */
  presenter?: string;
  claims: Record<string, unknown>;
}

/** The listener side of an exchange: the same for every request of a chain. */
export interface Site {
  readonly kind: ListenerKind;
  /** A gateway's client is outside the mesh: rule names stay in the log. */
  readonly edge: boolean;
  readonly reporter: 'source' | 'destination';
  readonly log: Logger;
}

/** Envoy-like bodies for the proxy's own answers, by response flag. */
const FLAG_TEXT: Record<string, string> = {
  DPE: 'bad request',
  NR: 'no route',
  NC: 'no configuration yet',
  UH: 'no healthy upstream',
  UF: 'upstream connect error',
  UC: 'upstream connection termination',
  UT: 'upstream request timeout',
  UO: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
  SI: 'stream idle timeout',
};

/** Combined flags (`UF,URX`, `DI,UT,URX`) read as the first one that has a text of its own. */
function flagText(flags: string): string {
  const direct = FLAG_TEXT[flags];
  if (direct) return direct;
  for (const f of flags.split(',')) if (FLAG_TEXT[f]) return FLAG_TEXT[f];
  return 'error';
}

export class Exchange {
  readonly start = performance.now();
  readonly down: Downstream;
  readonly site: Site;
  readonly peerTls: PeerTls;
  flags = '-';
  code = 0;
  /** The route, policy or check that decided. */
  rule = '';
  service = 'unknown';
  /** destination_service_name when it is not the service's first label (PassthroughCluster, BlackHoleCluster). */
  serviceName: string | undefined;
  peer: PeerInfo = UNKNOWN_PEER;
  responseBytes = 0;
  /** Lower-cased, for matching; `hostHeader` is what goes upstream. */
  authority = '';
  hostHeader = '';
  path = '';
  query = '';
  requestId: string | undefined;
  /** CONNECT target when the request came through a tunnel. */
  readonly tunnelAuthority: string | undefined;
  /** Set by authenticate when the request carried a valid JWT. */
  auth: RequestAuth | undefined;
  /** Set by authorize: the decision and the policy rule that made it (`''`: no ALLOW policy applies). */
  authorization: { allow: boolean; rule: string } | undefined;
  /** Set by route (outbound, gateway): the virtual host and the route that matched. */
  virtualHost: string | undefined;
  route: Route | undefined;
  /** Set by normalize (inbound): the workload port the request is for. */
  targetPort: number | undefined;
  upstream: UpstreamRequest | undefined;
  call: UpstreamCall | undefined;
  /** Set by authorize when an external authorizer read the body first: what goes upstream instead. */
  requestBody: Readable | undefined;
  /** Set by authorize (an external authorizer's allow): headers added to the client's response. */
  responseHeaders: { name: string; value: string }[] | undefined;
  /** A gRPC request (by its content-type): its status and message counts, for telemetry. */
  readonly grpc: GrpcExchange | undefined;

  constructor(down: Downstream, site: Site, peerTls: PeerTls, tunnelAuthority?: string) {
    this.down = down;
    this.site = site;
    this.peerTls = peerTls;
    this.tunnelAuthority = tunnelAuthority;
    this.grpc = isGrpc(down.headers) ? new GrpcExchange() : undefined;
  }

  /** Counts response body bytes for telemetry; bound once. */
  readonly count = (n: number): void => {
    this.responseBytes += n;
  };

  /** The proxy answers by itself: flag and rule go to the client, the log and the metrics. */
  reply(status: number, flags: string, rule: string, body?: string, extra?: OutgoingHttpHeaders): void {
    this.code = status;
    this.flags = flags;
    this.rule = rule;
    if (this.down.headersSent) {
      this.down.destroy();
      return;
    }
    let text = body ?? `${flagText(flags)}\n`;
    const grpc = this.grpc;
    if (grpc) {
      // A gRPC client reads the answer from grpc-status, as Envoy's local replies give it.
      if (extra?.['grpc-status'] === undefined) {
        extra = { ...extra, ...trailersOnly(grpcStatusOf(status), text) };
        this.code = status = 200;
        text = '';
      }
      grpc.status = String(extra['grpc-status']);
    }
    const headers: OutgoingHttpHeaders = {
      'content-type': 'text/plain',
      ...extra,
      [FLAGS_HEADER]: flags,
      'content-length': Buffer.byteLength(text),
    };
    // Inside the mesh the caller may learn which rule answered; at the edge that stays in the log,
    // unless the caller is a mesh workload that came over mTLS (a sidecar at its egress gateway).
    // Rules may quote an upstream's error (OpenSSL's end in a newline), which a header cannot hold.
    if (!this.site.edge || this.peerTls.identity !== undefined)
      headers[RULE_HEADER] = rule.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
    this.down.respond(status, headers, text);
    this.responseBytes = Buffer.byteLength(text);
    this.site.log.info('proxy response', {
      code: status,
      flags,
      rule,
      authority: this.authority,
      path: this.path,
    });
  }
}
