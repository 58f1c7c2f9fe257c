// Every TRL_ code, once: the HTTP status that goes with it and the cause it names. A code is a promise to
// users (they grep logs and script on it), so each cause a user would act on differently has its own, and
// a code, once shipped, keeps its meaning. docs/reference/errors.md is checked against this table.

export const ERROR_CODES = {
  // Requests and arguments
  TRL_INVALID_ARGUMENT: {
    status: 400,
    cause: 'a malformed API request body or path, a bad CLI argument, or an out-of-range option',
  },
  TRL_VALIDATION: { status: 400, cause: 'resources failed validation (see issues); nothing was applied' },
  TRL_NOT_FOUND: { status: 404, cause: 'no such API endpoint, kind, resource or proxy' },
  TRL_FILE_NOT_FOUND: {
    status: 404,
    cause: 'a file or directory given to the CLI does not exist or holds no resources',
  },
  TRL_CONFLICT: {
    status: 409,
    cause: 'the resource changed since it was read (resourceVersion); read it again',
  },
  TRL_UNEXPECTED_RESPONSE: {
    status: 502,
    cause: 'the API address answered, but not as a Trellis control plane: check --api / TRELLIS_API',
  },
  TRL_UNAVAILABLE: { status: 503, cause: 'the CLI cannot reach the control plane: start it, or check --api' },
  TRL_INTERNAL: { status: 500, cause: 'a bug: the details are in the control plane log' },
  TRL_PAYLOAD_TOO_LARGE: {
    status: 413,
    cause: 'an API request body over 1 MiB, or a certificate request over 64 KiB',
  },
  TRL_UNSUPPORTED_MEDIA_TYPE: { status: 415, cause: 'an API request body that is not application/json' },

  // Access to the control plane's HTTP API
  TRL_API_UNAUTHENTICATED: {
    status: 401,
    cause: 'an API request without the admin credential (Authorization: Bearer), or with a wrong one',
  },
  TRL_API_CROSS_ORIGIN: {
    status: 403,
    cause: "a browser request from another origin, or a Host that does not name the API's own address",
  },

  // Control plane process and state
  TRL_STATE_DIR_IN_USE: {
    status: 409,
    cause: 'another control plane or mesh uses this state directory: stop it, or use another one',
  },
  TRL_STORE: { status: 500, cause: 'the store cannot open, read or write its files (permissions, disk)' },
  TRL_STORE_CORRUPT: {
    status: 500,
    cause: 'a store file is damaged: restore the state directory from a backup',
  },
  TRL_STORE_CLOSED: { status: 503, cause: 'the store is closed: the control plane is shutting down' },
  TRL_LISTEN: { status: 500, cause: 'the control plane cannot listen on a port: pick a free one' },
  TRL_PLATFORM_USER: {
    status: 500,
    cause: 'trellis up, run as root, cannot create the system user an app or proxy runs as',
  },
  TRL_CAPTURE_SETUP: {
    status: 500,
    cause: 'trellis up cannot set up transparent capture (network namespace, veth, bridge or nftables rules)',
  },
  TRL_MESH_NOT_READY: {
    status: 503,
    cause: 'trellis up gave up waiting for the control plane or a workload: read the logs it names',
  },

  // Certificates
  TRL_UNAUTHENTICATED: {
    status: 401,
    cause: 'a proxy without a valid bootstrap credential (its own token) or mesh certificate',
  },
  TRL_PERMISSION_DENIED: {
    status: 403,
    cause: 'a proxy asked for a certificate of an identity its credential is not bound to',
  },
  TRL_WORKLOAD_MISMATCH: {
    status: 403,
    cause: "a proxy's hello claims a workload, labels, ports or address other than the platform's record",
  },
  TRL_CSR_REJECTED: {
    status: 400,
    cause: 'a certificate signing request is malformed, weakly keyed, badly signed or names another identity',
  },
  TRL_CA: { status: 500, cause: 'the CA certificate or key is missing, unreadable, inconsistent or expired' },
  TRL_CA_ROTATION_IN_PROGRESS: {
    status: 409,
    cause: 'a root rotation was asked for while one is under way: watch it with trellis ca status',
  },
  TRL_CA_ROTATION_PLUGGED: {
    status: 409,
    cause: 'a root rotation was asked of a control plane with a plugged-in CA (--ca-dir): rotate in your PKI',
  },

  // Proxy
  TRL_SNAPSHOT_REJECTED: {
    status: 500,
    cause: 'a proxy cannot apply a snapshot; the message is its NACK reason',
  },

  // HTTP/1.1 requests the proxy refuses before routing (flag DPE, then the connection is closed)
  TRL_HTTP_CL_TE_CONFLICT: { status: 400, cause: 'both Content-Length and Transfer-Encoding' },
  TRL_HTTP_DUPLICATE_CONTENT_LENGTH: { status: 400, cause: 'more than one Content-Length' },
  TRL_HTTP_INVALID_CONTENT_LENGTH: { status: 400, cause: 'a Content-Length that is not plain digits' },
  TRL_HTTP_UNSUPPORTED_TRANSFER_CODING: {
    status: 501,
    cause: 'a Transfer-Encoding other than a single chunked',
  },
  TRL_HTTP_TE_IN_HTTP10: { status: 400, cause: 'Transfer-Encoding in an HTTP/1.0 request' },
  TRL_HTTP_INVALID_TRANSFER_ENCODING: { status: 400, cause: 'a malformed Transfer-Encoding value' },
  TRL_HTTP_BARE_LF: { status: 400, cause: 'a line ending in LF without CR' },
  TRL_HTTP_BARE_CR: { status: 400, cause: 'a CR not followed by LF' },
  TRL_HTTP_OBS_FOLD: { status: 400, cause: 'a header line starting with whitespace (obsolete line folding)' },
  TRL_HTTP_INVALID_HEADER_TOKEN: {
    status: 400,
    cause: 'a bad header name, whitespace before the colon included',
  },
  TRL_HTTP_INVALID_HEADER_VALUE: { status: 400, cause: 'a control character in a header value' },
  TRL_HTTP_MISSING_HOST: { status: 400, cause: 'an HTTP/1.1 request without Host' },
  TRL_HTTP_DUPLICATE_HOST: { status: 400, cause: 'more than one Host' },
  TRL_HTTP_INVALID_HOST: { status: 400, cause: 'a Host or :authority that is not host[:port]' },
  TRL_HTTP_INVALID_METHOD: { status: 400, cause: 'a malformed method' },
  TRL_HTTP_INVALID_TARGET: { status: 400, cause: 'a malformed request-target' },
  TRL_HTTP_INVALID_VERSION: { status: 400, cause: 'a malformed HTTP version' },
  TRL_HTTP_INVALID_REQUEST_LINE: { status: 400, cause: 'too many empty lines before the request line' },
  TRL_HTTP_VERSION_NOT_SUPPORTED: { status: 505, cause: 'an HTTP version other than 1.0 or 1.1' },
  TRL_HTTP_INVALID_CHUNK: { status: 400, cause: 'a malformed chunked body' },
  TRL_HTTP_FORBIDDEN_TRAILER: { status: 400, cause: 'Content-Length, Transfer-Encoding or Host in trailers' },
  TRL_HTTP_DATA_AFTER_CLOSE: { status: 400, cause: 'another request after one that said Connection: close' },
  TRL_HTTP_UPGRADE_WITH_BODY: { status: 400, cause: 'an Upgrade request with a body' },
  TRL_HTTP_UPGRADE_NOT_SUPPORTED: { status: 403, cause: 'an Upgrade (or :protocol) other than websocket' },
  TRL_HTTP_CONNECT_NOT_ALLOWED: { status: 405, cause: "CONNECT anywhere but the sidecar's outbound port" },
  TRL_HTTP_URI_TOO_LONG: { status: 414, cause: 'a request line longer than the head limit' },
  TRL_HTTP_HEADERS_TOO_LARGE: { status: 431, cause: 'a request head (with trailers) larger than the limit' },
  TRL_HTTP_TOO_MANY_HEADERS: { status: 431, cause: 'more header fields than the limit' },
  TRL_HTTP_REQUEST_TIMEOUT: { status: 408, cause: 'no complete request head in time' },
} as const satisfies Record<string, { status: number; cause: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
