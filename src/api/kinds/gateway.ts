// Gateway: the listeners a gateway proxy opens (port, protocol, hosts, TLS).
import {
  all,
  array,
  boolean,
  type Ctx,
  fail,
  int,
  isObject,
  join,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import { opensslCipher } from './cipher-suites.ts';
import {
  caseInsensitiveEnum,
  gatewayHost,
  labels,
  NOT_ENFORCED,
  nonEmptyString,
  portNumber,
  stringList,
} from './common.ts';
import { isIP } from './syntax.ts';
import type { KindInfo } from './types.ts';

export const GATEWAY_PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'MONGO',
  'TCP',
  'TLS',
] as const;

export interface Port {
  number: number;
  /** One of GATEWAY_PROTOCOLS, compared case-insensitively. */
  protocol: string;
  name: string;
  /** Deprecated. */
  targetPort?: number;
}

export type ServerTLSMode =
  | 'PASSTHROUGH'
  | 'SIMPLE'
  | 'MUTUAL'
  | 'AUTO_PASSTHROUGH'
  | 'ISTIO_MUTUAL'
  | 'OPTIONAL_MUTUAL';

export type TLSProtocol = 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';

export interface TLSCertificate {
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
}

export interface ServerTLSSettings {
  httpsRedirect?: boolean;
  mode?: ServerTLSMode;
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  caCrl?: string;
  credentialName?: string;
  credentialNames?: string[];
  caCertCredentialName?: string;
  tlsCertificates?: TLSCertificate[];
  subjectAltNames?: string[];
  verifyCertificateSpki?: string[];
  verifyCertificateHash?: string[];
  minProtocolVersion?: TLSProtocol;
  maxProtocolVersion?: TLSProtocol;
  cipherSuites?: string[];
  insecureSkipVerify?: boolean;
}

export interface Server {
  port: Port;
  bind?: string;
  /** `[namespace/]dnsName`; `*` wildcards allowed. */
  hosts: string[];
  tls?: ServerTLSSettings;
  /** Unique across the Gateway's servers. */
  name?: string;
  defaultEndpoint?: string;
}

export interface GatewaySpec {
  /** Labels of the gateway workloads that open these listeners. */
  selector?: Record<string, string>;
  servers: Server[];
}

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** What a gateway listener terminates; TCP, TLS (passthrough) and MONGO come with the L4 path. */
const SERVED_PROTOCOLS = ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTPS'];

const port: Validator = object(
  {
    number: int({ min: 0, max: 65535 }),
    protocol: caseInsensitiveEnum(GATEWAY_PROTOCOLS, 'protocol'),
    name: nonEmptyString(),
    targetPort: portNumber(),
  },
  {
    required: ['number', 'protocol', 'name'],
    deprecated: { targetPort: 'the gateway listens on port.number' },
    check: (v, path, ctx) => {
      const protocol = String(v.protocol).toUpperCase();
      if (!SERVED_PROTOCOLS.includes(protocol)) {
        warn(
          ctx,
          join(path, 'protocol'),
          `${NOT_ENFORCED}: Trellis gateways serve ${SERVED_PROTOCOLS.join(', ')}, found ${v.protocol}`,
        );
      }
    },
  },
);

const spkiRe = /^[A-Za-z0-9+/]{43}=$/;
const certHashRe = /^([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$|^[0-9a-fA-F]{64}$/;

const tls: Validator = object(
  {
    httpsRedirect: boolean(),
    mode: string({
      enum: ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'],
    }),
    serverCertificate: nonEmptyString(),
    privateKey: nonEmptyString(),
    caCertificates: nonEmptyString(),
    caCrl: nonEmptyString(),
    credentialName: nonEmptyString(),
    credentialNames: stringList(nonEmptyString(), { min: 1, max: 2 }),
    caCertCredentialName: nonEmptyString(),
    tlsCertificates: array(
      object(
        {
          serverCertificate: nonEmptyString(),
          privateKey: nonEmptyString(),
          caCertificates: nonEmptyString(),
        },
        { required: ['serverCertificate', 'privateKey'] },
      ),
      { min: 1, max: 2 },
    ),
    subjectAltNames: stringList(nonEmptyString()),
    verifyCertificateSpki: stringList(
      string({
        pattern: spkiRe,
        patternName: 'a base64-encoded SHA-256 of the SubjectPublicKeyInfo (44 characters)',
      }),
    ),
    verifyCertificateHash: stringList(
      string({
        pattern: certHashRe,
        patternName: 'a hex-encoded SHA-256 of the certificate (64 hex digits, optionally colon-separated)',
      }),
    ),
    minProtocolVersion: string({ enum: TLS_VERSIONS }),
    maxProtocolVersion: string({ enum: TLS_VERSIONS }),
    cipherSuites: stringList(nonEmptyString()),
    insecureSkipVerify: boolean(),
  },
  {
    oneOf: [['credentialName', 'credentialNames', 'tlsCertificates']],
    check: checkServerTls,
  },
);

function checkServerTls(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const mode = (v.mode as string | undefined) ?? 'PASSTHROUGH';
  const credential = v.credentialName != null || v.credentialNames != null || v.tlsCertificates != null;
  const files = ['serverCertificate', 'privateKey', 'caCertificates'].filter((k) => v[k] != null);
  if (mode === 'ISTIO_MUTUAL') {
    const extra = [...files, 'credentialName', 'credentialNames', 'tlsCertificates'].filter(
      (k) => v[k] != null,
    );
    if (extra.length > 0)
      fail(ctx, path, `ISTIO_MUTUAL uses the mesh's own certificates: remove ${extra.join(', ')}`);
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (credential) {
      if (files.includes('serverCertificate') || files.includes('privateKey')) {
        fail(
          ctx,
          path,
          'serverCertificate and privateKey cannot be combined with credentialName(s) or tlsCertificates',
        );
      }
    } else {
      if (v.serverCertificate == null)
        fail(
          ctx,
          join(path, 'serverCertificate'),
          `${mode} TLS requires a server certificate (or credentialName)`,
        );
      if (v.privateKey == null)
        fail(ctx, join(path, 'privateKey'), `${mode} TLS requires a private key (or credentialName)`);
    }
    if (mode !== 'SIMPLE' && !credential && v.caCertificates == null && v.caCertCredentialName == null) {
      fail(
        ctx,
        join(path, 'caCertificates'),
        `${mode} TLS requires a client CA bundle (caCertificates or caCertCredentialName)`,
      );
    }
  }
  const min = TLS_VERSIONS.indexOf(v.minProtocolVersion as (typeof TLS_VERSIONS)[number]);
  const max = TLS_VERSIONS.indexOf(v.maxProtocolVersion as (typeof TLS_VERSIONS)[number]);
  if (min > 0 && max > 0 && min > max) {
    fail(
      ctx,
      join(path, 'minProtocolVersion'),
      `minProtocolVersion ${v.minProtocolVersion} is higher than maxProtocolVersion ${v.maxProtocolVersion}`,
    );
  }
  (Array.isArray(v.cipherSuites) ? v.cipherSuites : []).forEach((c, i) => {
    if (typeof c === 'string' && opensslCipher(c) === undefined) {
      fail(
        ctx,
        join(join(path, 'cipherSuites'), i),
        `unknown cipher suite ${JSON.stringify(c)}: expected an Envoy (BoringSSL) name such as ECDHE-RSA-AES128-GCM-SHA256, or its IANA name`,
      );
    }
  });
  // A redirect-only block on an HTTP server has no mode of its own to warn about.
  const onlyRedirect = Object.keys(v).every((k) => k === 'httpsRedirect');
  if ((mode === 'PASSTHROUGH' && !onlyRedirect) || mode === 'AUTO_PASSTHROUGH' || mode === 'ISTIO_MUTUAL') {
    warn(
      ctx,
      join(path, 'mode'),
      `${NOT_ENFORCED}: mode ${mode}${v.mode === undefined ? ' (the default)' : ''}; gateways terminate SIMPLE, MUTUAL and OPTIONAL_MUTUAL TLS`,
    );
  }
  if (v.insecureSkipVerify != null) warn(ctx, join(path, 'insecureSkipVerify'), NOT_ENFORCED);
}

const HTTP_PROTOCOLS = ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB'];

function checkServer(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const p = isObject(v.port) ? v.port : {};
  const protocol = String(p.protocol ?? '').toUpperCase();
  const t = isObject(v.tls) ? v.tls : undefined;
  if ((protocol === 'HTTPS' || protocol === 'TLS') && !t) {
    fail(
      ctx,
      join(path, 'tls'),
      `server must have TLS settings for HTTPS/TLS protocols (port protocol is ${p.protocol})`,
    );
  }
  if (t && HTTP_PROTOCOLS.includes(protocol)) {
    if (t.httpsRedirect !== true) {
      fail(
        ctx,
        join(path, 'tls'),
        'server cannot have TLS settings for plain text HTTP ports (only tls.httpsRedirect)',
      );
    }
  } else if (t?.httpsRedirect === true) {
    warn(
      ctx,
      join(join(path, 'tls'), 'httpsRedirect'),
      'tls.httpsRedirect should only be used with http servers',
    );
  }
  const bind = typeof v.bind === 'string' ? v.bind : undefined;
  const uds = bind?.startsWith('unix://') ?? false;
  if (p.number === 0 && !uds)
    fail(ctx, join(join(path, 'port'), 'number'), 'port number 0 is only valid with a unix:// bind');
  if (uds && typeof p.number === 'number' && p.number !== 0) {
    fail(ctx, join(join(path, 'port'), 'number'), `port must be 0 for unix domain socket: ${bind}`);
  }
}

const server: Validator = object(
  {
    port,
    bind: string({
      check: (v, path, ctx) => {
        if (!v.startsWith('unix://') && !isIP(v)) {
          fail(
            ctx,
            path,
            `bind ${JSON.stringify(v)} is not valid: expected an IP address or a unix:// socket path`,
          );
        }
      },
    }),
    hosts: array(gatewayHost()),
    tls,
    name: nonEmptyString(),
    defaultEndpoint: string({
      pattern: /^(unix:\/\/.+|[0-9.]+:\d+|\[[0-9a-fA-F:]+\]:\d+)$/,
      patternName: 'an "IP:port" or unix:// address such as "127.0.0.1:8080"',
    }),
  },
  {
    required: ['port'],
    notEnforced: ['bind', 'defaultEndpoint'],
    check: checkServer,
  },
);

/** Plain HTTP servers share a port's route table; TLS servers are told apart by SNI. */
function portClass(protocol: string): 'http' | 'tls' | 'tcp' {
  return HTTP_PROTOCOLS.includes(protocol)
    ? 'http'
    : protocol === 'HTTPS' || protocol === 'TLS'
      ? 'tls'
      : 'tcp';
}

/**
 * Servers on one port must be told apart as Istio's gateway merge does: one port speaks one protocol
 * class, and two TLS servers with the same host would leave SNI no way to choose (Istio drops the
 * second, IST0145 flags it).
 */
function checkPortSharing(servers: unknown[], path: string, ctx: Ctx): void {
  const ports = new Map<number, { i: number; cls: string; protocol: string; hosts: Map<string, number> }>();
  servers.forEach((s, i) => {
    if (!isObject(s) || !isObject(s.port) || typeof s.port.number !== 'number') return;
    const number = s.port.number;
    const protocol = String(s.port.protocol ?? '').toUpperCase();
    const at = join(join(path, 'servers'), i);
    const seen = ports.get(number);
    if (!seen) {
      ports.set(number, { i, cls: portClass(protocol), protocol, hosts: hostsOf(s, i) });
      return;
    }
    if (seen.cls !== portClass(protocol)) {
      fail(
        ctx,
        join(join(at, 'port'), 'protocol'),
        `port ${number} is already served as ${seen.protocol} by servers[${seen.i}]: servers on one port cannot mix ${seen.protocol} and ${protocol}`,
      );
      return;
    }
    if (seen.cls !== 'tls') return;
    (Array.isArray(s.hosts) ? s.hosts : []).forEach((h, j) => {
      if (typeof h !== 'string') return;
      const first = seen.hosts.get(sniHost(h));
      if (first !== undefined) {
        fail(
          ctx,
          join(join(at, 'hosts'), j),
          `host ${h} on port ${number} is already served by servers[${first}]: SNI cannot choose between them`,
        );
      } else seen.hosts.set(sniHost(h), i);
    });
  });
}

function hostsOf(s: Record<string, unknown>, i: number): Map<string, number> {
  const hosts = new Map<string, number>();
  for (const h of Array.isArray(s.hosts) ? s.hosts : []) if (typeof h === 'string') hosts.set(sniHost(h), i);
  return hosts;
}

/** The SNI name of a `[namespace/]host` entry. */
function sniHost(h: string): string {
  return (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h).toLowerCase();
}

function checkGateway(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const servers = Array.isArray(v.servers) ? v.servers : [];
  checkPortSharing(servers, path, ctx);
  const names = new Map<string, number>();
  const portNames = new Map<string, number>();
  servers.forEach((s, i) => {
    if (!isObject(s)) return;
    const at = join(join(path, 'servers'), i);
    if (typeof s.name === 'string') {
      const first = names.get(s.name);
      if (first !== undefined)
        fail(ctx, join(at, 'name'), `server name "${s.name}" is not unique (also servers[${first}])`);
      else names.set(s.name, i);
    }
    const portName = isObject(s.port) && typeof s.port.name === 'string' ? s.port.name : undefined;
    if (portName !== undefined) {
      const first = portNames.get(portName);
      if (first !== undefined) {
        fail(
          ctx,
          join(join(at, 'port'), 'name'),
          `port names in servers must be unique: duplicate name ${portName} (also servers[${first}])`,
        );
      } else portNames.set(portName, i);
    }
  });
}

const serverList = array(server);

export const gatewaySpec: Validator = all(
  object(
    {
      selector: labels(),
      servers: (v, path, ctx) => {
        serverList(v, path, ctx);
        if (!Array.isArray(v)) return;
        v.forEach((s, i) => {
          if (isObject(s) && (!Array.isArray(s.hosts) || s.hosts.length === 0)) {
            fail(ctx, join(join(path, i), 'hosts'), 'server config must contain at least one host');
          }
        });
      },
    },
    { check: checkGateway },
  ),
  (v, path, ctx) => {
    if (isObject(v) && (!Array.isArray(v.servers) || v.servers.length === 0)) {
      fail(ctx, join(path, 'servers'), 'gateway must have at least one server');
    }
  },
);

export const gateway: KindInfo = {
  group: 'networking.istio.io',
  kind: 'Gateway',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  plural: 'gateways',
  shortNames: ['gw'],
  spec: gatewaySpec,
};
