import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meshConfigMap } from '../../../test/support/mesh-config-map.ts';
import { validateText } from '../validate.ts';

test('any ConfigMap is stored as Kubernetes takes it, its data at the top level', () => {
  const r = validateText(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-settings}\ndata: {a.conf: "x=1", LEVEL: debug}\nimmutable: true\n',
    'cm.yaml',
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.resources[0].spec, { data: { 'a.conf': 'x=1', LEVEL: 'debug' }, immutable: true });
  // Only the mesh's own ConfigMap is read as mesh config.
  assert.equal(validateText(meshConfigMap('not: [valid', 'default'), 'cm.yaml').errors.length, 0);
});

test('a ConfigMap refuses spec, bad keys and keys in both data and binaryData', () => {
  const r = validateText(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\ndata: {"a b": x, k: v}\nbinaryData: {k: "@@"}\n',
    'cm.yaml',
  );
  const got = r.errors.map((e) => [e.path, e.line]);
  assert.deepEqual(got, [
    ['spec', 4],
    ['data.a b', 5],
    ['binaryData.k', 6],
  ]);
  assert.match(
    r.errors[0].message,
    /unknown field "spec".*expected apiVersion, kind, metadata, data, binaryData, immutable/,
  );
});

test('the istio ConfigMap: the enforced fields are accepted without a warning', () => {
  for (const mode of ['DEFAULT', 'NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']) {
    const r = validateText(
      meshConfigMap(`rootNamespace: mesh-root\npathNormalization:\n  normalization: ${mode}`),
    );
    assert.deepEqual(r.errors, [], mode);
    assert.deepEqual(r.warnings, [], mode);
    assert.equal(r.resources.length, 1);
  }
});

test('the istio ConfigMap: mesh config errors name the field and the line inside the block', () => {
  const r = validateText(
    meshConfigMap(`
rootNamespace: istio-system
pathNormalization:
  normalization: MERGE_SLASH
`),
    'mesh.yaml',
  );
  assert.equal(r.resources.length, 0);
  assert.equal(r.errors.length, 1);
  const [e] = r.errors;
  assert.equal(e.file, 'mesh.yaml');
  assert.equal(e.path, 'data.mesh');
  assert.equal(e.line, 10);
  assert.equal(e.column, 7);
  assert.match(
    e.message,
    /^mesh config field pathNormalization\.normalization: .*MERGE_SLASH.* is not one of .*did you mean "MERGE_SLASHES"/,
  );
});

test('the istio ConfigMap: unknown fields, bad types and invalid YAML are refused', () => {
  const cases: [string, RegExp, number][] = [
    [
      'rootNamespce: x',
      /field rootNamespce: unknown field "rootNamespce" \(did you mean "rootNamespace"\?\)/,
      8,
    ],
    ['rootNamespace: Not_A_Namespace', /field rootNamespace: .* is not a namespace name/, 8],
    ['pathNormalization: BASE', /field pathNormalization: expected an object/, 8],
    [
      'pathNormalization: {normalization: BASE, merge: true}',
      /field pathNormalization\.merge: unknown field/,
      8,
    ],
    ['a: [1\nb: 2', /^mesh config: invalid YAML/, 9],
    ['- 1\n- 2', /^mesh config: expected an object, found a list/, 8],
  ];
  for (const [mesh, message, line] of cases) {
    const r = validateText(meshConfigMap(mesh), 'mesh.yaml');
    assert.equal(r.resources.length, 0, mesh);
    assert.match(r.errors[0]?.message ?? '', message, mesh);
    assert.equal(r.errors[0].path, 'data.mesh', mesh);
    assert.equal(r.errors[0].line, line, mesh);
  }
});

test('the istio ConfigMap: every other MeshConfig field is accepted with a warning', () => {
  const r = validateText(
    meshConfigMap(`
accessLogFile: /dev/stdout
trustDomain: example.org
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
`),
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(
    r.warnings.map((w) => [w.line, w.message]),
    [
      [8, 'mesh config field accessLogFile: accepted but not yet enforced by Trellis'],
      [9, 'mesh config field trustDomain: accepted but not yet enforced by Trellis'],
      [12, 'mesh config field extensionProviders[0].zipkin: accepted but not yet enforced by Trellis'],
    ],
  );
});

test('the istio ConfigMap: other keys are not read, meshNetworks is not enforced', () => {
  const r = validateText(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata: {mesh: "", meshNetworks: "networks: {}", values.yaml: "x"}\n',
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(
    r.warnings.map((w) => w.path),
    ['data.meshNetworks', 'data.values.yaml'],
  );
});
