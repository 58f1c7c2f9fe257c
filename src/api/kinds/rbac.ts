// The legacy RBAC kinds of rbac.istio.io/v1alpha1 (Istio 0.8 to 1.5, removed in 1.6): ServiceRole,
// ServiceRoleBinding, RbacConfig and ClusterRbacConfig. Trellis accepts them with a deprecation
// warning and enforces them as the AuthorizationPolicies they convert to (compile/legacy-rbac.ts).
// Every field is checked; one whose meaning has no AuthorizationPolicy equivalent is refused, never
// dropped, since a dropped constraint would widen what a role allows.
import {
  array,
  type Ctx,
  fail,
  isObject,
  join,
  map,
  object,
  port,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import { ipOrCidr, nonEmptyString } from './common.ts';
import type { KindInfo } from './types.ts';

export const RBAC_GROUP = 'rbac.istio.io';

export interface AccessRule {
  services: string[];
  hosts?: string[];
  notHosts?: string[];
  paths?: string[];
  notPaths?: string[];
  methods?: string[];
  notMethods?: string[];
  ports?: number[];
  notPorts?: number[];
  constraints?: { key: string; values: string[] }[];
}

export interface ServiceRoleSpec {
  rules: AccessRule[];
}

export interface Subject {
  user?: string;
  group?: string;
  properties?: Record<string, string>;
  names?: string[];
  notNames?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ips?: string[];
  notIps?: string[];
}

export interface ServiceRoleBindingSpec {
  subjects: Subject[];
  roleRef: { kind: 'ServiceRole'; name: string };
  mode?: 'ENFORCED' | 'PERMISSIVE';
}

export type RbacMode = 'OFF' | 'ON' | 'ON_WITH_INCLUSION' | 'ON_WITH_EXCLUSION';

export interface RbacTarget {
  services?: string[];
  namespaces?: string[];
}

export interface RbacConfigSpec {
  mode?: RbacMode;
  inclusion?: RbacTarget;
  exclusion?: RbacTarget;
  enforcementMode?: 'ENFORCED' | 'PERMISSIVE';
}

/** Constraint keys of a ServiceRole rule that have an AuthorizationPolicy equivalent. */
export const CONSTRAINT_KEYS =
  /^(destination\.(ip|port|namespace|user)|destination\.labels\[[^\]]+\]|request\.headers\[[^\]]+\])$/;

/** Subject property keys that have an AuthorizationPolicy equivalent. */
export const PROPERTY_KEYS =
  /^(source\.(ip|namespace|principal)|request\.auth\.(principal|audiences|presenter)|request\.auth\.claims\[[^\]]+\]|request\.headers\[[^\]]+\])$/;

const DEPRECATED = (kind: string) =>
  `${RBAC_GROUP}/v1alpha1 ${kind} is deprecated (removed in Istio 1.6): Trellis enforces it as the ` +
  'AuthorizationPolicies it converts to (trellis get authorizationpolicies shows them); see docs/tasks/legacy-rbac.md';

function deprecated(kind: string, spec: Validator): Validator {
  return (v, path, ctx) => {
    spec(v, path, ctx);
    warn(ctx, path, DEPRECATED(kind));
  };
}

const values = array(nonEmptyString());

const accessRule = object(
  {
    services: array(nonEmptyString(), { min: 1 }),
    hosts: values,
    notHosts: values,
    paths: values,
    notPaths: values,
    methods: values,
    notMethods: values,
    ports: array(port()),
    notPorts: array(port()),
    constraints: array(
      object(
        {
          key: string({
            check: (k, path, ctx) => {
              if (!CONSTRAINT_KEYS.test(k))
                fail(
                  ctx,
                  path,
                  `constraint key ${JSON.stringify(k)} has no AuthorizationPolicy equivalent: use destination.ip, ` +
                    'destination.port, destination.namespace, destination.user, destination.labels[<name>] or request.headers[<name>]',
                );
            },
          }),
          values: array(nonEmptyString(), { min: 1 }),
        },
        { required: ['key', 'values'] },
      ),
    ),
  },
  { required: ['services'] },
);

const serviceRoleSpec = object({ rules: array(accessRule, { min: 1 }) }, { required: ['rules'] });

function checkProperties(v: unknown, path: string, ctx: Ctx): void {
  if (!isObject(v)) return;
  for (const k of Object.keys(v))
    if (!PROPERTY_KEYS.test(k))
      fail(
        ctx,
        join(path, k),
        `property ${JSON.stringify(k)} has no AuthorizationPolicy equivalent: use source.ip, source.namespace, ` +
          'source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, ' +
          'request.auth.claims[<name>] or request.headers[<name>]',
      );
}

const subject = object(
  {
    user: nonEmptyString(),
    group: nonEmptyString(),
    properties: (v, path, ctx) => {
      map(nonEmptyString())(v, path, ctx);
      checkProperties(v, path, ctx);
    },
    names: values,
    notNames: values,
    namespaces: values,
    notNamespaces: values,
    ips: array(ipOrCidr()),
    notIps: array(ipOrCidr()),
  },
  {
    check: (v, path, ctx) => {
      if (Object.keys(v).length === 0)
        fail(ctx, path, 'a subject needs at least one field: user: "*" stands for anyone');
    },
  },
);

const serviceRoleBindingSpec = object(
  {
    subjects: array(subject, { min: 1 }),
    roleRef: object(
      { kind: string({ enum: ['ServiceRole'] }), name: nonEmptyString() },
      { required: ['kind', 'name'] },
    ),
    mode: string({ enum: ['ENFORCED', 'PERMISSIVE'] }),
  },
  { required: ['subjects', 'roleRef'] },
);

const target = object({ services: values, namespaces: values });

const rbacConfigSpec = object(
  {
    mode: string({ enum: ['OFF', 'ON', 'ON_WITH_INCLUSION', 'ON_WITH_EXCLUSION'] }),
    inclusion: target,
    exclusion: target,
    enforcementMode: string({ enum: ['ENFORCED', 'PERMISSIVE'] }),
  },
  {
    check: (v, path, ctx) => {
      if (v.mode === 'ON_WITH_INCLUSION' && !v.inclusion)
        fail(
          ctx,
          join(path, 'inclusion'),
          'mode ON_WITH_INCLUSION needs inclusion: the services or namespaces RBAC is on for',
        );
      if (v.mode === 'ON_WITH_EXCLUSION' && !v.exclusion)
        fail(
          ctx,
          join(path, 'exclusion'),
          'mode ON_WITH_EXCLUSION needs exclusion: the services or namespaces RBAC is off for',
        );
      if (v.inclusion && v.mode !== 'ON_WITH_INCLUSION')
        fail(ctx, join(path, 'inclusion'), 'inclusion is read only with mode ON_WITH_INCLUSION');
      if (v.exclusion && v.mode !== 'ON_WITH_EXCLUSION')
        fail(ctx, join(path, 'exclusion'), 'exclusion is read only with mode ON_WITH_EXCLUSION');
    },
  },
);

/** RbacConfig and ClusterRbacConfig are singletons named `default`, as Istio required. */
function singleton(kind: string) {
  return (_spec: unknown, name: string, _namespace: string, ctx: Ctx) => {
    if (name !== 'default')
      fail(
        ctx,
        'metadata.name',
        `${kind} must be named "default": there is one per mesh, found ${JSON.stringify(name)}`,
      );
  };
}

const rbac = (kind: string, plural: string, shortNames: string[], spec: Validator): KindInfo => ({
  group: RBAC_GROUP,
  kind,
  versions: ['v1alpha1'],
  plural,
  shortNames,
  spec: deprecated(kind, spec),
});

export const serviceRole = rbac('ServiceRole', 'serviceroles', ['sr'], serviceRoleSpec);
export const serviceRoleBinding = rbac(
  'ServiceRoleBinding',
  'servicerolebindings',
  ['srb'],
  serviceRoleBindingSpec,
);
export const rbacConfig: KindInfo = {
  ...rbac('RbacConfig', 'rbacconfigs', [], rbacConfigSpec),
  named: singleton('RbacConfig'),
};
export const clusterRbacConfig: KindInfo = {
  ...rbac('ClusterRbacConfig', 'clusterrbacconfigs', [], rbacConfigSpec),
  named: singleton('ClusterRbacConfig'),
};
