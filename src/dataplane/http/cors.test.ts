import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { test } from 'node:test';
import type { CorsPolicy } from '../../compile/snapshot.ts';
import { Re2SyntaxError } from '../../lib/re2/syntax.ts';
import { Cors } from './cors.ts';

function policy(p: Partial<CorsPolicy>): CorsPolicy {
  return { allowOrigins: [], unmatchedPreflights: 'FORWARD', ...p };
}

function preflightHeaders(origin: string, extra: IncomingHttpHeaders = {}): IncomingHttpHeaders {
  return { origin, 'access-control-request-method': 'PUT', ...extra };
}

test('origins: exact, prefix and regex matchers, and what Envoy makes of "*"', () => {
  const cases: [string, CorsPolicy['allowOrigins'], string, boolean][] = [
    ['exact', [{ exact: 'https://a.example' }], 'https://a.example', true],
    ['exact is case-sensitive', [{ exact: 'https://a.example' }], 'https://A.example', false],
    ['exact is not a prefix', [{ exact: 'https://a.example' }], 'https://a.example.evil', false],
    ['prefix', [{ prefix: 'https://a.' }], 'https://a.example', true],
    ['prefix miss', [{ prefix: 'https://a.' }], 'http://a.example', false],
    ['regex', [{ regex: String.raw`https://[a-z]+\.example` }], 'https://www.example', true],
    [
      'regex is whole-value',
      [{ regex: String.raw`https://[a-z]+\.example` }],
      'https://www.example.evil',
      false,
    ],
    ['regex is whole-value at the start', [{ regex: 'a\\.example' }], 'https://a.example', false],
    ['any of several', [{ exact: 'https://a' }, { prefix: 'https://b' }], 'https://b.example', true],
    ['none of several', [{ exact: 'https://a' }, { prefix: 'https://b' }], 'https://c', false],
    ['exact "*" admits any origin', [{ exact: '*' }], 'https://anything', true],
    ['a regex that matches "*" admits any origin', [{ regex: String.raw`\*|https://a` }], 'https://z', true],
    ['"*" inside a value is literal', [{ exact: 'https://*.example' }], 'https://a.example', false],
    ['no matchers admit nothing', [], 'https://a.example', false],
  ];
  for (const [name, allowOrigins, origin, allowed] of cases) {
    const cors = new Cors(policy({ allowOrigins }));
    const headers = cors.responseHeaders(origin);
    // The reply names the request's origin, never "*", even when "*" admitted it.
    assert.deepEqual(headers, allowed ? { 'access-control-allow-origin': origin } : undefined, name);
  }
});

test('preflight: which requests are preflights', () => {
  const cors = new Cors(policy({ allowOrigins: [{ exact: 'https://a' }], unmatchedPreflights: 'IGNORE' }));
  const cases: [string, string, IncomingHttpHeaders, boolean][] = [
    ['OPTIONS with Origin and Access-Control-Request-Method', 'OPTIONS', preflightHeaders('https://a'), true],
    ['GET with Access-Control-Request-Method', 'GET', preflightHeaders('https://a'), false],
    ['POST with Access-Control-Request-Method', 'POST', preflightHeaders('https://a'), false],
    ['OPTIONS without Origin', 'OPTIONS', { 'access-control-request-method': 'PUT' }, false],
    ['OPTIONS with an empty Origin', 'OPTIONS', preflightHeaders(''), false],
    ['OPTIONS without Access-Control-Request-Method', 'OPTIONS', { origin: 'https://a' }, false],
    [
      'OPTIONS with an empty Access-Control-Request-Method',
      'OPTIONS',
      { origin: 'https://a', 'access-control-request-method': '' },
      false,
    ],
  ];
  for (const [name, method, headers, isPreflight] of cases) {
    assert.equal(cors.preflight(method, headers) !== undefined, isPreflight, name);
  }
});

test('preflight: allowed origins are answered, unmatched ones follow unmatchedPreflights', () => {
  const full: Partial<CorsPolicy> = {
    allowOrigins: [{ exact: 'https://a' }],
    allowMethods: ['GET', 'PUT'],
    allowHeaders: ['content-type', 'x-token'],
    exposeHeaders: ['x-trace'],
    maxAgeSeconds: 86400,
    allowCredentials: true,
  };
  const rest = {
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': 'GET,PUT',
    'access-control-allow-headers': 'content-type,x-token',
    'access-control-max-age': '86400',
  };
  const cases: [string, Partial<CorsPolicy>, string, ReturnType<Cors['preflight']>][] = [
    [
      'allowed, FORWARD: answered; expose-headers belong to the actual response',
      { ...full, unmatchedPreflights: 'FORWARD' },
      'https://a',
      { answer: { status: 200, headers: { 'access-control-allow-origin': 'https://a', ...rest } } },
    ],
    [
      'allowed, IGNORE: answered',
      { ...full, unmatchedPreflights: 'IGNORE' },
      'https://a',
      { answer: { status: 200, headers: { 'access-control-allow-origin': 'https://a', ...rest } } },
    ],
    [
      'unmatched, FORWARD: to the upstream',
      { ...full, unmatchedPreflights: 'FORWARD' },
      'https://b',
      { forward: true },
    ],
    [
      'unmatched, IGNORE: 200 without allow-origin, as Envoy replies',
      { ...full, unmatchedPreflights: 'IGNORE' },
      'https://b',
      { answer: { status: 200, headers: rest } },
    ],
    [
      'unmatched, IGNORE, nothing else configured: 200 with no CORS headers',
      { allowOrigins: [{ exact: 'https://a' }], unmatchedPreflights: 'IGNORE' },
      'https://b',
      { answer: { status: 200, headers: {} } },
    ],
    [
      'allowed, minimal policy: allow-origin alone',
      { allowOrigins: [{ prefix: 'https://' }] },
      'https://a',
      { answer: { status: 200, headers: { 'access-control-allow-origin': 'https://a' } } },
    ],
    [
      'max-age 0 is still sent',
      { allowOrigins: [{ exact: 'https://a' }], maxAgeSeconds: 0 },
      'https://a',
      {
        answer: {
          status: 200,
          headers: { 'access-control-allow-origin': 'https://a', 'access-control-max-age': '0' },
        },
      },
    ],
    [
      'credentials false: no allow-credentials',
      { allowOrigins: [{ exact: 'https://a' }], allowCredentials: false },
      'https://a',
      { answer: { status: 200, headers: { 'access-control-allow-origin': 'https://a' } } },
    ],
    [
      'empty lists send no header',
      { allowOrigins: [{ exact: 'https://a' }], allowMethods: [], allowHeaders: [] },
      'https://a',
      { answer: { status: 200, headers: { 'access-control-allow-origin': 'https://a' } } },
    ],
  ];
  for (const [name, p, origin, expected] of cases) {
    assert.deepEqual(new Cors(policy(p)).preflight('OPTIONS', preflightHeaders(origin)), expected, name);
  }
});

test('preflight: a lone "*" in allowMethods or allowHeaders echoes what the preflight asks for', () => {
  const cases: [string, Partial<CorsPolicy>, IncomingHttpHeaders, Record<string, string>][] = [
    [
      'methods "*"',
      { allowMethods: ['*'] },
      {},
      { 'access-control-allow-origin': 'https://a', 'access-control-allow-methods': 'PUT' },
    ],
    [
      '"*" among others is literal',
      { allowMethods: ['*', 'GET'] },
      {},
      { 'access-control-allow-origin': 'https://a', 'access-control-allow-methods': '*,GET' },
    ],
    [
      'headers "*"',
      { allowHeaders: ['*'] },
      { 'access-control-request-headers': 'x-a,x-b' },
      { 'access-control-allow-origin': 'https://a', 'access-control-allow-headers': 'x-a,x-b' },
    ],
    [
      'headers "*" with none requested',
      { allowHeaders: ['*'] },
      {},
      { 'access-control-allow-origin': 'https://a' },
    ],
  ];
  for (const [name, p, extra, headers] of cases) {
    const cors = new Cors(policy({ allowOrigins: [{ exact: 'https://a' }], ...p }));
    assert.deepEqual(
      cors.preflight('OPTIONS', preflightHeaders('https://a', extra)),
      { answer: { status: 200, headers } },
      name,
    );
  }
});

test('responseHeaders: allow-origin, allow-credentials and expose-headers on actual requests', () => {
  const cases: [string, Partial<CorsPolicy>, string | undefined, Record<string, string> | undefined][] = [
    ['missing Origin is not CORS', { allowOrigins: [{ exact: '*' }] }, undefined, undefined],
    ['empty Origin is not CORS', { allowOrigins: [{ exact: '*' }] }, '', undefined],
    [
      'disallowed origin: nothing added',
      { allowOrigins: [{ exact: 'https://a' }], allowCredentials: true },
      'https://b',
      undefined,
    ],
    [
      'allowed, with credentials and expose headers',
      {
        allowOrigins: [{ exact: 'https://a' }],
        allowCredentials: true,
        exposeHeaders: ['x-trace', 'x-cost'],
        allowMethods: ['GET'],
        allowHeaders: ['x-a'],
        maxAgeSeconds: 5,
      },
      'https://a',
      {
        'access-control-allow-origin': 'https://a',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'x-trace,x-cost',
      },
    ],
  ];
  for (const [name, p, origin, expected] of cases) {
    assert.deepEqual(new Cors(policy(p)).responseHeaders(origin), expected, name);
  }
});

test('header names match whatever their case on the wire, as node lower-cases them', async () => {
  const cors = new Cors(policy({ allowOrigins: [{ exact: 'https://a' }], allowMethods: ['*'] }));
  const server = createServer((req, res) => {
    res.end(JSON.stringify(cors.preflight(req.method ?? '', req.headers)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    socket.end(
      'OPTIONS / HTTP/1.1\r\nHost: x\r\nORIGIN: https://a\r\nAccess-Control-Request-METHOD: PUT\r\n' +
        'Connection: close\r\n\r\n',
    );
    let raw = '';
    for await (const chunk of socket) raw += chunk;
    assert.deepEqual(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)), {
      answer: {
        status: 200,
        headers: { 'access-control-allow-origin': 'https://a', 'access-control-allow-methods': 'PUT' },
      },
    });
  } finally {
    server.close();
  }
});

test('the method comparison is exact, as Envoy compares it', () => {
  const cors = new Cors(policy({ allowOrigins: [{ exact: 'https://a' }] }));
  assert.equal(cors.preflight('options', preflightHeaders('https://a')), undefined);
});

test('a regex origin the RE2 rules refuse fails at construction, not per request', () => {
  assert.throws(() => new Cors(policy({ allowOrigins: [{ regex: '(?=lookahead)' }] })), Re2SyntaxError);
});
