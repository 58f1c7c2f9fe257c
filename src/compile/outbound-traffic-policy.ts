// outboundTrafficPolicy (the workload's Sidecar, else mesh config): what a sidecar does with a request
// for a host that neither the registry nor a ServiceEntry knows. Istio ends every outbound route table with a catch-all virtual
// host: REGISTRY_ONLY's `block_all` answers 502 itself (metrics name BlackHoleCluster), ALLOW_ANY's
// `allow_any` forwards to the PassthroughCluster, which sends the request to the host it names.
import type { ClusterSet } from './clusters.ts';
import type { MeshIndex } from './mesh-index.ts';
import type { SidecarScope } from './sidecar-scope.ts';
import type { Cluster, VirtualHost } from './snapshot.ts';

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';

const passthrough: Cluster = {
  name: PASSTHROUGH_CLUSTER,
  direction: 'outbound',
  port: 80,
  origin: 'meshConfig.outboundTrafficPolicy ALLOW_ANY',
  lb: { type: 'PASSTHROUGH' },
  tls: { mode: 'DISABLE' },
  serviceName: PASSTHROUGH_CLUSTER,
  endpoints: [],
};

export function outboundTrafficPolicyHost(
  index: MeshIndex,
  clusters: ClusterSet,
  scope: SidecarScope | undefined,
): VirtualHost {
  const own = scope?.outboundTrafficPolicy;
  const setBy = own ? `${scope!.origin} outboundTrafficPolicy` : 'meshConfig.outboundTrafficPolicy';
  if ((own ?? index.meshConfig.outboundTrafficPolicy) === 'ALLOW_ANY') {
    clusters.clusters.set(PASSTHROUGH_CLUSTER, passthrough);
    return {
      name: 'allow_any',
      domains: ['*'],
      routes: [
        {
          name: 'allow_any',
          origin: `${setBy} ALLOW_ANY (PassthroughCluster)`,
          matches: [],
          action: { type: 'forward', clusters: [{ cluster: PASSTHROUGH_CLUSTER, weight: 100 }] },
        },
      ],
    };
  }
  return {
    name: 'block_all',
    domains: ['*'],
    routes: [
      {
        name: 'block_all',
        origin: `${setBy} REGISTRY_ONLY (BlackHoleCluster): the host is neither a Service nor a ServiceEntry host visible to this namespace`,
        matches: [],
        action: { type: 'direct', status: 502, flags: 'NR', cluster: BLACKHOLE_CLUSTER },
      },
    ],
  };
}
