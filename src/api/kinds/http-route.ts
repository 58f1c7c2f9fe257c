// VirtualService HTTP routes: matches, destinations and everything a route may do to a request.
import {
  array,
  boolean,
  type Ctx,
  duration,
  fail,
  hint,
  int,
  isObject,
  join,
  map,
  number,
  object,
  parseDuration,
  string,
  uint32,
  type Validator,
  warn,
} from '../schema.ts';
import {
  type Destination,
  destination,
  dns1123Label,
  dns1123Subdomain,
  gatewayRef,
  type Headers,
  headers,
  INT32_MAX,
  int32,
  intPercent,
  isHeaderName,
  labels,
  type Percent,
  percent,
  portNumber,
  regex,
  type StringMatch,
  stringMatch,
  weightedDestinations,
} from './common.ts';
import { isDns1123Label } from './syntax.ts';

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  /** Lower-case header names; `{}` tests presence; `@request.auth.claims.<c>` matches a JWT claim. */
  headers?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  queryParams?: Record<string, StringMatch>;
  ignoreUriCase?: boolean;
  withoutHeaders?: Record<string, StringMatch>;
  sourceNamespace?: string;
  statPrefix?: string;
}

export interface HTTPRouteDestination {
  destination: Destination;
  /** Relative weight; a destination receives weight / Σweights. */
  weight?: number;
  headers?: Headers;
}

export interface HTTPRedirect {
  uri?: string;
  authority?: string;
  port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string;
  /** Default 301. */
  redirectCode?: number;
  prefixRewrite?: string;
}

export interface HTTPBody {
  string?: string;
  /** Base64 in YAML/JSON. */
  bytes?: string;
}

export interface HTTPDirectResponse {
  status: number;
  body?: HTTPBody;
}

export interface Delegate {
  name: string;
  /** Defaults to the root VirtualService's namespace. */
  namespace?: string;
}

export interface RegexRewrite {
  match: string;
  rewrite: string;
}

export interface HTTPRewrite {
  uri?: string;
  authority?: string;
  uriRegexRewrite?: RegexRewrite;
}

export interface HTTPRetry {
  attempts?: number;
  perTryTimeout?: string;
  retryOn?: string;
  retryRemoteLocalities?: boolean;
  retryIgnorePreviousHosts?: boolean;
  backoff?: string;
}

export interface FaultDelay {
  fixedDelay?: string;
  exponentialDelay?: string;
  percentage?: Percent;
  /** Deprecated integer percentage. */
  percent?: number;
}

export interface FaultAbort {
  httpStatus?: number;
  grpcStatus?: string;
  http2Error?: string;
  percentage?: Percent;
}

export interface HTTPFaultInjection {
  delay?: FaultDelay;
  abort?: FaultAbort;
}

export interface HTTPMirrorPolicy {
  destination: Destination;
  percentage?: Percent;
}

export interface CorsPolicy {
  /** Deprecated: use allowOrigins. */
  allowOrigin?: string[];
  allowOrigins?: StringMatch[];
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAge?: string;
  allowCredentials?: boolean;
  unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE';
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  directResponse?: HTTPDirectResponse;
  delegate?: Delegate;
  rewrite?: HTTPRewrite;
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  mirror?: Destination;
  mirrors?: HTTPMirrorPolicy[];
  /** Deprecated: use mirrorPercentage. */
  mirrorPercent?: number;
  mirrorPercentage?: Percent;
  corsPolicy?: CorsPolicy;
  headers?: Headers;
}

// ---- match -----------------------------------------------------------------------------------------

const CLAIM_PREFIX = '@request.auth.claims';
// Istio reads these pseudo-headers from their own match fields and ignores them under `headers`.
const ignoredHeaderKeys = ['uri', 'scheme', 'method', 'authority'];

function matchHeaderKey(field: 'headers' | 'withoutHeaders'): Validator {
  return (k, path, ctx) => {
    const key = k as string;
    if (key.startsWith(CLAIM_PREFIX)) {
      const claim = key.slice(CLAIM_PREFIX.length);
      if (!/^(\.[^.[\]]+)+$/.test(claim) && !/^(\[[^[\]]+\])+$/.test(claim)) {
        return fail(
          ctx,
          path,
          `JWT claim match ${JSON.stringify(key)} is not valid: expected "@request.auth.claims.<claim>[.<nested>]" or "@request.auth.claims[<claim>][<nested>]"`,
        );
      }
      return;
    }
    if (key === '') return fail(ctx, path, 'header name must not be empty');
    if (!isHeaderName(key)) return fail(ctx, path, `header name ${key} is not a valid header name`);
    if (ignoredHeaderKeys.includes(key.toLowerCase())) {
      return warn(
        ctx,
        path,
        `${field} key "${key}" is ignored: use the match field "${key.toLowerCase()}" instead`,
      );
    }
    if (key !== key.toLowerCase()) {
      warn(
        ctx,
        path,
        `header names are matched case-insensitively; write "${key.toLowerCase()}" in lower case`,
      );
    }
  };
}

function sourceNamespace(): Validator {
  return string({
    check: (v, path, ctx) => {
      if (!isDns1123Label(v))
        fail(ctx, path, `sourceNamespace match ${v} is invalid: expected a namespace name`);
    },
  });
}

export const httpMatchRequest: Validator = object(
  {
    name: string(),
    uri: stringMatch(),
    scheme: stringMatch(),
    method: stringMatch(),
    authority: stringMatch(),
    headers: map(stringMatch(), { key: matchHeaderKey('headers') }),
    port: portNumber(),
    sourceLabels: labels(),
    gateways: array(gatewayRef()),
    queryParams: map(stringMatch()),
    ignoreUriCase: boolean(),
    withoutHeaders: map(stringMatch(), { key: matchHeaderKey('withoutHeaders') }),
    sourceNamespace: sourceNamespace(),
    statPrefix: string(),
  },
  {
    notEnforced: ['statPrefix'],
    check: (v, path, ctx) => {
      if (v.ignoreUriCase === true && isObject(v.uri) && v.uri.regex !== undefined) {
        warn(
          ctx,
          join(path, 'ignoreUriCase'),
          'ignoreUriCase applies to exact and prefix matches only, not regex',
        );
      }
    },
  },
);

// ---- actions ---------------------------------------------------------------------------------------

export const httpRouteDestination: Validator = object(
  { destination: destination(), weight: int32(), headers: headers() },
  { required: ['destination'] },
);

function httpStatus(what: string): Validator {
  return int({
    check: (v, path, ctx) => {
      if (v < 200 || v > 599) fail(ctx, path, `${what} ${v} is not in range 200-599`);
    },
  });
}

const redirect: Validator = object(
  {
    uri: string(),
    authority: string(),
    port: portNumber(),
    derivePort: string({ enum: ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] }),
    scheme: string({ pattern: /^[a-zA-Z][a-zA-Z0-9+.-]*$/, patternName: 'a URI scheme such as "https"' }),
    redirectCode: int({
      check: (v, path, ctx) => {
        if (v < 300 || v > 399) fail(ctx, path, `${v} is not a valid redirect code, must be 3xx`);
      },
    }),
    prefixRewrite: string(),
  },
  {
    oneOf: [
      ['port', 'derivePort'],
      ['uri', 'prefixRewrite'],
    ],
    check: (v, path, ctx) => {
      const set = ['uri', 'prefixRewrite', 'authority', 'scheme', 'port', 'derivePort'].some(
        (k) => v[k] !== undefined && v[k] !== null && v[k] !== '',
      );
      if (!set) fail(ctx, path, 'redirect must specify URI, authority, scheme, or port');
    },
  },
);

const MAX_DIRECT_RESPONSE_BYTES = 1024 * 1024;

const directResponse: Validator = object(
  {
    status: httpStatus('direct response status'),
    body: object(
      {
        string: string(),
        bytes: string({ pattern: /^[A-Za-z0-9+/]*={0,2}$/, patternName: 'base64 data' }),
      },
      { oneOf: [['string', 'bytes']] },
    ),
  },
  {
    required: ['status'],
    check: (v, path, ctx) => {
      const body = isObject(v.body) ? v.body : {};
      const size =
        typeof body.string === 'string'
          ? new TextEncoder().encode(body.string).length
          : typeof body.bytes === 'string'
            ? Math.floor((body.bytes.length * 3) / 4)
            : 0;
      if (size >= MAX_DIRECT_RESPONSE_BYTES) {
        fail(
          ctx,
          join(path, 'body'),
          `direct response body is ${size} bytes; it must be less than ${MAX_DIRECT_RESPONSE_BYTES} (large direct_responses may impact control plane performance)`,
        );
      }
    },
  },
);

const delegate: Validator = object(
  { name: dns1123Subdomain('delegate name'), namespace: dns1123Label('delegate namespace') },
  { required: ['name'] },
);

const rewrite: Validator = object(
  {
    uri: string(),
    authority: string(),
    uriRegexRewrite: object({ match: regex(), rewrite: string() }, { required: ['match', 'rewrite'] }),
  },
  {
    oneOf: [['uri', 'uriRegexRewrite']],
    check: (v, path, ctx) => {
      if (!v.uri && !v.authority && !v.uriRegexRewrite) {
        fail(ctx, path, 'rewrite must specify at least one of uri, authority or uriRegexRewrite');
      }
    },
  },
);

/** Envoy retry policies Istio accepts in `retryOn`, besides HTTP status codes. */
export const RETRY_ON_POLICIES = [
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;

const retryOn: Validator = string({
  check: (v, path, ctx) => {
    for (const raw of v.split(',')) {
      const token = raw.trim();
      if (/^\d+$/.test(token)) {
        const code = Number(token);
        if (code < 100 || code > 599)
          fail(ctx, path, `retryOn status code ${token} is not an HTTP status (100-599)`);
        continue;
      }
      if (!(RETRY_ON_POLICIES as readonly string[]).includes(token)) {
        fail(
          ctx,
          path,
          `${JSON.stringify(token)} is not a valid retryOn policy: expected a comma-separated list of HTTP status codes and ${RETRY_ON_POLICIES.join(', ')}${hint(token, RETRY_ON_POLICIES)}`,
        );
      }
    }
  },
});

export const retries: Validator = object(
  {
    attempts: int({
      max: INT32_MAX,
      check: (v, path, ctx) => {
        if (v < 0) fail(ctx, path, `attempts ${v} cannot be negative (0 disables retries)`);
      },
    }),
    perTryTimeout: duration(),
    retryOn,
    retryRemoteLocalities: boolean(),
    retryIgnorePreviousHosts: boolean(),
    backoff: duration(),
  },
  {
    check: (v, path, ctx) => {
      const tuned = ['perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'backoff'].filter(
        (k) => v[k] != null,
      );
      if (v.attempts === 0 && tuned.length > 0) {
        warn(ctx, path, `attempts is 0, so retries are disabled and ${tuned.join(', ')} has no effect`);
      }
    },
  },
);

/** gRPC status names in code order: a name's index is its code. */
export const GRPC_STATUSES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

function unsupported(message: string): Validator {
  return (_v, path, ctx) => fail(ctx, path, message);
}

const fault: Validator = object(
  {
    delay: object(
      {
        fixedDelay: duration(),
        exponentialDelay: unsupported('exponentialDelay is not supported yet: use fixedDelay'),
        percentage: percent(),
        percent: intPercent(),
      },
      { exactlyOneOf: [['fixedDelay', 'exponentialDelay']], deprecated: { percent: 'use percentage' } },
    ),
    abort: object(
      {
        httpStatus: httpStatus('abort http status'),
        grpcStatus: string({ enum: GRPC_STATUSES }),
        http2Error: unsupported('HTTP/2 abort fault injection not supported yet'),
        percentage: percent(),
      },
      { exactlyOneOf: [['httpStatus', 'grpcStatus', 'http2Error']] },
    ),
  },
  {
    check: (v, path, ctx) => {
      if (v.delay == null && v.abort == null)
        fail(ctx, path, 'HTTP fault injection must have an abort and/or a delay');
    },
  },
);

function mirrorShare(field: string): Validator {
  return number({
    check: (v, path, ctx) => {
      if (v > 100) fail(ctx, path, `${field} must have a max value of 100, found ${v}`);
      if (v < 0) fail(ctx, path, `${field} must not be negative, found ${v}`);
    },
  });
}

const mirrorPolicy: Validator = object(
  { destination: destination(), percentage: object({ value: mirrorShare('mirror percentage') }) },
  { required: ['destination'] },
);

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

const corsHeaderName: Validator = string({
  check: (v, path, ctx) => {
    if (v !== '*' && !isHeaderName(v)) fail(ctx, path, `header name ${v} is not a valid header name`);
  },
});

const corsPolicy: Validator = object(
  {
    allowOrigin: array(string()),
    allowOrigins: array(stringMatch()),
    allowMethods: array(
      string({
        check: (v, path, ctx) => {
          if (v !== '*' && !HTTP_METHODS.includes(v)) {
            fail(
              ctx,
              path,
              `${JSON.stringify(v)} is not a supported HTTP method: expected one of ${HTTP_METHODS.join(', ')}`,
            );
          }
        },
      }),
    ),
    allowHeaders: array(corsHeaderName),
    exposeHeaders: array(corsHeaderName),
    maxAge: duration({}),
    allowCredentials: boolean(),
    unmatchedPreflights: string({ enum: ['UNSPECIFIED', 'FORWARD', 'IGNORE'] }),
  },
  {
    deprecated: { allowOrigin: 'use allowOrigins' },
    check: (v, path, ctx) => {
      const ms = typeof v.maxAge === 'string' ? parseDuration(v.maxAge) : undefined;
      if (ms !== undefined && ms % 1000 !== 0) {
        fail(ctx, join(path, 'maxAge'), `maxAge ${v.maxAge} is accurate only to seconds: use whole seconds`);
      }
    },
  },
);

// ---- the route -------------------------------------------------------------------------------------

const set = (v: Record<string, unknown>, k: string) =>
  v[k] !== undefined && v[k] !== null && !(Array.isArray(v[k]) && (v[k] as unknown[]).length === 0);

// Istio's pairs of route actions that exclude each other: [first, second, how the message names them].
const conflicts: [string, string, string][] = [
  ['route', 'delegate', 'route and delegate'],
  ['redirect', 'delegate', 'redirect and delegate'],
  ['directResponse', 'delegate', 'direct_response and delegate'],
  ['route', 'redirect', 'route and redirect'],
  ['fault', 'redirect', 'fault and redirect'],
  ['rewrite', 'redirect', 'rewrite and redirect'],
  ['route', 'directResponse', 'route and direct_response'],
  ['fault', 'directResponse', 'fault and direct_response'],
  ['rewrite', 'directResponse', 'rewrite and direct_response'],
  ['redirect', 'directResponse', 'redirect and direct_response'],
  ['mirror', 'mirrors', 'mirror and mirrors'],
];

function checkRoute(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  for (const [a, b, words] of conflicts) {
    if (set(v, a) && set(v, b)) fail(ctx, join(path, b), `HTTP route cannot contain both ${words}`);
  }
  if (!set(v, 'route') && !set(v, 'redirect') && !set(v, 'directResponse') && !set(v, 'delegate')) {
    fail(ctx, path, 'HTTP route, redirect or direct_response is required');
  }
  const r = v.redirect;
  if (isObject(r) && typeof r.prefixRewrite === 'string') {
    const matches = Array.isArray(v.match) ? v.match : [];
    const prefixOnly =
      matches.length > 0 &&
      matches.every((m) => isObject(m) && isObject(m.uri) && m.uri.prefix !== undefined);
    if (!prefixOnly) {
      fail(
        ctx,
        join(join(path, 'redirect'), 'prefixRewrite'),
        'prefixRewrite requires every match to use a uri prefix',
      );
    }
  }
}

export const httpRoute: Validator = object(
  {
    name: string(),
    match: array(httpMatchRequest),
    route: weightedDestinations(httpRouteDestination),
    redirect,
    directResponse,
    delegate,
    rewrite,
    timeout: duration(),
    retries,
    fault,
    mirror: destination(),
    mirrors: array(mirrorPolicy),
    mirrorPercent: uint32({
      check: (v, path, ctx) => {
        if (v > 100) fail(ctx, path, `mirror_percent must have a max value of 100, found ${v}`);
      },
    }),
    mirrorPercentage: object({ value: mirrorShare('mirror_percentage') }),
    corsPolicy,
    headers: headers(),
    // Removed from Istio's API (1.0 made upgrades automatic): say so rather than "unknown field".
    websocketUpgrade: (_v, path, ctx) =>
      fail(
        ctx,
        path,
        'websocketUpgrade was removed from Istio: WebSocket upgrades are allowed on every HTTP route, delete the field',
      ),
  },
  {
    deprecated: { mirrorPercent: 'use mirrorPercentage' },
    check: checkRoute,
  },
);
