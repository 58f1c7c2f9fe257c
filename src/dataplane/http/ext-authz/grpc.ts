// Envoy's gRPC ext_authz protocol: envoy.service.auth.v3.Authorization/Check, with @grpc/grpc-js over
// one HTTP/2 channel per authorizer endpoint. Status OK allows, with ok_response's headers set
// upstream and its response_headers_to_add sent to the client; any other status denies with
// denied_response's status (403 when unset), headers and body. A failed call is an error.
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, ExtAuthzProvider } from '../../../compile/snapshot.ts';
import type { EndpointRuntime } from '../../upstream/cluster.ts';
import type { LoadBalancer } from '../../upstream/load-balancer.ts';
import { type Check, type CheckInput, type CheckResult, joined } from './check.ts';
import { authorizationDefinition } from './external-auth-proto.ts';

const proto = grpc.loadPackageDefinition(authorizationDefinition()) as unknown as {
  envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
};
export const AuthorizationClient = proto.envoy.service.auth.v3.Authorization;

interface HeaderOption {
  header?: { key?: string; value?: string };
  append?: { value?: boolean };
}

interface CheckResponse {
  status?: { code?: number; message?: string };
  deniedResponse?: { status?: { code?: number }; headers?: HeaderOption[]; body?: string };
  okResponse?: {
    headers?: HeaderOption[];
    headersToRemove?: string[];
    responseHeadersToAdd?: HeaderOption[];
  };
}

/** `host:port` as a gRPC target; IPv6 addresses in brackets. */
export function grpcTarget(ep: Endpoint): string {
  return ep.address.includes(':') ? `ipv6:[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

export function grpcCheck(
  p: ExtAuthzProvider,
  lb: LoadBalancer<EndpointRuntime>,
  client: (ep: Endpoint) => grpc.Client,
): Check {
  const noEndpoint: CheckResult = { kind: 'error', message: `no healthy upstream in ${p.cluster}` };
  return (input) => {
    const ep = lb.pick();
    if (!ep) return Promise.resolve(noEndpoint);
    const c = client(ep.endpoint) as grpc.Client & {
      Check(
        req: unknown,
        opts: grpc.CallOptions,
        cb: (e: grpc.ServiceError | null, r?: CheckResponse) => void,
      ): void;
    };
    ep.state.active++;
    return new Promise<CheckResult>((resolve) => {
      c.Check(checkRequest(p, input), { deadline: Date.now() + p.timeoutMs }, (err, res) => {
        ep.state.active--;
        if (err) resolve({ kind: 'error', message: `${grpcTarget(ep.endpoint)}: ${err.message}` });
        else resolve(result(res ?? {}));
      });
    });
  };
}

function checkRequest(p: ExtAuthzProvider, i: CheckInput): unknown {
  const headers: Record<string, string> = {};
  for (const [name, v] of Object.entries(i.headers)) {
    const value = joined(v);
    if (value !== undefined) headers[name] = value;
  }
  if (i.headers[':authority'] === undefined) headers[':authority'] = i.host;
  headers[':method'] = i.method;
  headers[':path'] = i.path;
  const http: Record<string, unknown> = {
    id: i.requestId ?? '',
    method: i.method,
    headers,
    path: i.path,
    host: i.host,
    scheme: 'http',
    size: i.body?.length ?? -1,
    protocol: i.protocol,
  };
  if (i.body) {
    if (p.includeRequestBody?.packAsBytes) http.rawBody = i.body;
    else http.body = i.body.toString();
  }
  const peer = (a: {
    address: string | undefined;
    port: number | undefined;
    principal: string | undefined;
  }) => ({
    address: a.address ? { socketAddress: { address: a.address, portValue: a.port ?? 0 } } : undefined,
    principal: a.principal ?? '',
  });
  return {
    attributes: {
      source: peer(i.source),
      destination: peer(i.destination),
      request: { http },
    },
  };
}

function result(r: CheckResponse): CheckResult {
  const pairs = (l: HeaderOption[] | undefined) =>
    (l ?? [])
      .filter((o) => o.header?.key)
      .map((o) => ({
        name: o.header!.key!.toLowerCase(),
        value: o.header!.value ?? '',
        append: o.append?.value === true,
      }));
  if ((r.status?.code ?? 0) === 0) {
    const ok = r.okResponse;
    return {
      kind: 'allow',
      upstream: pairs(ok?.headers),
      removeUpstream: (ok?.headersToRemove ?? []).map((h) => h.toLowerCase()),
      downstream: pairs(ok?.responseHeadersToAdd),
    };
  }
  const denied = r.deniedResponse;
  const headers: Record<string, string> = {};
  for (const h of pairs(denied?.headers)) headers[h.name] = h.value;
  return { kind: 'deny', status: denied?.status?.code || 403, headers, body: denied?.body ?? '' };
}
