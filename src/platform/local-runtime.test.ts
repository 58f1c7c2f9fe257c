import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkloadSpec } from '../api/kinds/workload.ts';
import { appEnvironment, expandArgs, readinessOf } from './local-runtime.ts';

test('an app learns where each of its ports really is, and its sidecar is its HTTP proxy', () => {
  const env = appEnvironment(
    {
      command: 'node',
      env: { NO_PROXY: 'metadata.internal', COLOR: 'red' },
      ports: [
        { name: 'http', port: 9080 },
        { name: 'admin-api', port: 9090 },
      ],
    },
    { '9080': 31001, '9090': 31002 },
    'reviews-v3-0',
    30000,
  );
  assert.equal(env.PORT, '31001');
  assert.equal(env.PORT_9080, '31001');
  assert.equal(env.PORT_HTTP, '31001');
  assert.equal(env.PORT_9090, '31002');
  assert.equal(env.PORT_ADMIN_API, '31002');
  assert.equal(env.HOSTNAME, 'reviews-v3-0');
  assert.equal(env.HTTP_PROXY, 'http://127.0.0.1:30000');
  assert.equal(env.NODE_USE_ENV_PROXY, '1');
  assert.equal(
    env.NO_PROXY,
    'localhost,127.0.0.1,::1,metadata.internal',
    "the app's own exceptions are kept",
  );
  assert.equal(env.COLOR, 'red');
});

test('readiness follows the Workload probe, with defaults', () => {
  const ports = { '9080': 31001, '9090': 31002 };
  assert.deepEqual(readinessOf({ ports: [{ name: 'http', port: 9080 }] }, ports), {
    port: 31001,
    path: undefined,
    periodMs: 1000,
    timeoutMs: 1000,
    initialDelayMs: 0,
    failureThreshold: 3,
  });
  const r = readinessOf(
    {
      ports: [
        { name: 'http', port: 9080 },
        { name: 'admin', port: 9090 },
      ],
      readinessProbe: {
        httpGet: { path: '/ready', port: 'admin' },
        periodSeconds: 2,
        timeoutSeconds: 3,
        initialDelaySeconds: 4,
        failureThreshold: 5,
      },
    },
    ports,
  );
  assert.deepEqual(r, {
    port: 31002,
    path: '/ready',
    periodMs: 2000,
    timeoutMs: 3000,
    initialDelayMs: 4000,
    failureThreshold: 5,
  });
  assert.equal(readinessOf({ ports: [] }, ports), undefined);
});

test('under capture the app is told its ports and nothing of a proxy', () => {
  const spec = { command: 'node', ports: [{ name: 'http', port: 9080 }] } as WorkloadSpec;
  const env = appEnvironment(spec, { 9080: 9080 }, 'front-0', undefined);
  assert.equal(env.PORT, '9080');
  assert.equal(env.HTTP_PROXY, undefined);
  assert.equal(env.NODE_USE_ENV_PROXY, undefined);
});

test('args expand $(VAR) from the app environment as Kubernetes does', () => {
  const env = { PORT: '9080', PORT_HTTP: '9080' };
  assert.deepEqual(expandArgs(['--port=$(PORT)', '$(PORT_HTTP)', '$$(PORT)', '$(UNSET)', 'a$b'], env), [
    '--port=9080',
    '9080',
    '$(PORT)',
    '$(UNSET)',
    'a$b',
  ]);
});
