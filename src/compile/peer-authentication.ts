// PeerAuthentication → the mTLS mode of a sidecar's inbound listener, with Istio's precedence: a
// workload policy (selector) over its namespace's policy over the mesh-wide one (root namespace, no
// selector); UNSET inherits from the level above, the oldest policy wins within a level. With no policy
// at all Trellis is STRICT where Istio is PERMISSIVE. DISABLE is enforced as PERMISSIVE: Trellis
// sidecars keep mTLS among themselves and the workload also takes plaintext (warned at apply).
import type { MutualTLSMode, PeerAuthenticationSpec } from '../api/kinds/peer-authentication.ts';
import type { Resource } from '../api/resource.ts';
import { DEFAULT_MESH_CONFIG } from './mesh-config.ts';
import { labelsMatch } from './mesh-index.ts';
import type { InboundListener, ProxyNode } from './snapshot.ts';

type Mode = InboundListener['mtls'];

function effective(mode: MutualTLSMode | undefined): Mode | undefined {
  if (mode === undefined || mode === 'UNSET') return undefined;
  return mode === 'STRICT' ? 'STRICT' : 'PERMISSIVE';
}

/** `policies` oldest first; the selector-less ones in `rootNamespace` (meshConfig) apply mesh-wide. */
export function inboundMtls(
  policies: readonly Resource<PeerAuthenticationSpec>[],
  node: ProxyNode,
  rootNamespace = DEFAULT_MESH_CONFIG.rootNamespace,
): Pick<InboundListener, 'mtls' | 'portMtls'> {
  const selects = (p: Resource<PeerAuthenticationSpec>) =>
    p.metadata.namespace === node.namespace &&
    Object.keys(p.spec.selector?.matchLabels ?? {}).length > 0 &&
    labelsMatch(p.spec.selector?.matchLabels, node.labels);
  const wide = (ns: string) => (p: Resource<PeerAuthenticationSpec>) =>
    p.metadata.namespace === ns && Object.keys(p.spec.selector?.matchLabels ?? {}).length === 0;
  const workload = policies.find(selects);
  const namespace = policies.find(wide(node.namespace));
  const mesh = policies.find(wide(rootNamespace));
  const mtls =
    effective(workload?.spec.mtls?.mode) ??
    effective(namespace?.spec.mtls?.mode) ??
    effective(mesh?.spec.mtls?.mode) ??
    'STRICT';
  const portMtls: Record<string, Mode> = {};
  for (const [port, m] of Object.entries(workload?.spec.portLevelMtls ?? {})) {
    const mode = effective(m.mode);
    if (mode && mode !== mtls && node.ports.some((p) => String(p.port) === port)) portMtls[port] = mode;
  }
  return Object.keys(portMtls).length ? { mtls, portMtls } : { mtls };
}
