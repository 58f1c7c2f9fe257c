// The control plane's resource store: one interface, several backends (memory, embedded file store;
// etcd and Kubernetes later). Every backend passes the same suite (`test/support/store-suite.ts`).

import type { KindKey, Resource } from '../../api/resource.ts';
import { kindKey } from '../../api/resource.ts';

export interface ResourceKey {
  /** e.g. `networking.istio.io/VirtualService`, `/Service`: the same for every served version. */
  kind: KindKey;
  namespace: string;
  name: string;
}

export type Op =
  | {
      type: 'put';
      resource: Resource;
      /** Optimistic concurrency: `''` = must not exist; a resourceVersion = must equal the current one. */
      expectVersion?: string;
    }
  | { type: 'delete'; key: ResourceKey; expectVersion?: string };

export interface Change {
  type: 'put' | 'delete';
  key: ResourceKey;
  /** The stored resource after a put. */
  resource?: Resource;
  /** The stored resource before the change (absent when a put created it). */
  previous?: Resource;
}

export interface CommitResult {
  revision: number;
  changes: Change[];
}

export interface WatchEvent {
  revision: number;
  changes: Change[];
}

export interface ListFilter {
  kind?: KindKey;
  namespace?: string;
}

export interface Store {
  /** Last committed revision (0 for an empty store). */
  readonly revision: number;
  /** The stored resource, deep-frozen: callers must copy before editing. */
  get(key: ResourceKey): Resource | undefined;
  /** Deep-frozen resources sorted by kind, namespace, name. */
  list(filter?: ListFilter): Resource[];
  /** Atomic: all ops apply or none. A commit with changes bumps the revision by exactly 1. */
  commit(ops: Op[]): Promise<CommitResult>;
  /** The listener runs after each durable commit with changes, in revision order. Returns unsubscribe. */
  watch(listener: (e: WatchEvent) => void): () => void;
  close(): Promise<void>;
}

export function keyOf(r: Resource): ResourceKey {
  return { kind: kindKey(r.apiVersion, r.kind), namespace: r.metadata.namespace, name: r.metadata.name };
}

/** `VirtualService.networking.istio.io default/reviews`, `Service default/reviews` (kubectl style). */
export function formatKey(key: ResourceKey): string {
  const slash = key.kind.indexOf('/');
  const group = key.kind.slice(0, slash);
  const kind = key.kind.slice(slash + 1);
  return `${group ? `${kind}.${group}` : kind} ${key.namespace}/${key.name}`;
}
