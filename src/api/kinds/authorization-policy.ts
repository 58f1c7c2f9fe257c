// AuthorizationPolicy: which requests a workload allows, denies, audits or hands to an external
// authorizer, matched on their source, operation and conditions.
import {
  array,
  type Ctx,
  fail,
  hint,
  isObject,
  join,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import {
  NOT_ENFORCED,
  nonEmptyString,
  type PolicyTargetReference,
  selectorDeprecated,
  selectorFields,
  selectorOneOf,
  type WorkloadSelector,
} from './common.ts';
import { isIPOrCIDR } from './syntax.ts';
import type { KindInfo } from './types.ts';

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** `"true"`: the policy is evaluated and its decision logged, but never enforced. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

/**
 * What a target reference attaches the policy to: an Istio or Gateway API Gateway (the gateway
 * proxies serving it), or a Service (its workloads); undefined for kinds Trellis has no target for.
 */
export function targetKind(ref: PolicyTargetReference): 'Gateway' | 'Service' | undefined {
  const group = ref.group ?? '';
  if (ref.kind === 'Gateway' && ['', 'networking.istio.io', 'gateway.networking.k8s.io'].includes(group))
    return 'Gateway';
  if (ref.kind === 'Service' && (group === '' || group === 'core')) return 'Service';
  return undefined;
}

/** Every value supports exact `abc`, prefix `abc*`, suffix `*abc` and presence `*` matches. */
export interface Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  /** `<ns>/<sa>` or `<sa>`; no wildcards. */
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  trustDomains?: string[];
  notTrustDomains?: string[];
}

export interface Operation {
  /** Compared case-insensitively. */
  hosts?: string[];
  notHosts?: string[];
  /** Destination (target) ports, as strings. */
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  /** The normalized path without the query; `{*}` and `{**}` templates allowed. */
  paths?: string[];
  notPaths?: string[];
}

export interface Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface Rule {
  from?: { source: Source }[];
  to?: { operation: Operation }[];
  when?: Condition[];
}

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector;
  /** Deprecated: use targetRefs. */
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  /** Unset never matches: an ALLOW policy without rules denies everything. */
  rules?: Rule[];
  /** Default ALLOW. */
  action?: AuthorizationAction;
  /** Only with CUSTOM. */
  provider?: { name: string };
}

// ---- values ----------------------------------------------------------------------------------------

function value(check?: (v: string, path: string, ctx: Ctx) => void): Validator {
  return string({
    check: (v, path, ctx) => {
      if (v === '') return fail(ctx, path, 'empty value is not allowed: use "*" to require any value');
      const inner = v.slice(1, -1);
      if (v.length > 2 && inner.includes('*') && !v.includes('{')) {
        warn(
          ctx,
          path,
          `"*" is a wildcard only at the start or end of a value; in ${JSON.stringify(v)} it is matched literally`,
        );
      }
      check?.(v, path, ctx);
    },
  });
}

const values = (check?: (v: string, path: string, ctx: Ctx) => void): Validator => array(value(check));

const ipBlock = (v: string, path: string, ctx: Ctx) => {
  if (!isIPOrCIDR(v))
    fail(ctx, path, `${JSON.stringify(v)} is not an IP address or CIDR block such as "10.0.0.0/8"`);
};

function portString(v: string, path: string, ctx: Ctx): void {
  if (!/^\d+$/.test(v) || Number(v) > 65535)
    fail(ctx, path, `invalid port ${JSON.stringify(v)}: expected a number 0..65535`);
}

const ports: Validator = array((v, path, ctx) => {
  if (typeof v === 'number') {
    return fail(ctx, path, `expected a string, found number ${v}: write ports as strings, e.g. "${v}"`);
  }
  value(portString)(v, path, ctx);
});

const noWildcard = (what: string) => (v: string, path: string, ctx: Ctx) => {
  if (v.includes('*')) fail(ctx, path, `${what} do not support wildcards, found ${JSON.stringify(v)}`);
};

function serviceAccount(v: string, path: string, ctx: Ctx): void {
  noWildcard('serviceAccounts')(v, path, ctx);
  if (v.length > 320)
    fail(ctx, path, `service account ${JSON.stringify(v.slice(0, 40))}... is longer than 320 characters`);
  if (v.split('/').length > 2)
    fail(
      ctx,
      path,
      `service account ${JSON.stringify(v)} is not valid: expected "<namespace>/<name>" or "<name>"`,
    );
}

/** Envoy URI templates: `{*}` is one segment, `{**}` zero or more and must come last. */
function templateProblem(v: string): string | undefined {
  if (!v.includes('{') && !v.includes('}')) return undefined;
  let sawDoubleStar = false;
  for (const seg of v.split('/')) {
    if (!seg.includes('{') && !seg.includes('}')) {
      if (seg.includes('*')) return '"*" wildcards cannot be combined with {*} or {**}';
      continue;
    }
    if (seg !== '{*}' && seg !== '{**}') return '{*} and {**} must each be a whole path segment';
    if (sawDoubleStar) return '{**} must be the last template segment';
    if (seg === '{**}') sawDoubleStar = true;
  }
  return undefined;
}

function pathTemplate(v: string, path: string, ctx: Ctx): void {
  const problem = templateProblem(v);
  if (problem) fail(ctx, path, `path template ${v} is invalid: ${problem}`);
}

function method(v: string, path: string, ctx: Ctx): void {
  if (v !== v.toUpperCase())
    warn(
      ctx,
      path,
      `methods are matched case-sensitively; ${JSON.stringify(v)} never matches, write ${v.toUpperCase()}`,
    );
}

const sourceFields = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'serviceAccounts',
  'notServiceAccounts',
  'trustDomains',
  'notTrustDomains',
];

const nonEmpty = (v: Record<string, unknown>, fields: readonly string[]) =>
  fields.some((f) => Array.isArray(v[f]) && (v[f] as unknown[]).length > 0);

const source: Validator = object(
  {
    principals: values(),
    notPrincipals: values(),
    requestPrincipals: values(),
    notRequestPrincipals: values(),
    namespaces: values(),
    notNamespaces: values(),
    ipBlocks: values(ipBlock),
    notIpBlocks: values(ipBlock),
    remoteIpBlocks: values(ipBlock),
    notRemoteIpBlocks: values(ipBlock),
    serviceAccounts: array(value(serviceAccount), { max: 16 }),
    notServiceAccounts: array(value(serviceAccount), { max: 16 }),
    trustDomains: values(),
    notTrustDomains: values(),
  },
  {
    check: (v, path, ctx) => {
      if (!nonEmpty(v, sourceFields))
        return fail(ctx, path, '`from.source` must not be empty: set at least one field');
      if (
        nonEmpty(v, ['serviceAccounts', 'notServiceAccounts']) &&
        nonEmpty(v, ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'])
      ) {
        fail(ctx, path, 'cannot set serviceAccounts with namespaces or principals');
      }
    },
  },
);

const operationFields = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
];

const operation: Validator = object(
  {
    hosts: values(),
    notHosts: values(),
    ports,
    notPorts: ports,
    methods: values(method),
    notMethods: values(method),
    paths: values(pathTemplate),
    notPaths: values(pathTemplate),
  },
  {
    check: (v, path, ctx) => {
      if (!nonEmpty(v, operationFields))
        fail(ctx, path, '`to.operation` must not be empty: set at least one field');
    },
  },
);

// ---- conditions ------------------------------------------------------------------------------------

const plainKeys = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
];
const retiredKeys: Record<string, string> = {
  'destination.labels': 'replaced by the workload selector',
  'destination.namespace': 'replaced by metadata.namespace',
  'destination.name': 'only supported in v1alpha1',
  'destination.user': 'only supported in v1alpha1',
};
const suggestions = [...plainKeys, 'request.headers[<name>]', 'request.auth.claims[<claim>]'];

function attributeProblem(key: string): string | undefined {
  if (plainKeys.includes(key)) return undefined;
  if (/^request\.headers\[[^[\]]+\]$/.test(key)) return undefined;
  if (/^request\.auth\.claims(\[[^[\]]+\])+$/.test(key)) return undefined;
  if (/^experimental\.envoy\.filters\.[^[\]]+(\[[^[\]]+\])+$/.test(key)) {
    // Envoy filters' dynamic metadata: Trellis proxies have none, so such a condition could never
    // be evaluated; refusing it beats a DENY that silently never triggers.
    return `attribute ${key} is not supported by Trellis: it reads Envoy filter metadata, which Trellis proxies do not have`;
  }
  for (const [retired, why] of Object.entries(retiredKeys)) {
    if (key === retired || key.startsWith(`${retired}[`)) return `attribute ${key} is not supported: ${why}`;
  }
  return `unknown attribute: ${key}${hint(key, suggestions)}`;
}

function conditionValue(key: unknown): (v: string, path: string, ctx: Ctx) => void {
  return (v, path, ctx) => {
    if (key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip') ipBlock(v, path, ctx);
    if (key === 'destination.port') portString(v, path, ctx);
  };
}

const condition: Validator = (v, path, ctx) => {
  const key = isObject(v) ? v.key : undefined;
  object(
    {
      key: string({
        check: (k, p, c) => {
          if (k === '') return fail(c, p, '`key` must not be empty');
          const problem = attributeProblem(k);
          if (problem) fail(c, p, problem);
        },
      }),
      values: values(conditionValue(key)),
      notValues: values(conditionValue(key)),
    },
    {
      required: ['key'],
      check: (w, p, c) => {
        if (!nonEmpty(w, ['values', 'notValues'])) {
          fail(c, p, `at least one of values or notValues must be set for key ${w.key}`);
        }
      },
    },
  )(v, path, ctx);
};

const rule: Validator = object({
  from: array(object({ source }, { required: ['source'] }), { min: 1 }),
  to: array(object({ operation }, { required: ['operation'] }), { min: 1 }),
  when: array(condition, { min: 1 }),
});

// ---- the policy ------------------------------------------------------------------------------------

const customForbiddenSources = sourceFields.filter((f) => !/ipBlocks|IpBlocks/.test(f));
const customForbiddenKey = /^(source\.(namespace|serviceAccount|trustDomain|principal)$|request\.auth\.)/;

function checkCustomRules(rules: unknown[], path: string, ctx: Ctx): void {
  rules.forEach((r, i) => {
    if (!isObject(r)) return;
    const at = join(join(path, 'rules'), i);
    (Array.isArray(r.from) ? r.from : []).forEach((f, j) => {
      const src = isObject(f) && isObject(f.source) ? f.source : {};
      for (const field of customForbiddenSources) {
        if (src[field] !== undefined) {
          fail(
            ctx,
            join(join(join(join(at, 'from'), j), 'source'), field),
            `${field} is not supported with the CUSTOM action`,
          );
        }
      }
    });
    (Array.isArray(r.when) ? r.when : []).forEach((w, j) => {
      if (isObject(w) && typeof w.key === 'string' && customForbiddenKey.test(w.key)) {
        fail(
          ctx,
          join(join(join(at, 'when'), j), 'key'),
          `when key ${w.key} is not supported with the CUSTOM action`,
        );
      }
    });
  });
}

function checkTargets(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const refs: [unknown, string][] = Array.isArray(v.targetRefs)
    ? v.targetRefs.map((r, i): [unknown, string] => [r, join(join(path, 'targetRefs'), i)])
    : isObject(v.targetRef)
      ? [[v.targetRef, join(path, 'targetRef')]]
      : [];
  for (const [ref, at] of refs) {
    if (!isObject(ref) || typeof ref.kind !== 'string' || typeof ref.name !== 'string') continue;
    if (!targetKind(ref as unknown as PolicyTargetReference)) {
      const group = typeof ref.group === 'string' && ref.group ? `${ref.group}/` : '';
      warn(
        ctx,
        join(at, 'kind'),
        `${NOT_ENFORCED}: target kind ${group}${ref.kind}; Trellis attaches policies to Gateway and Service only, so this reference selects nothing`,
      );
    }
  }
}

function checkPolicy(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  checkTargets(v, path, ctx);
  const action = (v.action as string | undefined) ?? 'ALLOW';
  const rules = Array.isArray(v.rules) ? v.rules : undefined;
  if (action === 'CUSTOM') {
    if (!isObject(v.provider))
      fail(ctx, join(path, 'provider'), 'the CUSTOM action requires a provider naming an extension provider');
    checkCustomRules(rules ?? [], path, ctx);
  } else if (v.provider != null) {
    fail(
      ctx,
      join(path, 'provider'),
      `provider is only allowed with the CUSTOM action, found action ${action}`,
    );
  }
  if ((action === 'DENY' || action === 'CUSTOM') && (rules === undefined || rules.length === 0)) {
    fail(
      ctx,
      join(path, 'rules'),
      `a ${action} policy without rules is meaningless as it will never be triggered: add an empty rule {} to match every request`,
    );
  }
}

export const authorizationPolicySpec: Validator = object(
  {
    ...selectorFields,
    rules: array(rule, { max: 512 }),
    action: string({ enum: ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] }),
    provider: object({ name: nonEmptyString() }, { required: ['name'] }),
  },
  { oneOf: [selectorOneOf], deprecated: selectorDeprecated, check: checkPolicy },
);

export const authorizationPolicy: KindInfo = {
  group: 'security.istio.io',
  kind: 'AuthorizationPolicy',
  versions: ['v1', 'v1beta1'],
  plural: 'authorizationpolicies',
  shortNames: ['ap'],
  spec: authorizationPolicySpec,
};
