// What apply warns about CUSTOM policies. Istio accepts them as they are, and the proxies deny what
// they match: an unknown provider, two providers on one workload, a dry run Istio does not do for CUSTOM.
import { DRY_RUN_ANNOTATION } from '../api/kinds/authorization-policy.ts';
import { authorizationFor } from './authorization.ts';
import { EXT_AUTHZ_CONFIG } from './ext-authz.ts';
import type { MeshIndex } from './mesh-index.ts';
import type { ProxyNode } from './snapshot.ts';

export interface CustomPolicyWarning {
  resource: string;
  path: string;
  message: string;
}

export function customPolicyWarnings(index: MeshIndex, proxies: readonly ProxyNode[]): CustomPolicyWarning[] {
  const out: CustomPolicyWarning[] = [];
  const known = new Set(index.meshConfig.extensionProviders.map((p) => p.name));
  for (const p of index.authorizationPolicies) {
    if (p.spec.action !== 'CUSTOM') continue;
    const resource = `AuthorizationPolicy ${p.metadata.namespace}/${p.metadata.name}`;
    if (p.metadata.annotations?.[DRY_RUN_ANNOTATION] === 'true')
      out.push({
        resource,
        path: `metadata.annotations.${DRY_RUN_ANNOTATION}`,
        message: 'Istio supports dry run for ALLOW and DENY policies only: this CUSTOM policy is enforced',
      });
    const name = p.spec.provider?.name;
    if (name !== undefined && !known.has(name))
      out.push({
        resource,
        path: 'spec.provider.name',
        message: `extension provider ${JSON.stringify(name)} is not defined in ${EXT_AUTHZ_CONFIG} (yet): requests this policy matches are denied until it is`,
      });
  }
  const seen = new Set<string>();
  for (const node of proxies) {
    const ext = authorizationFor(index, node)?.extAuthz;
    if (ext && 'error' in ext && !seen.has(ext.error) && ext.error.includes('providers')) {
      seen.add(ext.error);
      out.push({
        resource: `proxy ${node.id}`,
        path: '',
        message: `${ext.error}: requests they match are denied`,
      });
    }
  }
  return out;
}
