// An HTTPS Gateway server's TLS termination as the gateway proxy runs it: SNI names from its hosts,
// certificates from files or from the control plane's credential store, versions and ciphers in
// Node's (OpenSSL's) vocabulary, client certificate checks for MUTUAL and OPTIONAL_MUTUAL.
import { opensslCipher } from '../api/kinds/cipher-suites.ts';
import type { Server, TLSProtocol } from '../api/kinds/gateway.ts';
import type { Resource } from '../api/resource.ts';
import type { GatewaySpec, MeshIndex } from './mesh-index.ts';
import type { GatewayTlsServer, ProxyNode } from './snapshot.ts';

/** Istio's gateway defaults: TLS 1.2 up to 1.3. */
const VERSIONS: Record<TLSProtocol, string | undefined> = {
  TLS_AUTO: undefined,
  TLSV1_0: 'TLSv1',
  TLSV1_1: 'TLSv1.1',
  TLSV1_2: 'TLSv1.2',
  TLSV1_3: 'TLSv1.3',
};

const TERMINATED = new Set(['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL']);

/** Does this server terminate TLS here (HTTPS, with a mode Trellis serves)? Others are warned at apply. */
export function terminatesTls(server: Server): boolean {
  return server.port.protocol.toUpperCase() === 'HTTPS' && TERMINATED.has(server.tls?.mode ?? 'PASSTHROUGH');
}

/**
 * SNI names from the server's `[namespace/]host` entries. `*` answers any name — and clients that
 * send none — as Envoy's filter chain without `server_names` does.
 */
export function serverNames(hosts: readonly string[]): string[] {
  const names = hosts.map((h) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h).toLowerCase());
  return names.includes('*') ? [] : [...new Set(names)];
}

export function gatewayTlsServer(
  index: MeshIndex,
  node: ProxyNode,
  gw: Resource<GatewaySpec>,
  i: number,
): GatewayTlsServer {
  const server = gw.spec.servers[i];
  const t = server.tls ?? {};
  // Credentials live beside the gateway workload, as Istio reads Secrets in its namespace.
  const credential = (name: string) => ({ name, ...index.credentials.get(`${node.namespace}/${name}`) });
  const keyPairs = t.credentialNames ?? (t.credentialName ? [t.credentialName] : []);
  const credentials = keyPairs.map((name) => {
    const { certificateChain, privateKey } = credential(name);
    return { name, certificateChain, privateKey };
  });
  const mode = t.mode as GatewayTlsServer['mode'];
  const caCredential =
    mode === 'SIMPLE' ? undefined : clientCa(index, node, t.caCertCredentialName, keyPairs[0]);
  const ciphers = t.cipherSuites?.map(opensslCipher).filter((c) => c !== undefined);
  // Each HTTPS server has a route table of its own, named like the server.
  const name = `https.${server.port.number}.${server.port.name}.${gw.metadata.name}.${gw.metadata.namespace}`;
  return {
    name,
    origin: `Gateway ${gw.metadata.namespace}/${gw.metadata.name} servers[${i}]`,
    serverNames: serverNames(server.hosts),
    routeTable: name,
    mode,
    ...(t.serverCertificate && { serverCertificate: t.serverCertificate }),
    ...(t.privateKey && { privateKey: t.privateKey }),
    ...(t.caCertificates && mode !== 'SIMPLE' && { caCertificates: t.caCertificates }),
    ...(t.caCrl && mode !== 'SIMPLE' && { caCrl: t.caCrl }),
    ...(t.tlsCertificates && {
      tlsCertificates: t.tlsCertificates.map(({ serverCertificate, privateKey }) => ({
        serverCertificate: serverCertificate!,
        privateKey: privateKey!,
      })),
    }),
    ...(credentials.length > 0 && { credentials }),
    ...(caCredential && !t.caCertificates && { caCredential }),
    minVersion: VERSIONS[t.minProtocolVersion ?? 'TLS_AUTO'] ?? 'TLSv1.2',
    maxVersion: VERSIONS[t.maxProtocolVersion ?? 'TLS_AUTO'] ?? 'TLSv1.3',
    ...(ciphers?.length && { ciphers: ciphers.join(':') }),
    ...(mode !== 'SIMPLE' && t.subjectAltNames?.length && { subjectAltNames: t.subjectAltNames }),
    ...(mode !== 'SIMPLE' &&
      t.verifyCertificateHash?.length && {
        certificateHashes: t.verifyCertificateHash.map((h) => h.replaceAll(':', '').toLowerCase()),
      }),
    ...(mode !== 'SIMPLE' && t.verifyCertificateSpki?.length && { spkiHashes: t.verifyCertificateSpki }),
  };
}

/**
 * Istio's order for the client CA of a credential-backed MUTUAL server: `caCertCredentialName`, then
 * a separate `<credentialName>-cacert`, then the credential's own `ca.crt`.
 */
function clientCa(
  index: MeshIndex,
  node: ProxyNode,
  caName: string | undefined,
  keyPair: string | undefined,
): { name: string; caCertificates?: string } | undefined {
  const at = (name: string) => index.credentials.get(`${node.namespace}/${name}`);
  const name = caName ?? (keyPair && at(`${keyPair}-cacert`) ? `${keyPair}-cacert` : keyPair);
  if (!name) return undefined;
  const ca = at(name)?.caCertificates;
  return ca === undefined ? { name } : { name, caCertificates: ca };
}
