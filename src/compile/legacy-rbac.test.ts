import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  BOOKINFO,
  bookinfoInput,
  bookinfoRouting,
  decodeResources,
} from '../../test/support/bookinfo-mesh.ts';
import { table } from '../../test/support/validation-table.ts';
import { outcomes, why } from '../simulate/why.ts';
import { compile } from './compile.ts';
import { CONVERTED_FROM_ANNOTATION, convertLegacyRbac, type RbacService } from './legacy-rbac.ts';
import type { CompileInput } from './mesh-index.ts';

const legacy = (...files: string[]) =>
  files.flatMap((f) => {
    const file = path.join(BOOKINFO, 'security/legacy-rbac', f);
    return decodeResources(readFileSync(file, 'utf8'), file, 100);
  });

const yaml = (text: string) => decodeResources(text, 'test.yaml', 200);

const SVC = (
  name: string,
  selector = { app: name },
  serviceAccounts = [`bookinfo-${name}`],
): RbacService => ({
  fqdn: `${name}.default.svc.cluster.local`,
  name,
  namespace: 'default',
  selector,
  serviceAccounts,
});

const ON = `
apiVersion: rbac.istio.io/v1alpha1
kind: ClusterRbacConfig
metadata: {name: default}
spec: {mode: 'ON'}
`;

describe('legacy RBAC → AuthorizationPolicy', () => {
  test('RBAC on with nothing bound: every in-scope service gets an ALLOW policy without rules (deny all)', () => {
    const out = convertLegacyRbac(legacy('rbac-config-on.yaml'), [SVC('details'), SVC('ratings')]);
    assert.deepEqual(
      out.map((p) => [p.metadata.namespace, p.metadata.name, p.spec]),
      [
        [
          'default',
          'legacy-rbac-details',
          { selector: { matchLabels: { app: 'details' } }, action: 'ALLOW', rules: [] },
        ],
        [
          'default',
          'legacy-rbac-ratings',
          { selector: { matchLabels: { app: 'ratings' } }, action: 'ALLOW', rules: [] },
        ],
      ],
    );
    assert.equal(out[0].metadata.annotations?.[CONVERTED_FROM_ANNOTATION], 'ClusterRbacConfig default');
  });

  test('a binding grants its role to its subjects: user → principals, "*" → anyone, the rule → operation', () => {
    const out = convertLegacyRbac(
      legacy('rbac-config-on.yaml', 'productpage-viewer.yaml', 'details-reviews-viewer.yaml'),
      [SVC('productpage'), SVC('details')],
    );
    const byName = Object.fromEntries(out.map((p) => [p.metadata.name, p]));
    assert.deepEqual(byName['legacy-rbac-productpage'].spec.rules, [
      { to: [{ operation: { methods: ['GET'] } }] },
    ]);
    assert.deepEqual(byName['legacy-rbac-details'].spec.rules, [
      {
        from: [{ source: { principals: ['cluster.local/ns/default/sa/bookinfo-productpage'] } }],
        to: [{ operation: { methods: ['GET'] } }],
      },
    ]);
    assert.equal(
      byName['legacy-rbac-details'].metadata.annotations?.[CONVERTED_FROM_ANNOTATION],
      'ClusterRbacConfig default, ServiceRole default/details-reviews-viewer, ServiceRoleBinding default/bind-details-reviews',
    );
  });

  test('modes: OFF and no config enforce nothing; inclusion and exclusion pick services or namespaces', () => {
    const svcs = [SVC('details'), SVC('ratings')];
    const names = (cfg: string) => convertLegacyRbac(yaml(cfg), svcs).map((p) => p.metadata.name);
    const config = (spec: string) =>
      `apiVersion: rbac.istio.io/v1alpha1\nkind: RbacConfig\nmetadata: {name: default}\nspec: ${spec}\n`;
    assert.deepEqual(names(config("{mode: 'OFF'}")), []);
    assert.deepEqual(convertLegacyRbac([], svcs), []);
    assert.deepEqual(
      names(config('{mode: ON_WITH_INCLUSION, inclusion: {services: [ratings.default.svc.cluster.local]}}')),
      ['legacy-rbac-ratings'],
    );
    assert.deepEqual(names(config('{mode: ON_WITH_EXCLUSION, exclusion: {services: ["det*"]}}')), [
      'legacy-rbac-ratings',
    ]);
    assert.deepEqual(names(config('{mode: ON_WITH_EXCLUSION, exclusion: {namespaces: [default]}}')), []);
    // ClusterRbacConfig wins over RbacConfig, as Istio read it.
    assert.deepEqual(names(`${ON}---\n${config("{mode: 'OFF'}")}`), [
      'legacy-rbac-details',
      'legacy-rbac-ratings',
    ]);
  });

  test('properties, groups and constraints: sources, when conditions, narrower selectors; PERMISSIVE is dry run', () => {
    const out = convertLegacyRbac(
      yaml(`${ON}---
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRole
metadata: {name: r, namespace: default}
spec:
  rules:
  - services: ["*"]
    paths: ["/api/*"]
    ports: [9080]
    constraints:
    - {key: "destination.labels[version]", values: [v2]}
    - {key: "request.headers[x-team]", values: [blue]}
  - services: [ratings]
    constraints: [{key: destination.user, values: [someone-else]}]
---
apiVersion: rbac.istio.io/v1alpha1
kind: ServiceRoleBinding
metadata: {name: b, namespace: default}
spec:
  mode: PERMISSIVE
  roleRef: {kind: ServiceRole, name: r}
  subjects:
  - group: admins
    properties: {source.namespace: ops, "request.auth.claims[iss]": issuer}
  - names: ["spiffe://cluster.local/ns/x/sa/y"]
    ips: [10.0.0.0/8]
`),
      [SVC('ratings')],
    );
    assert.deepEqual(
      out.map((p) => [
        p.metadata.name,
        p.metadata.annotations?.['istio.io/dry-run'],
        p.spec.selector,
        p.spec.rules,
      ]),
      [
        ['legacy-rbac-ratings', undefined, { matchLabels: { app: 'ratings' } }, []],
        [
          'legacy-rbac-ratings-1',
          'true',
          { matchLabels: { app: 'ratings', version: 'v2' } },
          [
            {
              from: [{ source: { namespaces: ['ops'] } }],
              to: [{ operation: { paths: ['/api/*'], ports: ['9080'] } }],
              when: [
                { key: 'request.headers[x-team]', values: ['blue'] },
                { key: 'request.auth.claims[groups]', values: ['admins'] },
                { key: 'request.auth.claims[iss]', values: ['issuer'] },
              ],
            },
            {
              from: [{ source: { principals: ['cluster.local/ns/x/sa/y'], ipBlocks: ['10.0.0.0/8'] } }],
              to: [{ operation: { paths: ['/api/*'], ports: ['9080'] } }],
              when: [{ key: 'request.headers[x-team]', values: ['blue'] }],
            },
          ],
        ],
      ],
      'the destination.user rule is dropped: ratings runs as bookinfo-ratings',
    );
  });
});

describe('legacy RBAC enforced: the Bookinfo roles, through the proxies’ own phases', () => {
  function mesh(...files: string[]) {
    const input: CompileInput = bookinfoInput([
      ...bookinfoRouting('bookinfo-gateway.yaml', 'destination-rule-all.yaml', 'virtual-service-all-v1.yaml'),
      ...legacy(...files),
    ]);
    return {
      nodes: input.proxies,
      snapshot: async (id: string) => compile(input, input.proxies.find((p) => p.id === id)!),
    };
  }
  const status = async (m: ReturnType<typeof mesh>, source: string, method: string, url: string) => {
    const [end] = outcomes((await why(m, { source, method, url })).hops);
    return 'app' in end ? 200 : end.answered.status;
  };

  test('on, then productpage-viewer, details-reviews-viewer and ratings-viewer: each opens one hop', async () => {
    const page = 'http://localhost:8080/productpage';
    const steps: [string[], number[]][] = [
      [['rbac-config-on.yaml'], [403, 403, 403, 403]],
      [
        ['rbac-config-on.yaml', 'productpage-viewer.yaml'],
        [200, 403, 403, 403],
      ],
      [
        ['rbac-config-on.yaml', 'productpage-viewer.yaml', 'details-reviews-viewer.yaml'],
        [200, 200, 200, 403],
      ],
      [
        [
          'rbac-config-on.yaml',
          'productpage-viewer.yaml',
          'details-reviews-viewer.yaml',
          'ratings-viewer.yaml',
        ],
        [200, 200, 200, 200],
      ],
    ];
    for (const [files, want] of steps) {
      const m = mesh(...files);
      const got = [
        await status(m, 'external', 'GET', page),
        await status(m, 'productpage', 'GET', 'http://details:9080/details/0'),
        await status(m, 'productpage', 'GET', 'http://reviews:9080/reviews/0'),
        await status(m, 'reviews-v1', 'GET', 'http://ratings:9080/ratings/0'),
      ];
      assert.deepEqual(got, want, files.join(' + '));
    }
    const all = mesh(
      'rbac-config-on.yaml',
      'productpage-viewer.yaml',
      'details-reviews-viewer.yaml',
      'ratings-viewer.yaml',
    );
    assert.equal(
      await status(all, 'reviews-v1', 'GET', 'http://details:9080/details/0'),
      403,
      'details only for productpage',
    );
    assert.equal(await status(all, 'productpage', 'POST', 'http://details:9080/details/0'), 403, 'GET only');
  });
});

table('ServiceRole', [
  {
    name: 'accepted with a deprecation warning',
    spec: `
      rules:
      - services: ["*"]
        methods: [GET]
        constraints: [{key: "destination.labels[version]", values: [v1]}]
    `,
    warnings: [{ path: 'spec', message: 'ServiceRole is deprecated (removed in Istio 1.6)' }],
  },
  {
    name: 'services are required; a constraint without an equivalent is refused',
    spec: `
      rules:
      - methods: [GET]
        constraints: [{key: destination.name, values: [x]}]
    `,
    errors: [
      { path: 'spec.rules[0].services', message: 'required field is missing' },
      { path: 'spec.rules[0].constraints[0].key', message: 'has no AuthorizationPolicy equivalent', line: 8 },
    ],
  },
]);

table('ServiceRoleBinding', [
  {
    name: 'roleRef and subjects are required; unknown properties are refused',
    spec: `
      subjects:
      - properties: {source.user: x}
      - {}
    `,
    errors: [
      { path: 'spec.roleRef', message: 'required field is missing' },
      { path: 'spec.subjects[0].properties.source.user', message: 'has no AuthorizationPolicy equivalent' },
      { path: 'spec.subjects[1]', message: 'a subject needs at least one field' },
    ],
  },
]);

table('RbacConfig', [
  {
    name: 'inclusion goes with ON_WITH_INCLUSION',
    spec: 'mode: ON_WITH_INCLUSION',
    errors: [{ path: 'spec.inclusion', message: 'mode ON_WITH_INCLUSION needs inclusion' }],
  },
]);
