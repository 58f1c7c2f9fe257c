// Protocol selection for a service port, as Istio does it: `appProtocol` if set, else the port name's
// prefix (`<protocol>[-<suffix>]`), case-insensitive; a port that names no protocol Istio knows is
// sniffed per connection (HTTP detected, anything else proxied as TCP).

/** Istio's protocol names (pkg/config/protocol). */
export type Protocol =
  | 'HTTP'
  | 'HTTP2'
  | 'HTTP_PROXY'
  | 'GRPC'
  | 'GRPC-Web'
  | 'HTTPS'
  | 'TLS'
  | 'TCP'
  | 'Mongo'
  | 'Redis'
  | 'MySQL'
  | 'UDP'
  | 'Unsupported';

const NAMES: Record<string, Protocol> = {
  tcp: 'TCP',
  udp: 'UDP',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-Web',
  http: 'HTTP',
  http_proxy: 'HTTP_PROXY',
  http2: 'HTTP2',
  https: 'HTTPS',
  tls: 'TLS',
  mongo: 'Mongo',
  redis: 'Redis',
  mysql: 'MySQL',
};

/** `protocol.Parse`: a protocol name, case-insensitive; anything else is Unsupported. */
export function parseProtocol(name: string): Protocol {
  return NAMES[name.toLowerCase()] ?? 'Unsupported';
}

/** Istio's ConvertProtocol for a Kubernetes service port. */
export function servicePortProtocol(p: { name?: string; protocol?: string; appProtocol?: string }): Protocol {
  if (p.protocol === 'UDP') return 'UDP';
  let name = p.name ?? '';
  if (p.appProtocol !== undefined) {
    // Kubernetes' standard appProtocol names, which a port name cannot hold.
    if (p.appProtocol === 'kubernetes.io/h2c') return 'HTTP2';
    if (p.appProtocol === 'kubernetes.io/ws') return 'HTTP';
    if (p.appProtocol === 'kubernetes.io/wss') return 'HTTPS';
    name = p.appProtocol;
  }
  // Before the prefix cut: the name itself holds a hyphen.
  if (name.toLowerCase().startsWith('grpc-web')) return 'GRPC-Web';
  const dash = name.indexOf('-');
  return parseProtocol(dash >= 0 ? name.slice(0, dash) : name);
}

/**
 * How a sidecar proxies the port: HTTP-family ports by the HTTP routes; TCP, Mongo, Redis and MySQL
 * (their Envoy filters are off by default in Istio) as opaque TCP; HTTPS and TLS by the ClientHello's
 * SNI, since a sidecar does not decrypt them; unknown names sniffed per connection.
 */
export type PortProxying = 'HTTP' | 'TCP' | 'TLS' | 'AUTO';

export function portProxying(p: Protocol): PortProxying {
  switch (p) {
    case 'HTTP':
    case 'HTTP2':
    case 'HTTP_PROXY':
    case 'GRPC':
    case 'GRPC-Web':
      return 'HTTP';
    case 'HTTPS':
    case 'TLS':
      return 'TLS';
    case 'TCP':
    case 'Mongo':
    case 'Redis':
    case 'MySQL':
    // UDP is not proxied (the validator warns); TCP on such a port is passed through as bytes.
    case 'UDP':
      return 'TCP';
    default:
      return 'AUTO';
  }
}
