// telemetry: Istio's request metrics and the access log, once the exchange is over for the client,
// whoever answered it. The source side knows its peer from the endpoint the load balancer chose; the
// destination side from the client proxy's peer header and its mTLS identity.
import type { Exchange } from '../context.ts';
import { PEER_HEADER } from '../headers.ts';
import type { PhaseDeps } from '../phase.ts';

export function recorder(deps: PhaseDeps): (ex: Exchange) => void {
  const { telemetry, log, accessLog } = deps;
  return (ex) => {
    const down = ex.down;
    const reporter = ex.site.reporter;
    const mtls = ex.peerTls.identity !== undefined;
    const peer =
      reporter === 'destination'
        ? telemetry.peer(headerValue(down.headers[PEER_HEADER]), ex.peerTls.identity)
        : (ex.upstream?.endpoint?.peer ?? ex.peer);
    const durationMs = performance.now() - ex.start;
    // A tunnel's bytes from the client have no content-length: the transport counted them.
    const upgraded = ex.code === 101 && ex.upstream !== undefined;
    const requestBytes = upgraded ? ex.upstream!.bodyBytes : Number(down.headers['content-length'] ?? 0) || 0;
    const grpc = ex.grpc;
    telemetry.record(reporter, peer, {
      service: ex.service,
      ...(ex.serviceName ? { serviceName: ex.serviceName } : {}),
      code: ex.code,
      flags: ex.flags,
      mtls,
      durationMs,
      requestBytes,
      responseBytes: ex.responseBytes,
      grpc: grpc && {
        status: grpc.statusLabel(ex.code),
        requestMessages: grpc.requests.messages,
        responseMessages: grpc.responses.messages,
      },
    });
    if (accessLog) {
      const entry: Record<string, unknown> = {
        reporter,
        authority: ex.authority,
        path: ex.path,
        code: ex.code,
        flags: ex.flags,
        rule: ex.rule,
        attempts: ex.upstream?.attempts ?? 0,
        upstream: ex.upstream?.endpoint
          ? `${ex.upstream.endpoint.endpoint.address}:${ex.upstream.endpoint.endpoint.port}`
          : undefined,
        durationMs: Math.round(durationMs * 1000) / 1000,
        requestId: ex.requestId ?? headerValue(down.headers['x-request-id']),
        // Envoy's DOWNSTREAM_PEER_URI_SAN: who came in over mTLS, e.g. the sidecar behind an egress
        // gateway's request, whose metrics name the gateway itself as source, as Istio's do.
        downstreamPeer: ex.peerTls.identity,
      };
      if (upgraded) {
        entry.upgrade = down.upgrade;
        entry.bytesReceived = requestBytes;
        entry.bytesSent = ex.responseBytes;
      }
      log.info('access', entry);
    }
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}
