// Core ConfigMap (`v1`). Any ConfigMap is stored as Kubernetes stores it; the one Istio reads mesh
// config from (`istio` in istio-system, key `mesh`) is validated as MeshConfig, so a typo there is
// refused at apply like one in any other resource.
import {
  boolean,
  type Ctx,
  fail,
  isObject,
  join,
  map,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import { MESH_CONFIG_MAP, parseMeshConfig } from './mesh-config.ts';
import type { KindInfo } from './types.ts';

export interface ConfigMapSpec {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
  immutable?: boolean;
}

/** Kubernetes' ConfigMap key rule. */
const KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const key: Validator = (k, path, ctx) => {
  if (typeof k !== 'string' || !KEY.test(k) || k.length > 253)
    fail(
      ctx,
      path,
      `key ${JSON.stringify(k)} is not valid: expected at most 253 letters, digits, "-", "_" or "."`,
    );
};

const body: Validator = object(
  {
    data: map(string(), { key }),
    binaryData: map(string({ pattern: BASE64, patternName: 'base64' }), { key }),
    immutable: boolean(),
  },
  {
    check: (v, path, ctx) => {
      if (!isObject(v.data) || !isObject(v.binaryData)) return;
      for (const k of Object.keys(v.binaryData))
        if (k in v.data)
          fail(ctx, join(join(path, 'binaryData'), k), `key ${JSON.stringify(k)} is also in data`);
    },
  },
);

/** The istio ConfigMap: `mesh` is MeshConfig, `meshNetworks` is accepted, nothing else is read. */
function meshConfigMap(spec: Record<string, unknown>, ctx: Ctx): void {
  const data = isObject(spec.data) ? spec.data : {};
  for (const k of Object.keys(data)) {
    const path = `data.${k}`;
    if (k === 'meshNetworks') warn(ctx, path, 'accepted but not yet enforced by Trellis: meshNetworks');
    else if (k !== MESH_CONFIG_MAP.key)
      warn(ctx, path, `Istio reads only "mesh" and "meshNetworks" from this ConfigMap; "${k}" is ignored`);
  }
  const text = data[MESH_CONFIG_MAP.key];
  if (typeof text !== 'string') return;
  const parsed = parseMeshConfig(text);
  const path = `data.${MESH_CONFIG_MAP.key}`;
  // The problem's own path is inside the mesh config; the issue names the ConfigMap field.
  const lift = (p: (typeof parsed.errors)[number]) => ({
    path,
    message: `mesh config${p.path ? ` field ${p.path}` : ''}: ${p.message}`,
    ...(text.includes('\n') && p.at ? { at: p.at } : {}),
  });
  ctx.errors.push(...parsed.errors.map(lift));
  ctx.warnings.push(...parsed.warnings.map(lift));
}

export const configMap: KindInfo = {
  group: '',
  kind: 'ConfigMap',
  versions: ['v1'],
  plural: 'configmaps',
  shortNames: ['cm'],
  topLevel: ['data', 'binaryData', 'immutable'],
  spec: body,
  named: (spec, name, namespace, ctx) => {
    if (name === MESH_CONFIG_MAP.name && namespace === MESH_CONFIG_MAP.namespace && isObject(spec))
      meshConfigMap(spec, ctx);
  },
};
