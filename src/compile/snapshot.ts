// The ProxySnapshot: the only contract between control plane and data plane. Plain JSON-able data,
// fully resolved: the proxy needs no Istio resource to run it. Encoding (JSON over the push stream)
// is kept separate from this shape.

export const SNAPSHOT_SCHEMA_VERSION = 5;

export type ProxyRole = 'sidecar' | 'gateway';

/** What a proxy says about itself when it connects (cf. Envoy's Node metadata). */
export interface ProxyNode {
  /** Unique per proxy instance, e.g. `reviews-v1-0.default`. */
  id: string;
  role: ProxyRole;
  /** The Workload resource it belongs to. */
  workload: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  /** Address peers reach its inbound listener at. */
  address: string;
  /** Port of the mTLS inbound listener (sidecars). */
  inboundPort?: number;
  /** Workload (container) ports the app listens on. */
  ports: WorkloadPort[];
  /** Gateway listeners: server port number → bound host port. */
  gatewayPorts?: Record<string, number>;
  /** Whether the app answers its readiness probe. */
  healthy: boolean;
}

export interface WorkloadPort {
  name?: string;
  port: number;
  protocol?: string;
}

export interface ProxySnapshot {
  schema: number;
  /** Content hash: equal versions are equal snapshots. */
  version: string;
  /** Store revision this snapshot was compiled from; `apply` returns it, proxy-status compares with it. */
  revision: number;
  proxy: {
    id: string;
    role: ProxyRole;
    namespace: string;
    identity: string;
    /** `region/zone/subzone` from the workload's topology labels, for locality-aware balancing. */
    locality?: string;
    /** The workload's labels, when a cluster's `failoverPriority` ranks endpoints by them. */
    labels?: Record<string, string>;
  };
  trustDomain: string;
  listeners: Listener[];
  routeTables: RouteTable[];
  clusters: Cluster[];
  /** How this proxy reads requests (mesh config); absent: Istio's defaults (BASE normalization). */
  http?: HttpOptions;
}

/** meshConfig.pathNormalization.normalization; DEFAULT resolves to BASE. */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export interface HttpOptions {
  pathNormalization: PathNormalization;
}

export type Listener = OutboundListener | InboundListener | GatewayListener;

/** Where the app's calls land: an HTTP forward proxy in the local runtime. */
export interface OutboundListener {
  name: 'outbound';
  type: 'outbound';
  routeTable: string;
  /**
   * For a host the route table does not know: REGISTRY_ONLY answers 502 NR, ALLOW_ANY passes the
   * request through to the host the app named. The workload's Sidecar, else the mesh config.
   */
  outboundTrafficPolicy?: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  /** Service VIP → host, for connections captured in the workload's network namespace. */
  addresses?: Record<string, string>;
}

/** The mesh-facing mTLS listener of a sidecar; forwards to the app. */
export interface InboundListener {
  name: 'inbound';
  type: 'inbound';
  /** STRICT: mutual TLS only, plaintext refused. PERMISSIVE: plaintext accepted too (PeerAuthentication). */
  mtls: 'STRICT' | 'PERMISSIVE';
  /** Workload port → mode, where a PeerAuthentication's portLevelMtls sets one. */
  portMtls?: Record<string, 'STRICT' | 'PERMISSIVE'>;
  /** Service port (by SNI `outbound_.<port>_.<subset>_.<host>`) → the workload port to forward to. */
  services: InboundService[];
  /** Workload ports this proxy forwards to, each an inbound cluster `inbound|<port>||`. */
  ports: number[];
  /** Workload port → the app port a Sidecar ingress listener's `defaultEndpoint` sends it to instead. */
  endpoints?: Record<string, number>;
  /** RequestAuthentication: the JWTs this workload verifies; absent when no policy applies. */
  jwtRules?: JwtRule[];
  /** The AuthorizationPolicies that apply to this workload; absent: none, every request is allowed. */
  authorization?: Authorization;
  /**
   * `authorization` as Istio builds it for TCP connections (compile/tcp-authorization.ts): ALLOW rules
   * with HTTP-only fields dropped, HTTP-only fields of DENY and AUDIT rules left out. Absent: the
   * same as `authorization` (no rule uses an HTTP-only field).
   */
  tcpAuthorization?: Authorization;
}

export interface InboundService {
  host: string;
  port: number;
  targetPort: number;
}

/** One listener per port the gateway's servers resolve to (the Service's targetPort, as in Istio). */
export interface GatewayListener {
  name: string; // `0.0.0.0_<port>`
  type: 'gateway';
  port: number;
  /** HTTPS: TLS is terminated, and SNI picks one of `tls`' servers for each connection. */
  protocol: 'HTTP' | 'HTTPS';
  /** HTTP: the port's route table. HTTPS: that of the first of `tls`' servers; each names its own. */
  routeTable: string;
  /** HTTPS: the servers TLS is terminated for (gateway-tls.ts). */
  tls?: GatewayTlsServer[];
  /** The Gateway resources (ns/name) whose servers make up this listener. */
  gateways: string[];
  /** RequestAuthentication: the JWTs this gateway verifies; absent when no policy applies. */
  jwtRules?: JwtRule[];
  /** The AuthorizationPolicies that apply to this gateway; absent: none, every request is allowed. */
  authorization?: Authorization;
}

/** One HTTPS Gateway server: its SNI names, certificates, client checks and route table. */
export interface GatewayTlsServer {
  /** Istio's route name for it: `https.<server port>.<port name>.<gateway>.<namespace>`. */
  name: string;
  /** `Gateway <ns>/<name> servers[<i>]`, for explaining refusals. */
  origin: string;
  /** SNI names it answers, exact or `*.suffix`; empty: any name, and clients sending none. */
  serverNames: string[];
  routeTable: string;
  mode: 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL';
  /** Files on the gateway's machine; each takes the place of the credential's. */
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  caCrl?: string;
  /** `tlsCertificates`: more key pairs (e.g. RSA and ECDSA); the handshake picks one. */
  tlsCertificates?: { serverCertificate: string; privateKey: string }[];
  /**
   * `credentialName(s)`: key pairs from the control plane's credential store, in the gateway's
   * namespace; a field the credential lacks is absent (the server is then refused, not half served).
   */
  credentials?: { name: string; certificateChain?: string; privateKey?: string }[];
  /** The client CA from the store: `caCertCredentialName`, `<credentialName>-cacert`, or its ca.crt. */
  caCredential?: { name: string; caCertificates?: string };
  /** Node's names: `TLSv1`…`TLSv1.3`. */
  minVersion: string;
  maxVersion: string;
  /** OpenSSL cipher list (TLS ≤ 1.2); absent: the defaults. */
  ciphers?: string;
  /** Client certificate checks, after the CA's. */
  subjectAltNames?: string[];
  certificateHashes?: string[];
  spkiHashes?: string[];
}

/** Where a token is looked for; compile fills in the default (`Authorization: Bearer`, `access_token`). */
export interface JwtLocations {
  headers: { name: string; prefix?: string }[];
  params: string[];
  cookies: string[];
}

/** One `jwtRules[]` entry of a RequestAuthentication, resolved: its key set is in the snapshot. */
export interface JwtRule {
  /** `RequestAuthentication <ns>/<name> jwtRules[<i>]`. */
  origin: string;
  issuer: string;
  /** Any may match; absent: no audience check. */
  audiences?: string[];
  /**
   * The JSON Web Key Set as JSON, inline or fetched by the control plane. Absent when the key set
   * could not be had: tokens of this issuer are then rejected (fail closed).
   */
  jwks?: string;
  /** Why `jwks` is absent, for explaining the rejection. */
  jwksError?: string;
  locations: JwtLocations;
  outputPayloadToHeader?: string;
  outputClaimToHeaders?: { header: string; claim: string }[];
  /** Default false: the token's header or parameter is removed before the request goes on. */
  forwardOriginalToken?: boolean;
}

/**
 * AuthorizationPolicy resolved for one proxy. The proxy evaluates CUSTOM, then DENY, then ALLOW (no
 * ALLOW policy: allowed; some, none matching: denied); AUDIT only records. Each list holds the
 * policies of that action, sorted by name; an action without policies is absent.
 */
export interface Authorization {
  custom?: AuthorizationPolicyRules[];
  /**
   * With `custom`: the external authorizer the CUSTOM policies ask (Istio allows one per workload),
   * or why there is none they can ask; then every request they match is denied (fail closed).
   */
  extAuthz?: ExtAuthz;
  deny?: AuthorizationPolicyRules[];
  allow?: AuthorizationPolicyRules[];
  audit?: AuthorizationPolicyRules[];
}

export type ExtAuthz = ExtAuthzProvider | ExtAuthzUnavailable;

export interface ExtAuthzUnavailable {
  /** The provider (or providers) named, and what is wrong: unknown, more than one, no such service. */
  error: string;
}

/** A mesh config `extensionProviders` entry of kind envoyExtAuthzHttp or envoyExtAuthzGrpc, resolved. */
export interface ExtAuthzProvider {
  name: string;
  protocol: 'HTTP' | 'GRPC';
  /** The cluster (in `clusters`) that reaches the authorizer: the mesh service, or a ServiceEntry's endpoints. */
  cluster: string;
  /** Default 600 s, as Istio's. */
  timeoutMs: number;
  /** On an error (timeout, unreachable, bad answer): allow (and go on to DENY and ALLOW) instead of deny. */
  failOpen: boolean;
  /** The status of a denial for an error; default 403. */
  statusOnError: number;
  /** HTTP: prepended to the request's path in the check request. */
  pathPrefix?: string;
  /** HTTP: header names (lower case; `x-*` prefix, `*-x` suffix) sent besides Host, Method, Path, Content-Length. */
  includeRequestHeaders?: string[];
  /** HTTP: set on the check request. */
  includeAdditionalHeaders?: { name: string; value: string }[];
  /** The request body goes with the check, up to `maxRequestBytes`. */
  includeRequestBody?: { maxRequestBytes: number; allowPartialMessage: boolean; packAsBytes: boolean };
  /** HTTP: authorizer response headers set on the upstream request on allow; absent: none. */
  headersToUpstreamOnAllow?: string[];
  /** HTTP: authorizer response headers sent to the client on deny; absent: all but Host. */
  headersToDownstreamOnDeny?: string[];
  /** HTTP: authorizer response headers added to the client's response on allow; absent: none. */
  headersToDownstreamOnAllow?: string[];
}

export interface AuthorizationPolicyRules {
  /** `<namespace>/<name>`. */
  name: string;
  /** `istio.io/dry-run: "true"`: evaluated and logged, never enforced (not for CUSTOM, as in Istio). */
  dryRun?: boolean;
  /** CUSTOM: the extension provider the policy names. */
  provider?: string;
  /** A rule matches when one of `from`, one of `to` and every `when` does; no rules: matches nothing. */
  rules: AuthorizationRule[];
}

/** An absent list matches every request. */
export interface AuthorizationRule {
  from?: AuthorizationSource[];
  to?: AuthorizationOperation[];
  when?: AuthorizationCondition[];
}

/**
 * String values keep Istio's syntax: `abc` exact, `abc*` prefix, `*abc` suffix, `*` any non-empty
 * value. Within a source or operation every field set must match; `not*` fields must not.
 */
export interface AuthorizationSource {
  /** `<trust domain>/ns/<ns>/sa/<sa>` (the peer's SPIFFE ID without `spiffe://`), trust domain aliases expanded. */
  principals?: string[];
  notPrincipals?: string[];
  /** `<iss>/<sub>` of the request's verified JWT. */
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  /** `<ns>/<sa>`, exact. */
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  trustDomains?: string[];
  notTrustDomains?: string[];
  /** CIDR blocks (`10.0.0.1/32` for one address): the connection's peer address. */
  ipBlocks?: string[];
  notIpBlocks?: string[];
  /** CIDR blocks: the original client address (the peer address, with no trusted proxies in front). */
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

export interface AuthorizationOperation {
  /** Lower-case; compared with the lower-cased authority, port included when the request has one. */
  hosts?: string[];
  notHosts?: string[];
  /** The port the request came in on: the workload (target) port, or the gateway server port. */
  ports?: number[];
  notPorts?: number[];
  methods?: string[];
  notMethods?: string[];
  /** Against the normalized path without the query; also Envoy templates with `{*}` and `{**}`. */
  paths?: string[];
  notPaths?: string[];
}

export interface AuthorizationCondition {
  /** Istio's attribute; in `request.headers[<name>]` the name is lower-case. */
  key: string;
  /** IP conditions hold CIDR blocks, `destination.port` port numbers as strings. */
  values?: string[];
  notValues?: string[];
}

export interface RouteTable {
  name: string;
  virtualHosts: VirtualHost[];
}

export interface VirtualHost {
  name: string;
  /** Exact host names (lower-case, with and without `:port`) and `*.suffix` wildcards; `*` matches all. */
  domains: string[];
  routes: Route[];
  /** A service port that is not plain HTTP (compile/protocol.ts): how its connections are proxied. */
  l4?: L4Routing;
}

/**
 * L4 proxying of one service port. TCP: the first `tcp` route that matches. TLS: the first `tls` route
 * whose SNI hosts match the ClientHello, else as TCP. AUTO: sniffed per connection, HTTP goes to the
 * virtual host's `routes`, anything else as TCP. Nothing matching: the connection is closed (NR).
 */
export interface L4Routing {
  protocol: 'TCP' | 'TLS' | 'AUTO';
  tls?: TlsRoute[];
  tcp: TcpRoute[];
}

/** The matches settled at compile (port, sourceLabels, sourceNamespace, gateways) are left out. */
export interface L4Match {
  /** CIDR blocks the connection's destination address must be in. */
  destinationSubnets?: string[];
}

export interface TlsMatch extends L4Match {
  /** Lower-case; `*.suffix` wildcards, `*` any. */
  sniHosts: string[];
}

export interface TcpRoute {
  /** `<namespace>/<virtualservice>#tcp<i>`, or `default`. */
  name: string;
  origin: string;
  /** ORed; an empty list matches every connection. */
  matches: L4Match[];
  clusters: WeightedCluster[];
}

export interface TlsRoute extends TcpRoute {
  matches: TlsMatch[];
}

/** One of the fields; `{}` means "present, with any value". */
export interface StringMatch {
  exact?: string;
  prefix?: string;
  /** RE2-compatible pattern, matched against the whole value. */
  regex?: string;
}

export interface HeaderMatch {
  name: string; // lower-case
  match: StringMatch;
  /** A VirtualService `@request.auth.claims` key: the verified JWT's claim at this path, not a header. */
  claim?: string[];
}

/** All fields are ANDed. Source-scoped fields (sourceLabels, sourceNamespace, gateways) are resolved by compile. */
export interface RouteMatch {
  uri?: StringMatch;
  /** exact and prefix uri matches compare case-insensitively. */
  ignoreUriCase?: boolean;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: HeaderMatch[];
  /** Headers that must not match (a `{}` match: must be absent). */
  withoutHeaders?: HeaderMatch[];
  queryParams?: HeaderMatch[];
  /** The port the request was addressed to, when compile could not settle it. */
  port?: number;
}

export interface WeightedCluster {
  cluster: string;
  weight: number;
  /** The destination's own header edits (HTTPRouteDestination `headers`), applied before the route's. */
  headers?: HeaderEdits;
}

export interface HeaderOps {
  /** Lower-case names. */
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface HeaderEdits {
  request?: HeaderOps;
  response?: HeaderOps;
}

/** VirtualService `retries`, or Istio's default policy when a route sets none. */
export interface RetryPolicy {
  /** Retries after the first try (Istio's `attempts`). */
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy retry conditions (`5xx`, `connect-failure`, ..., `retriable-status-codes`). */
  on: string[];
  /** For `retriable-status-codes`. */
  statusCodes: number[];
  /** Envoy's jittered exponential backoff: base interval, capped at 10 times it. */
  backoffMs: number;
  /** Envoy's previous-hosts predicate: a retry goes to an endpoint not tried yet when there is one. */
  ignorePreviousHosts: boolean;
  /** Retries may leave the proxy's locality (`retryRemoteLocalities`). */
  remoteLocalities?: boolean;
  /** `VirtualService ns/name http[i] retries`, or the default policy's name. */
  origin: string;
}

export interface FaultPolicy {
  delay?: { ms: number; percent: number };
  /** `grpcStatus` is answered as a trailers-only gRPC response with HTTP status 200. */
  abort?: { status: number; grpcStatus?: number; percent: number };
}

/** VirtualService `rewrite`, settled per match. */
export interface PathRewrite {
  /** Replace the path (up to the query) with this, or only `prefix` when set. */
  uri?: string;
  /** The match's uri prefix that `uri` replaces; absent: the whole path. */
  prefix?: string;
  ignoreCase?: boolean;
  /** `uriRegexRewrite`: RE2, every match in the path replaced (Envoy's regex_rewrite). */
  regex?: { match: string; rewrite: string };
  authority?: string;
}

export interface MirrorPolicy {
  cluster: string;
  /** Share of requests copied, 0..100. */
  percent: number;
}

/** VirtualService `corsPolicy`, as Envoy's CORS filter applies it. */
export interface CorsPolicy {
  allowOrigins: StringMatch[];
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAgeSeconds?: number;
  allowCredentials?: boolean;
  unmatchedPreflights: 'FORWARD' | 'IGNORE';
}

export interface ForwardAction {
  type: 'forward';
  clusters: WeightedCluster[];
  timeoutMs?: number;
  retry?: RetryPolicy;
  fault?: FaultPolicy;
  rewrite?: PathRewrite;
  headers?: HeaderEdits;
  mirrors?: MirrorPolicy[];
  cors?: CorsPolicy;
}

export interface Route {
  /** `<namespace>/<virtualservice>` plus rule index, or `default` for the implicit route. */
  name: string;
  /** The user resource this route came from, for explaining decisions. */
  origin: string;
  /** ORed; an empty list matches every request. */
  matches: RouteMatch[];
  action: RouteAction;
}

export type RouteAction = ForwardAction | DirectAction | RedirectAction;

export interface DirectAction {
  type: 'direct';
  status: number;
  body?: string;
  /** The proxy's own decision (BlackHoleCluster): the response flag it carries, as the proxy's replies do. */
  flags?: string;
  /** The cluster metrics name as the destination service (`BlackHoleCluster`). */
  cluster?: string;
}

/** Parts left out keep the request's own value. */
export interface RedirectAction {
  type: 'redirect';
  status: number;
  uri?: string;
  /** `prefixRewrite`: the match's uri prefix and what replaces it. */
  prefixRewrite?: { prefix: string; replacement: string; ignoreCase?: boolean };
  authority?: string;
  scheme?: string;
  /** A port, or the scheme's default (80/443). */
  port?: number | 'protocol-default';
}

export interface Cluster {
  /** Istio-style: `outbound|<port>|<subset>|<fqdn>` or `inbound|<port>||`. */
  name: string;
  direction: 'outbound' | 'inbound';
  service?: string;
  port: number;
  subset?: string;
  /** `DestinationRule ns/name` that shaped this cluster, if any. */
  origin?: string;
  lb: LoadBalancerPolicy;
  /**
   * `warmup` (Envoy's slow start, ROUND_ROBIN and LEAST_REQUEST): an endpoint that joins the cluster
   * gets a share growing from minimumPercent to full over the window.
   */
  warmup?: { windowMs: number; minimumPercent: number; aggression: number };
  /** Locality-aware balancing (`localityLbSetting`); Istio turns it on when outlier detection is set. */
  locality?: LocalityLb;
  tls: UpstreamTls;
  /** Limits toward the upstream (DestinationRule `connectionPool`); absent: Envoy's defaults. */
  connectionPool?: ConnectionPool;
  /** Passive health checking (DestinationRule `outlierDetection`); absent: no ejection. */
  outlierDetection?: OutlierDetection;
  /**
   * The endpoints' addresses are DNS names the proxy resolves, again every `refreshMs` (ServiceEntry
   * resolution DNS and DNS_ROUND_ROBIN): STRICT makes every address an endpoint, LOGICAL takes the
   * first one only (Envoy's STRICT_DNS and LOGICAL_DNS).
   */
  dns?: { mode: 'STRICT' | 'LOGICAL'; refreshMs: number };
  /**
   * With `lb` PASSTHROUGH and no endpoints: the request goes to the host and port it names (original
   * destination: ServiceEntry resolution NONE, the PassthroughCluster). Metrics name the requested
   * host as destination_service and this as destination_service_name.
   */
  serviceName?: string;
  /** Inbound: the port speaks HTTP/2 (protocol GRPC or HTTP2): the sidecar talks h2c to the app. */
  http2?: boolean;
  endpoints: Endpoint[];
}

/** DestinationRule `loadBalancer`, resolved. */
export type LoadBalancerPolicy =
  | { type: 'ROUND_ROBIN' }
  /** Power of two choices over the endpoints' active requests. */
  | { type: 'LEAST_REQUEST' }
  | { type: 'RANDOM' }
  /** To the address the request was sent to (no endpoint set). */
  | { type: 'PASSTHROUGH' }
  | { type: 'RING_HASH' | 'MAGLEV'; hash: HashKey; tableSize?: number };

export interface LocalityLb {
  distribute?: { from: string; to: Record<string, number> }[];
  failover?: { from: string; to: string }[];
  failoverPriority?: string[];
}

export type HashKey =
  | { header: string }
  | {
      cookie: {
        name: string;
        path?: string;
        ttlMs?: number;
        attributes?: { name: string; value?: string }[];
      };
    }
  | { sourceIp: true }
  | { queryParameter: string };

/** How the proxy speaks TLS to the upstream. */
export type UpstreamTls =
  /** The mesh's mutual TLS; the server must present one of `identities` (secure naming). */
  | { mode: 'ISTIO_MUTUAL'; sni: string; identities: string[] }
  /** TLS to a server outside the mesh; `mutual` adds a client certificate. */
  | {
      mode: 'SIMPLE' | 'MUTUAL';
      sni?: string;
      /** Files on the proxy's machine, as Istio's sidecar reads them. CA bundle; absent: the system's roots. */
      caCertificates?: string;
      /** Revoked certificates (PEM CRLs) the server's chain is checked against. */
      caCrl?: string;
      subjectAltNames?: string[];
      insecureSkipVerify?: boolean;
      /** Client certificate chain and key, for MUTUAL. */
      clientCertificate?: string;
      privateKey?: string;
      /**
       * `credentialName`: the credential's PEM texts from the control plane's store, in place of the
       * files; a field it lacks is absent. Only this proxy's snapshot carries them.
       */
      credential?: { name: string; certificateChain?: string; privateKey?: string; caCertificates?: string };
    }
  /** Plaintext: the local app, or an upstream a DestinationRule sets to DISABLE. */
  | { mode: 'DISABLE' };

/** Envoy's circuit breakers and connection settings; absent fields keep Envoy's defaults (no limit). */
export interface ConnectionPool {
  maxConnections?: number;
  connectTimeoutMs?: number;
  tcpKeepalive?: { probes?: number; timeMs?: number; intervalMs?: number };
  maxConnectionDurationMs?: number;
  /** HTTP/1.1 requests waiting for a connection. */
  maxPendingRequests?: number;
  /** Requests in flight to the cluster. */
  maxRequests?: number;
  maxRequestsPerConnection?: number;
  /** Retries in flight to the cluster. */
  maxRetries?: number;
  idleTimeoutMs?: number;
  /** `h2UpgradePolicy: UPGRADE`: HTTP/1.1 requests go upstream as HTTP/2. */
  h2Upgrade?: boolean;
  /** `useClientProtocol: false` (without UPGRADE): every request goes upstream as HTTP/1.1. */
  http1Only?: boolean;
  /** `http2KeepAlive`: a PING on each idle HTTP/2 connection every interval, closed unanswered after timeout. */
  http2KeepAlive?: { intervalMs: number; timeoutMs: number };
  maxConcurrentStreams?: number;
  /** DestinationRule `retryBudget`: retries in flight limited to a share of requests in flight. */
  retryBudget?: { percent: number; minRetryConcurrency: number };
  /** `tcp.idleTimeout` for proxied TCP connections; absent: Istio's 1 h, 0: none. */
  tcpIdleTimeoutMs?: number;
}

/** Istio's outlierDetection, resolved with its defaults; a count of 0 turns that detector off. */
export interface OutlierDetection {
  consecutive5xxErrors: number;
  consecutiveGatewayErrors: number;
  /** Counted apart from 5xx only with `splitExternalLocalOriginErrors`. */
  consecutiveLocalOriginFailures: number;
  splitExternalLocalOriginErrors: boolean;
  /** `outlierDetectionHttpErrorCodes`: the statuses that count as errors, instead of every 5xx. */
  errorCodes?: number[];
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
  minHealthPercent: number;
}

export interface Endpoint {
  address: string;
  port: number;
  /** SPIFFE ID the endpoint's proxy presents. */
  identity?: string;
  labels?: Record<string, string>;
  /** Workload name, for telemetry (destination_workload). */
  workload?: string;
  namespace?: string;
  healthy: boolean;
  /** Envoy's load_balancing_weight (ServiceEntry `endpoints[].weight`); left out at 1. */
  weight?: number;
}
