import type { Ctx, Validator } from '../schema.ts';

/** What the API knows about one kind. Every served version shares the one schema, as in Istio. */
export interface KindInfo {
  group: string; // '' for core
  kind: string;
  versions: readonly string[];
  plural: string;
  shortNames: readonly string[];
  /** Validates `spec` (the path passed in is `spec`), or the `topLevel` fields (path ''). */
  spec: Validator;
  /**
   * Core kinds whose content sits beside metadata rather than under `spec` (ConfigMap's `data`):
   * stored as the resource's spec, written back at the top level.
   */
  topLevel?: readonly string[];
  /** Rules that depend on which resource it is (the istio ConfigMap holds mesh config). */
  named?: (spec: unknown, name: string, namespace: string, ctx: Ctx) => void;
}
