// Envoy's HTTP ext_authz protocol (http_service): the check is a request with the client's method,
// `pathPrefix` + its path, Host, Content-Length, the headers the provider lists and its additional
// headers, and the body when asked for. A 2xx answer allows, with the listed answer headers going
// upstream (and to the client); a 5xx answer is an error, as in Envoy; any other denies, and the
// client gets its status, body and headers.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { ExtAuthzProvider } from '../../../compile/snapshot.ts';
import { type Dispatch, type UpstreamFailure, upstreamRequest } from '../../upstream/dispatch.ts';
import { type Check, type CheckResult, headerMatcher, joined } from './check.ts';

/** An authorizer's answer body is for the client: bounded, as any buffered body. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** Never from the client: what the check request says about itself is the proxy's to write. */
const OWN = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'te',
  'upgrade',
]);

/** Envoy's allowed_client_headers adds these to any list the provider gives. */
const ALWAYS_ON_DENY = ['path', 'status', 'www-authenticate', 'location'];

/** Never passed on from the answer: hop-by-hop, or written by the proxy. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'host',
  'te',
  'upgrade',
]);

export function httpCheck(p: ExtAuthzProvider, dispatch: Dispatch): Check {
  const include = headerMatcher(p.includeRequestHeaders);
  const toUpstream = headerMatcher(p.headersToUpstreamOnAllow);
  const onAllow = headerMatcher(p.headersToDownstreamOnAllow);
  const onDeny = p.headersToDownstreamOnDeny
    ? headerMatcher([...p.headersToDownstreamOnDeny, ...ALWAYS_ON_DENY])
    : () => true;
  const prefix = p.pathPrefix ?? '';
  const extra = p.includeAdditionalHeaders ?? [];
  return (input) =>
    new Promise<CheckResult>((resolve) => {
      const headers: OutgoingHttpHeaders = {};
      for (const [name, v] of Object.entries(input.headers)) {
        if (name.startsWith(':') || OWN.has(name) || !include(name)) continue;
        headers[name] = joined(v);
      }
      for (const h of extra) headers[h.name] = h.value;
      const body = input.body;
      headers['content-length'] = body ? body.length : 0;
      if (p.includeRequestBody) headers['x-envoy-auth-partial-body'] = String(input.partialBody);
      const req = upstreamRequest(
        'HTTP/1.1',
        input.method,
        prefix + input.path,
        input.host,
        headers,
        body && body.length > 0 ? Readable.from([body]) : undefined,
      );
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      let answer: IncomingHttpHeaders = {};
      const call = dispatch(req, {
        onHead(s, h) {
          status = s;
          answer = h;
        },
        onData(c) {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            call.abort();
            resolve({ kind: 'error', message: `answer body over ${MAX_ANSWER_BYTES} bytes` });
          } else chunks.push(c);
          return true;
        },
        onEnd() {
          resolve(result(status, answer, Buffer.concat(chunks).toString(), toUpstream, onAllow, onDeny));
        },
        onError(f: UpstreamFailure) {
          resolve({ kind: 'error', message: f.message });
        },
      });
    });
}

function result(
  status: number,
  h: IncomingHttpHeaders,
  body: string,
  toUpstream: (n: string) => boolean,
  onAllow: (n: string) => boolean,
  onDeny: (n: string) => boolean,
): CheckResult {
  if (status >= 500) return { kind: 'error', message: `the authorizer answered ${status}` };
  const pairs = Object.entries(h).filter(([n]) => !HOP.has(n) && !n.startsWith(':'));
  if (status >= 200 && status < 300) {
    const remove = joined(h['x-envoy-auth-headers-to-remove']);
    return {
      kind: 'allow',
      upstream: pairs
        .filter(([n]) => toUpstream(n))
        .map(([name, v]) => ({ name, value: joined(v) ?? '', append: false })),
      removeUpstream: remove
        ? remove
            .split(',')
            .map((s) => s.trim().toLowerCase())
            .filter(Boolean)
        : [],
      downstream: pairs.filter(([n]) => onAllow(n)).map(([name, v]) => ({ name, value: joined(v) ?? '' })),
    };
  }
  const headers: OutgoingHttpHeaders = {};
  for (const [n, v] of pairs) if (onDeny(n)) headers[n] = v;
  return { kind: 'deny', status, headers, body };
}
