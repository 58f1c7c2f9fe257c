import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expectIssue, expectResult } from '../../test/support/validation-table.ts';
import { validateObject, validateText } from './validate.ts';

const reviews = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`;

const svc = (name: string, extra = '') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}${extra}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 9080}]
`;

describe('validateText: the envelope', () => {
  const cases: { name: string; yaml: string; errors: { path: string; message: string; line?: number }[] }[] =
    [
      {
        name: 'invalid YAML',
        yaml: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n',
        errors: [{ path: '', message: 'invalid YAML' }],
      },
      {
        name: 'duplicate YAML keys',
        yaml: 'apiVersion: v1\nkind: Service\nkind: Service\nmetadata: {name: a}\n',
        errors: [{ path: '', message: 'invalid YAML', line: 3 }],
      },
      {
        name: 'unknown kind with did-you-mean',
        yaml: reviews.replace('kind: VirtualService', 'kind: VirtualServise'),
        errors: [
          {
            path: 'kind',
            message: 'unknown kind "VirtualServise" (did you mean "VirtualService"?)',
            line: 2,
          },
        ],
      },
      {
        name: 'kinds are case-sensitive',
        yaml: reviews.replace('kind: VirtualService', 'kind: virtualservice'),
        errors: [
          { path: 'kind', message: '(did you mean "VirtualService"? kinds are case-sensitive)', line: 2 },
        ],
      },
      {
        name: 'Istio kinds Trellis does not serve yet',
        yaml: 'apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: default}\nspec: {}\n',
        errors: [
          {
            path: 'kind',
            message: 'WorkloadGroup (networking.istio.io) is not supported by Trellis yet',
            line: 2,
          },
        ],
      },
      {
        name: 'a version that is not served lists the served ones',
        yaml: reviews.replace('networking.istio.io/v1', 'networking.istio.io/v2'),
        errors: [
          {
            path: 'apiVersion',
            message:
              '"networking.istio.io/v2" is not a served version of VirtualService: served versions are networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3',
            line: 1,
          },
        ],
      },
      {
        name: 'a kind under the wrong group',
        yaml: reviews.replace('networking.istio.io/v1', 'networking.istio.oi/v1'),
        errors: [
          {
            path: 'apiVersion',
            message:
              'VirtualService is not served by apiVersion "networking.istio.oi/v1" (did you mean "networking.istio.io/v1"?)',
          },
        ],
      },
      {
        name: 'apiVersion and kind are required',
        yaml: 'metadata: {name: a}\nspec: {}\n',
        errors: [
          {
            path: 'apiVersion',
            message: 'required field is missing: expected e.g. "networking.istio.io/v1"',
          },
          { path: 'kind', message: 'required field is missing' },
        ],
      },
      {
        name: 'apiVersion must be a string',
        yaml: 'apiVersion: 1\nkind: Service\nmetadata: {name: a}\n',
        errors: [{ path: 'apiVersion', message: 'expected a string, found number 1', line: 1 }],
      },
      {
        name: 'unknown top-level field with did-you-mean',
        yaml: reviews.replace('spec:', 'spce:'),
        errors: [{ path: 'spce', message: 'unknown field "spce" (did you mean "spec"?)', line: 5 }],
      },
      {
        name: 'metadata is required',
        yaml: 'apiVersion: v1\nkind: Service\nspec: {ports: [{port: 80}]}\n',
        errors: [{ path: 'metadata', message: 'required field is missing: expected at least metadata.name' }],
      },
      {
        name: 'metadata.name is required and must be a DNS-1123 subdomain',
        yaml: svc('reviews').replace('  name: reviews', '  name: Reviews_1'),
        errors: [
          {
            path: 'metadata.name',
            message: 'name "Reviews_1" is not valid: expected a DNS-1123 subdomain',
            line: 4,
          },
        ],
      },
      {
        name: 'names are at most 253 characters',
        yaml: svc('reviews').replace('  name: reviews', `  name: ${'a'.repeat(254)}`),
        errors: [
          { path: 'metadata.name', message: 'is not valid: expected a DNS-1123 subdomain (at most 253' },
        ],
      },
      {
        name: 'a missing name',
        yaml: 'apiVersion: v1\nkind: Service\nmetadata:\n  namespace: bookinfo\nspec: {ports: [{port: 80}]}\n',
        errors: [{ path: 'metadata.name', message: 'required field is missing', line: 3 }],
      },
      {
        name: 'namespace must be a DNS-1123 label',
        yaml: svc('reviews', '\n  namespace: book.info'),
        errors: [
          {
            path: 'metadata.namespace',
            message: 'namespace "book.info" is not valid: expected a DNS-1123 label',
            line: 5,
          },
        ],
      },
      {
        name: 'unknown metadata fields with did-you-mean',
        yaml: svc('reviews', '\n  lables: {app: reviews}'),
        errors: [
          { path: 'metadata.lables', message: 'unknown field "lables" (did you mean "labels"?)', line: 5 },
        ],
      },
      {
        name: 'labels and annotations follow Kubernetes syntax',
        yaml: svc(
          'reviews',
          '\n  labels: {version: 2, "bad key!": x, "Example.com/app": y}\n  annotations: {"-x": "1", ok.example.com/note: 2}',
        ),
        errors: [
          { path: 'metadata.labels.version', message: 'expected a string, found number 2', line: 5 },
          { path: 'metadata.labels.bad key!', message: 'label key "bad key!" is not valid' },
          { path: 'metadata.labels.Example.com/app', message: 'label key prefix "Example.com" is not valid' },
          { path: 'metadata.annotations.-x', message: 'annotation key "-x" is not valid', line: 6 },
          { path: 'metadata.annotations.ok.example.com/note', message: 'expected a string, found number 2' },
        ],
      },
      {
        name: 'the networking.istio.io/exportTo annotation is an exportTo list',
        yaml: svc('reviews', '\n  annotations: {networking.istio.io/exportTo: ". , Other_NS"}'),
        errors: [
          {
            path: 'metadata.annotations.networking.istio.io/exportTo[1]',
            message: 'exportTo "Other_NS" is not valid: expected ".", "*", "~" or a namespace name',
            line: 5,
          },
        ],
      },
      {
        name: 'a document must be an object',
        yaml: '- a\n- b\n',
        errors: [
          {
            path: '[0]',
            message:
              'expected a resource (an object with apiVersion, kind, metadata and spec), found string "a"',
          },
        ],
      },
    ];
  for (const c of cases) {
    test(c.name, () => {
      const result = validateText(c.yaml, 'mesh.yaml');
      expectResult(result, { errors: c.errors });
    });
  }
});

describe('validateText: results', () => {
  test('every issue names file, line, column, path and resource', () => {
    const result = validateText(
      reviews.replace('subset: v1}', 'subset: v1}\n      weight: -1\n    - destination: {host: ratings}'),
      'samples/bookinfo/networking/bad.yaml',
    );
    assert.equal(result.errors.length, 1);
    assert.deepEqual(result.errors[0], {
      file: 'samples/bookinfo/networking/bad.yaml',
      line: 10,
      column: 7,
      path: 'spec.http[0].route[0].weight',
      message: 'weight -1 < 0',
      resource: 'VirtualService default/reviews',
    });
  });

  test('resources are normalized: namespace filled in, status and nulls dropped', () => {
    const result = validateText(
      `${reviews}  tcp:\nstatus:\n  observedGeneration: 3\n`.replace(
        '  name: reviews',
        '  name: reviews\n  labels: {app: reviews}',
      ),
      undefined,
      { defaultNamespace: 'bookinfo' },
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.resources, [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'reviews', namespace: 'bookinfo', labels: { app: 'reviews' } },
        spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
      },
    ]);
  });

  test('an explicit namespace wins over the default; kubectl metadata is accepted and dropped', () => {
    const result = validateText(
      svc(
        'reviews',
        '\n  namespace: shop\n  resourceVersion: "42"\n  uid: 1b9e\n  generation: 3\n  managedFields: [{manager: kubectl}]\n  finalizers: []',
      ),
    );
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.resources[0].metadata, {
      name: 'reviews',
      namespace: 'shop',
      resourceVersion: '42',
      uid: '1b9e',
      generation: 3,
    });
  });

  test('every served version is accepted', () => {
    for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
      const result = validateText(reviews.replace('networking.istio.io/v1', `networking.istio.io/${v}`));
      assert.deepEqual(result.errors, [], v);
      assert.equal(result.resources[0].apiVersion, `networking.istio.io/${v}`);
    }
  });

  test('multi-document input with one bad document: errors and no resources', () => {
    const text = `${svc('reviews')}---\n${reviews.replace('subset: v1', 'subset: V1')}---\n${svc('ratings')}`;
    const result = validateText(text, 'mesh.yaml');
    assert.equal(result.resources.length, 0);
    assert.equal(result.errors.length, 1);
    expectIssue(
      result.errors,
      { path: 'spec.http[0].route[0].destination.subset', message: 'subset "V1" is not valid', line: 17 },
      'error',
    );
    assert.equal(result.errors[0].resource, 'VirtualService default/reviews');
  });

  test('the same documents without the bad one all come back', () => {
    const result = validateText(`${svc('reviews')}---\n${reviews}---\n${svc('ratings')}\n---\n`, 'mesh.yaml');
    assert.deepEqual(result.errors, []);
    assert.deepEqual(
      result.resources.map((r) => `${r.kind}/${r.metadata.name}`),
      ['Service/reviews', 'VirtualService/reviews', 'Service/ratings'],
    );
  });

  test('invalid YAML in one document rejects the whole input', () => {
    const result = validateText(`${svc('reviews')}---\nkind: [\n---\n${svc('ratings')}`, 'mesh.yaml');
    assert.equal(result.resources.length, 0);
    expectIssue(result.errors, { path: '', message: 'invalid YAML' }, 'error');
    assert.equal(result.errors[0].file, 'mesh.yaml');
  });

  test('duplicate kind, namespace and name is an error on the second', () => {
    const result = validateText(`${svc('reviews')}---\n${svc('reviews')}`, 'mesh.yaml');
    assert.equal(result.resources.length, 0);
    expectIssue(
      result.errors,
      {
        path: 'metadata.name',
        message: 'duplicate resource: Service default/reviews is also defined at mesh.yaml:4',
        line: 12,
      },
      'error',
    );
  });

  test('the same name in another namespace or of another kind is fine', () => {
    const result = validateText(
      `${svc('reviews')}---\n${svc('reviews', '\n  namespace: other')}---\n${reviews}`,
    );
    assert.deepEqual(result.errors, []);
    assert.equal(result.resources.length, 3);
  });

  test('warnings come back with valid resources', () => {
    const result = validateText(
      reviews.replace('subset: v1}', 'subset: v1}\n    retries: {attempts: 0, perTryTimeout: 1s}'),
      'vs.yaml',
    );
    assert.equal(result.resources.length, 1);
    expectIssue(
      result.warnings,
      {
        path: 'spec.http[0].retries',
        message: 'retries are disabled and perTryTimeout has no effect',
        line: 10,
      },
      'warning',
    );
    assert.equal(result.warnings[0].resource, 'VirtualService default/reviews');
  });

  test('a List is expanded and its item paths are reported', () => {
    const list = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
  spec: {ports: [{port: 0}]}
`;
    const result = validateText(list, 'list.yaml');
    expectIssue(
      result.errors,
      { path: 'items[0].spec.ports[0].port', message: 'port number 0 must be in the range', line: 7 },
      'error',
    );
    assert.equal(result.errors[0].resource, 'Service default/a');
  });

  test('empty input validates to nothing', () => {
    assert.deepEqual(validateText('\n---\n# only a comment\n'), { resources: [], errors: [], warnings: [] });
  });
});

describe('validateObject: JSON bodies', () => {
  const body = {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'default', namespace: 'istio-system' },
    spec: { mtls: { mode: 'STRICT' } },
  };

  test('a valid body', () => {
    const result = validateObject(body);
    assert.deepEqual(result, { resources: [body], errors: [], warnings: [] });
  });

  test('issues carry path and resource but no position', () => {
    const result = validateObject({ ...body, spec: { mtls: { mode: 'STRICTER' } } }, { file: 'request' });
    assert.equal(result.resources.length, 0);
    assert.deepEqual(result.errors, [
      {
        file: 'request',
        path: 'spec.mtls.mode',
        message:
          'string "STRICTER" is not one of UNSET, DISABLE, PERMISSIVE, STRICT (did you mean "STRICT"?)',
        resource: 'PeerAuthentication istio-system/default',
      },
    ]);
  });

  test('an array of resources, with the default namespace', () => {
    const { metadata, ...rest } = body;
    const result = validateObject(
      [
        { ...rest, metadata: { name: 'a' } },
        { ...rest, metadata: { name: 'b' } },
      ],
      {
        defaultNamespace: 'bookinfo',
      },
    );
    assert.deepEqual(
      result.resources.map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
      ['bookinfo/a', 'bookinfo/b'],
    );
    assert.equal(metadata.name, 'default');
  });

  test('not an object', () => {
    const result = validateObject('hello');
    expectIssue(result.errors, { path: '', message: 'expected a resource' }, 'error');
  });
});
