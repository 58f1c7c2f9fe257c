import type { Validator } from '../schema.ts';

/** What the API knows about one kind. Every served version shares the one schema, as in Istio. */
export interface KindInfo {
  group: string; // '' for core
  kind: string;
  versions: readonly string[];
  plural: string;
  shortNames: readonly string[];
  /** Validates `spec` (the path passed in is `spec`). */
  spec: Validator;
}
