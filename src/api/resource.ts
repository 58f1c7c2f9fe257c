// The shape every stored resource has, whatever its kind.

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Store revision of the last write of this resource (optimistic concurrency token). */
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  uid?: string;
}

export interface Resource<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
}

/** `networking.istio.io/VirtualService`, `/Service` for core kinds: the identity of a kind across versions. */
export type KindKey = string;

export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

export function kindKey(apiVersion: string, kind: string): KindKey {
  return `${groupOf(apiVersion)}/${kind}`;
}

/** `VirtualService default/reviews` — how a resource is named in messages. */
export function resourceRef(r: { kind: string; metadata: { namespace?: string; name?: string } }): string {
  return `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name ?? '<unnamed>'}`;
}
