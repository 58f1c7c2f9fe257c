import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meshConfigMap } from '../../../test/support/mesh-config-map.ts';
import { validateText } from '../validate.ts';

test('extensionProviders: both ext-authz kinds with every field are accepted without a warning', () => {
  const r = validateText(
    meshConfigMap(`
extensionProviders:
- name: http
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz, "x-b3-*", "*-id"]
    includeAdditionalHeadersInCheck: {x-from: trellis}
    includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true, packAsBytes: false}
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [x-reason]
    headersToDownstreamOnAllow: [set-cookie]
- name: grpc
  envoyExtAuthzGrpc: {service: foo/ext-authz-grpc.local, port: 9000, statusOnError: 500}
`),
    'mesh.yaml',
  );
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.warnings, []);
  assert.equal(r.resources.length, 1);
});

test('extensionProviders: bad providers are refused at their line, nothing is applied', () => {
  const cases: [string, RegExp, number][] = [
    [
      '- envoyExtAuthzHttp: {service: a.b, port: 80}',
      /extensionProviders\[0\]\.name: required field is missing/,
      9,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {port: 80}',
      /envoyExtAuthzHttp\.service: required field is missing/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b}',
      /envoyExtAuthzHttp\.port: required field is missing/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzGrpc: {service: a.b, port: 70000}',
      /port: 70000 is above the maximum 65535/,
      10,
    ],
    ['- name: a\n  envoyExtAuthzHttp: {service: "*.b", port: 80}', /"\*\.b" is not a service host name/, 10],
    ['- name: a\n  envoyExtAuthzHttp: {service: "Foo/a.b", port: 80}', /"Foo" is not a namespace name/, 10],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, timeout: soon}',
      /timeout: .*is not a duration/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, statusOnError: "99"}',
      /statusOnError: expected an HTTP status code/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, pathPrefix: check}',
      /pathPrefix must begin with "\/"/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, headersToUpstreamOnAllow: ["x y"]}',
      /"x y" is not a header name/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzGrpc: {service: a.b, port: 80, pathPrefix: /x}',
      /envoyExtAuthzGrpc\.pathPrefix: unknown field/,
      10,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80}\n  envoyExtAuthzGrpc: {service: a.b, port: 80}',
      /only one of envoyExtAuthzHttp, envoyExtAuthzGrpc/,
      9,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80}\n- name: a\n  zipkin: {}',
      /extensionProviders\[1\]\.name: .*"a" is already used by extensionProviders\[0\]/,
      11,
    ],
    [
      '- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, includeHeadersInCheck: [x], includeRequestHeadersInCheck: [y]}',
      /only one of includeRequestHeadersInCheck, includeHeadersInCheck/,
      10,
    ],
  ];
  for (const [providers, message, line] of cases) {
    const r = validateText(meshConfigMap(`extensionProviders:\n${providers}`), 'mesh.yaml');
    assert.equal(r.resources.length, 0, providers);
    const e = r.errors.find((x) => message.test(x.message));
    assert.ok(e, `${providers}: ${JSON.stringify(r.errors)}`);
    assert.equal(e.path, 'data.mesh', providers);
    assert.equal(e.file, 'mesh.yaml');
    assert.equal(e.line, line, `${providers}: ${e.message}`);
  }
});

test('extensionProviders: the older header list name, clearRouteCache and other provider kinds warn', () => {
  const r = validateText(
    meshConfigMap(`
extensionProviders:
- name: a
  envoyExtAuthzHttp: {service: a.b, port: 80, includeHeadersInCheck: [x], clearRouteCache: true}
- name: otel
  opentelemetry: {service: otel.b, port: 4317}
`),
  );
  assert.deepEqual(r.errors, []);
  const messages = r.warnings.map((w) => w.message);
  assert.ok(
    messages.some((m) => /includeHeadersInCheck: deprecated: use includeRequestHeadersInCheck/.test(m)),
  );
  assert.ok(messages.some((m) => /clearRouteCache: accepted but not yet enforced/.test(m)));
  assert.ok(
    messages.some((m) => /extensionProviders\[1\]\.opentelemetry: accepted but not yet enforced/.test(m)),
  );
});
