// PeerAuthentication: whether a workload accepts plaintext or requires mutual TLS from its peers.
import { fail, isObject, join, map, object, string, type Validator, warn } from '../schema.ts';
import { NOT_ENFORCED, type WorkloadSelector, workloadSelector } from './common.ts';
import type { KindInfo } from './types.ts';

/** UNSET inherits from the namespace or mesh policy. */
export type MutualTLSMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface MutualTLS {
  mode?: MutualTLSMode;
}

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector;
  mtls?: MutualTLS;
  /** Port number (as a string key) → mode; needs a selector. */
  portLevelMtls?: Record<string, MutualTLS>;
}

const mutualTls: Validator = object({ mode: string({ enum: ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] }) });

const fields: Validator = object(
  {
    selector: workloadSelector(),
    mtls: mutualTls,
    portLevelMtls: map(mutualTls, {
      key: (k, path, ctx) => {
        const n = Number(k);
        if (!/^\d+$/.test(k as string) || n < 1 || n > 65535) {
          fail(
            ctx,
            path,
            `portLevelMtls key ${JSON.stringify(k)} is not a port number in the range 1..65535`,
          );
        }
      },
    }),
  },
  {
    check: (v, path, ctx) => {
      const labels = isObject(v.selector) && isObject(v.selector.matchLabels) ? v.selector.matchLabels : {};
      // Istio's CEL rule is `has(self.portLevelMtls)`: an empty map counts as set.
      if (v.portLevelMtls !== undefined && Object.keys(labels).length === 0) {
        fail(
          ctx,
          join(path, 'portLevelMtls'),
          'portLevelMtls requires selector: namespace and mesh-wide policies cannot set port-level mTLS',
        );
      }
    },
  },
);

function modes(v: Record<string, unknown>): string[] {
  const all = [v.mtls, ...Object.values(isObject(v.portLevelMtls) ? v.portLevelMtls : {})];
  return all.map((m) => (isObject(m) && typeof m.mode === 'string' ? m.mode : 'UNSET'));
}

export const peerAuthenticationSpec: Validator = (v, path, ctx) => {
  fields(v, path, ctx);
  // STRICT and PERMISSIVE are enforced; DISABLE is enforced as PERMISSIVE (Trellis sidecars keep
  // mutual TLS among themselves), which the user should know.
  if (isObject(v) && modes(v).includes('DISABLE')) {
    warn(
      ctx,
      path,
      `${NOT_ENFORCED}: DISABLE is enforced as PERMISSIVE — the workload also accepts plaintext, and Trellis sidecars keep using mutual TLS among themselves`,
    );
  }
};

export const peerAuthentication: KindInfo = {
  group: 'security.istio.io',
  kind: 'PeerAuthentication',
  versions: ['v1', 'v1beta1'],
  plural: 'peerauthentications',
  shortNames: ['pa'],
  spec: peerAuthenticationSpec,
};
