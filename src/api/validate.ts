// The front door of the API: decode YAML or JSON, check every document's envelope (apiVersion, kind,
// metadata) and its spec against the kind's schema, and report each problem with file, line, field
// path and resource. Input is all-or-nothing: resources come back only when nothing is wrong.
import type { Issue } from '../lib/errors.ts';
import { decodeDocuments, type Position, positionOf } from './decode.ts';
import { EXPORT_TO_ANNOTATION, exportTo, exportToAnnotation, labels } from './kinds/common.ts';
import { apiVersionOf, kinds, unsupportedKinds, versionOf } from './kinds/index.ts';
import { isDns1123Label, isDns1123Subdomain, labelKeyProblem } from './kinds/syntax.ts';
import type { KindInfo } from './kinds/types.ts';
import { groupOf, kindKey, type ObjectMeta, type Resource } from './resource.ts';
import {
  any,
  array,
  type Ctx,
  describe,
  fail,
  hint,
  int,
  isObject,
  map,
  object,
  type Problem,
  string,
  type Validator,
} from './schema.ts';

export interface ValidationResult {
  /** Normalized (namespace filled in, status and nulls dropped); empty when there is any error. */
  resources: Resource[];
  errors: Issue[];
  warnings: Issue[];
}

export interface ValidateOptions {
  /** Namespace for documents that name none; "default" when unset. */
  defaultNamespace?: string;
}

/** One document to validate: a decoded YAML document, or one item of a List or JSON array. */
interface Doc {
  value: unknown;
  /** Path of the document inside its text (`items[2]` for a List item); '' for a whole document. */
  prefix: string;
  positions?: Map<string, Position>;
  line?: number;
}

const ENVELOPE = ['apiVersion', 'kind', 'metadata'];
const TOP_FIELDS = [...ENVELOPE, 'spec', 'status'];

function pick(v: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (v[f] !== undefined && v[f] !== null) out[f] = v[f];
  return out;
}

export function validateText(text: string, file?: string, opts: ValidateOptions = {}): ValidationResult {
  const decoded = decodeDocuments(text, file);
  const docs = decoded.documents.flatMap((d) => expand(d.value, '', d.positions, d.line));
  const result = validateDocs(docs, file, opts);
  result.errors.unshift(...decoded.issues);
  if (result.errors.length > 0) result.resources = [];
  return result;
}

/** For JSON API bodies: one resource, a JSON array of them, or a `List`; issues carry no line numbers. */
export function validateObject(
  obj: unknown,
  opts: ValidateOptions & { file?: string } = {},
): ValidationResult {
  return validateDocs(expand(obj, ''), opts.file, opts);
}

function expand(value: unknown, prefix: string, positions?: Map<string, Position>, line?: number): Doc[] {
  if (Array.isArray(value)) {
    return value.flatMap((v, i) => expand(v, `${prefix}[${i}]`, positions, line));
  }
  if (isObject(value) && value.kind === 'List' && Array.isArray(value.items)) {
    return value.items.flatMap((v, i) => expand(v, under(prefix, `items[${i}]`), positions, line));
  }
  return [{ value, prefix, positions, line }];
}

function under(prefix: string, path: string): string {
  if (!prefix) return path;
  if (!path) return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

function validateDocs(docs: Doc[], file: string | undefined, opts: ValidateOptions): ValidationResult {
  const result: ValidationResult = { resources: [], errors: [], warnings: [] };
  const seen = new Map<string, string>();
  for (const doc of docs) {
    const ctx: Ctx = { errors: [], warnings: [] };
    const checked = checkDocument(doc.value, ctx, opts);
    const issue = (p: Problem): Issue => {
      const path = under(doc.prefix, p.path);
      let pos = doc.positions
        ? positionOf({ positions: doc.positions, line: doc.line ?? 1 }, path)
        : undefined;
      // A block scalar's text starts on the line after its key, indented (by two, as a rule).
      if (pos && p.at) pos = { line: pos.line + p.at.line, column: pos.column + 1 + p.at.column };
      return {
        ...(file !== undefined ? { file } : {}),
        ...(pos ? { line: pos.line, column: pos.column } : {}),
        path,
        message: p.message,
        ...(checked.ref ? { resource: checked.ref } : {}),
      };
    };
    if (checked.identity) {
      const first = seen.get(checked.identity);
      if (first !== undefined) {
        fail(ctx, 'metadata.name', `duplicate resource: ${checked.ref} is also defined ${first}`);
      } else {
        const line = issue({ path: 'metadata.name', message: '' }).line;
        seen.set(
          checked.identity,
          line !== undefined ? `at ${file ? `${file}:` : 'line '}${line}` : 'earlier in this input',
        );
      }
    }
    result.errors.push(...ctx.errors.map(issue));
    result.warnings.push(...ctx.warnings.map(issue));
    if (ctx.errors.length === 0 && checked.resource) result.resources.push(checked.resource);
  }
  if (result.errors.length > 0) result.resources = [];
  return result;
}

interface Checked {
  resource?: Resource;
  /** `VirtualService default/reviews`, as soon as the kind and name are known. */
  ref?: string;
  /** Kind, namespace and name: what must be unique within one input. */
  identity?: string;
}

function checkDocument(value: unknown, ctx: Ctx, opts: ValidateOptions): Checked {
  if (!isObject(value)) {
    fail(
      ctx,
      '',
      `expected a resource (an object with apiVersion, kind, metadata and spec), found ${describe(value)}`,
    );
    return {};
  }
  const apiVersion = requiredString(value, 'apiVersion', 'e.g. "networking.istio.io/v1"', ctx);
  const kind = requiredString(value, 'kind', 'e.g. "VirtualService"', ctx);
  const info =
    apiVersion !== undefined && kind !== undefined ? resolveKind(apiVersion, kind, ctx) : undefined;
  const top = info?.topLevel ? [...ENVELOPE, ...info.topLevel] : TOP_FIELDS;
  for (const k of Object.keys(value)) {
    if (!top.includes(k)) fail(ctx, k, `unknown field "${k}"${hint(k, top)}: expected ${top.join(', ')}`);
  }
  const meta = checkMetadata(value.metadata, ctx, opts);
  const spec = info?.topLevel ? pick(value, info.topLevel) : (value.spec ?? {});
  if (info) info.spec(spec, info.topLevel ? '' : 'spec', ctx);
  if (info?.named && meta && ctx.errors.length === 0) info.named(spec, meta.name, meta.namespace, ctx);

  const name =
    meta?.name ??
    (isObject(value.metadata) && typeof value.metadata.name === 'string' ? value.metadata.name : undefined);
  const namespace = meta?.namespace ?? opts.defaultNamespace ?? 'default';
  const ref = kind !== undefined ? `${kind} ${namespace}/${name ?? '<unnamed>'}` : undefined;
  const identity =
    apiVersion !== undefined && kind !== undefined && name !== undefined
      ? `${kindKey(apiVersion, kind)}|${namespace}|${name}`
      : undefined;
  if (!info || !meta || apiVersion === undefined || kind === undefined) return { ref, identity };
  return { ref, identity, resource: { apiVersion, kind, metadata: meta, spec: withoutNulls(spec) } };
}

function requiredString(
  v: Record<string, unknown>,
  field: string,
  example: string,
  ctx: Ctx,
): string | undefined {
  const x = v[field];
  if (x === undefined || x === null || x === '') {
    fail(ctx, field, `required field is missing: expected ${example}`);
    return undefined;
  }
  if (typeof x !== 'string') {
    fail(ctx, field, `expected a string, found ${describe(x)}`);
    return undefined;
  }
  return x;
}

// ---- apiVersion and kind ---------------------------------------------------------------------------

function served(info: KindInfo): string {
  return info.versions.map((v) => apiVersionOf(info, v)).join(', ');
}

/** The kind a document is validated as, or undefined when there is none to validate against. */
function resolveKind(apiVersion: string, kind: string, ctx: Ctx): KindInfo | undefined {
  const group = groupOf(apiVersion);
  const named = kinds.filter((k) => k.kind === kind);
  if (named.length === 0) {
    const unsupported = Object.entries(unsupportedKinds).find(([, list]) => list.includes(kind));
    if (unsupported) {
      fail(
        ctx,
        'kind',
        `${kind} (${unsupported[0]}) is not supported by Trellis yet: supported kinds are ${kinds.map((k) => k.kind).join(', ')}`,
      );
      return undefined;
    }
    const candidates = kinds.filter((k) => k.group === group);
    const pool = (candidates.length > 0 ? candidates : kinds).map((k) => k.kind);
    const ci = kinds.find((k) => k.kind.toLowerCase() === kind.toLowerCase());
    const suggestion = ci
      ? ` (did you mean "${ci.kind}"? kinds are case-sensitive)`
      : hint(
          kind,
          kinds.map((k) => k.kind),
        );
    fail(ctx, 'kind', `unknown kind "${kind}"${suggestion}: expected one of ${pool.join(', ')}`);
    return undefined;
  }
  const info = named.find((k) => k.group === group);
  if (!info) {
    const expected = named.flatMap((k) => k.versions.map((v) => apiVersionOf(k, v)));
    fail(
      ctx,
      'apiVersion',
      `${kind} is not served by apiVersion "${apiVersion}"${hint(apiVersion, expected)}: expected ${expected.join(', ')}`,
    );
    return named[0];
  }
  if (!info.versions.includes(versionOf(apiVersion))) {
    fail(
      ctx,
      'apiVersion',
      `"${apiVersion}" is not a served version of ${kind}: served versions are ${served(info)}`,
    );
  }
  return info;
}

// ---- metadata --------------------------------------------------------------------------------------

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const metadataSchema: Validator = object(
  {
    name: string({
      check: (v, path, ctx) => {
        if (!isDns1123Subdomain(v)) {
          fail(
            ctx,
            path,
            `name ${JSON.stringify(v)} is not valid: expected a DNS-1123 subdomain (at most 253 lower-case letters, digits, "-" or ".", starting and ending with a letter or digit)`,
          );
        }
      },
    }),
    namespace: string({
      check: (v, path, ctx) => {
        if (!isDns1123Label(v)) {
          fail(
            ctx,
            path,
            `namespace ${JSON.stringify(v)} is not valid: expected a DNS-1123 label (at most 63 lower-case letters, digits or "-", starting and ending with a letter or digit)`,
          );
        }
      },
    }),
    labels: labels(),
    annotations: map(string(), {
      key: (k, path, ctx) => {
        const problem = labelKeyProblem(k as string);
        if (problem) fail(ctx, path, problem.replace('label key', 'annotation key'));
      },
    }),
    resourceVersion: string(),
    generation: int({ min: 0 }),
    uid: string(),
    creationTimestamp: string(),
    // Written by Kubernetes or kubectl; accepted so their output can be applied, then dropped.
    generateName: string(),
    ownerReferences: array(any()),
    finalizers: array(string()),
    managedFields: array(any()),
    deletionTimestamp: string(),
    selfLink: string(),
  },
  {
    required: ['name'],
    check: (v, path, ctx) => {
      if (!isObject(v.annotations)) return;
      const exported = v.annotations[EXPORT_TO_ANNOTATION];
      if (typeof exported === 'string')
        exportTo()(exportToAnnotation(exported), `${path}.annotations.${EXPORT_TO_ANNOTATION}`, ctx);
      const size = Object.entries(v.annotations).reduce((s, [k, x]) => s + k.length + String(x).length, 0);
      if (size > MAX_ANNOTATIONS_BYTES) {
        fail(
          ctx,
          `${path}.annotations`,
          `annotations total ${size} bytes; at most ${MAX_ANNOTATIONS_BYTES} are allowed`,
        );
      }
    },
  },
);

const KEPT_METADATA = [
  'labels',
  'annotations',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'uid',
] as const;

function checkMetadata(v: unknown, ctx: Ctx, opts: ValidateOptions): ObjectMeta | undefined {
  if (v === undefined || v === null) {
    fail(ctx, 'metadata', 'required field is missing: expected at least metadata.name');
    return undefined;
  }
  const before = ctx.errors.length;
  metadataSchema(v, 'metadata', ctx);
  if (ctx.errors.length !== before || !isObject(v)) return undefined;
  const meta: ObjectMeta = {
    name: v.name as string,
    namespace: (v.namespace as string | undefined) ?? opts.defaultNamespace ?? 'default',
  };
  for (const k of KEPT_METADATA) {
    if (v[k] !== undefined && v[k] !== null) (meta as unknown as Record<string, unknown>)[k] = v[k];
  }
  return meta;
}

/** YAML `field:` with no value means unset; drop it so consumers see `undefined`, never `null`. */
function withoutNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(withoutNulls) as T;
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = withoutNulls(x);
  return out as T;
}
