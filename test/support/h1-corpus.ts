// Requests for the parser's tests: valid ones with the messages they must yield, malformed ones with the
// error they must raise, and a seeded mutator that derives near-valid requests from the valid ones for the
// differential test against llhttp. Strings are latin1: one char per byte.

import type { RequestHead } from '../../src/dataplane/http/h1/parser.ts';

export interface ExpectedMessage extends RequestHead {
  data: string;
  trailers?: string[];
}

export interface ValidCase {
  name: string;
  raw: string;
  messages: ExpectedMessage[];
  /** Bytes after an upgrade's head: they belong to the tunnel and must be left unconsumed. */
  rest?: string;
}

export interface MalformedCase {
  name: string;
  raw: string;
  status: number;
  code: string;
}

function msg(
  m: Partial<ExpectedMessage> & Pick<ExpectedMessage, 'method' | 'target' | 'rawHeaders'>,
): ExpectedMessage {
  return {
    minor: 1,
    keepAlive: true,
    body: 'none',
    contentLength: 0,
    upgrade: false,
    expectContinue: false,
    data: '',
    ...m,
  };
}

const GET = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';
const getMsg = msg({ method: 'GET', target: '/', rawHeaders: ['Host', 'a'] });
const CHUNKED = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
const chunkedHeaders = ['Host', 'a', 'Transfer-Encoding', 'chunked'];

export const valid: ValidCase[] = [
  {
    name: 'typical GET',
    raw:
      'GET /productpage?u=1&v=%20x HTTP/1.1\r\nHost: bookinfo.local:9080\r\nUser-Agent: curl/8.5.0\r\n' +
      'Accept: */*\r\nX-Request-Id: 8e4b\r\n\r\n',
    messages: [
      msg({
        method: 'GET',
        target: '/productpage?u=1&v=%20x',
        rawHeaders: [
          'Host',
          'bookinfo.local:9080',
          'User-Agent',
          'curl/8.5.0',
          'Accept',
          '*/*',
          'X-Request-Id',
          '8e4b',
        ],
      }),
    ],
  },
  {
    name: 'POST with Content-Length',
    raw: 'POST /reviews HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world',
    messages: [
      msg({
        method: 'POST',
        target: '/reviews',
        rawHeaders: ['Host', 'a', 'Content-Type', 'text/plain', 'Content-Length', '11'],
        body: 'length',
        contentLength: 11,
        data: 'hello world',
      }),
    ],
  },
  {
    name: 'Content-Length: 0 is no body',
    raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n',
    messages: [msg({ method: 'POST', target: '/', rawHeaders: ['Host', 'a', 'Content-Length', '0'] })],
  },
  {
    name: 'chunked with extensions and trailers',
    raw:
      'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
      '5;name=value\r\nhello\r\n' +
      '6;q="a \\"b\\";c";flag\r\n world\r\n' +
      'A \t; x = y ;z\r\n0123456789\r\n' +
      '0;last\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n',
    messages: [
      msg({
        method: 'POST',
        target: '/upload',
        rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Trailer', 'X-Checksum'],
        body: 'chunked',
        data: 'hello world0123456789',
        trailers: ['X-Checksum', 'abc', 'X-Empty', ''],
      }),
    ],
  },
  {
    name: 'chunked, no trailers, hex sizes, TE case-insensitive after HTAB',
    raw:
      'PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tChunked \r\n\r\n' +
      '0000000000000003\r\nabc\r\nb\r\n0123456789A\r\n0\r\n\r\n',
    messages: [
      msg({
        method: 'PUT',
        target: '/x',
        rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'Chunked'],
        body: 'chunked',
        data: 'abc0123456789A',
      }),
    ],
  },
  {
    name: 'pipelined requests in one chunk, with an empty line between',
    raw:
      GET +
      'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc' +
      '\r\n' +
      CHUNKED +
      '2\r\nhi\r\n0\r\n\r\n' +
      'DELETE /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    messages: [
      getMsg,
      msg({
        method: 'POST',
        target: '/a',
        rawHeaders: ['Host', 'a', 'Content-Length', '3'],
        body: 'length',
        contentLength: 3,
        data: 'abc',
      }),
      msg({ method: 'POST', target: '/', rawHeaders: chunkedHeaders, body: 'chunked', data: 'hi' }),
      msg({
        method: 'DELETE',
        target: '/b',
        rawHeaders: ['Host', 'a', 'Connection', 'close'],
        keepAlive: false,
      }),
    ],
  },
  {
    name: 'absolute-form target',
    raw: 'GET http://user-svc.default.svc:8080/v1/users?id=7 HTTP/1.1\r\nHost: user-svc.default.svc:8080\r\n\r\n',
    messages: [
      msg({
        method: 'GET',
        target: 'http://user-svc.default.svc:8080/v1/users?id=7',
        rawHeaders: ['Host', 'user-svc.default.svc:8080'],
      }),
    ],
  },
  {
    name: 'absolute-form with an IPv6 literal and no path',
    raw: 'GET http://[::1]:80?q HTTP/1.1\r\nHost: [::1]:80\r\n\r\n',
    messages: [msg({ method: 'GET', target: 'http://[::1]:80?q', rawHeaders: ['Host', '[::1]:80'] })],
  },
  {
    name: 'HTTP/1.0 without Host closes by default',
    raw: 'GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n',
    messages: [
      msg({ method: 'GET', target: '/old', minor: 0, rawHeaders: ['User-Agent', 'x'], keepAlive: false }),
    ],
  },
  {
    name: 'HTTP/1.0 with keep-alive',
    raw: 'GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n',
    messages: [
      msg({ method: 'GET', target: '/', minor: 0, rawHeaders: ['Connection', 'Keep-Alive'] }),
      msg({
        method: 'GET',
        target: '/',
        minor: 0,
        rawHeaders: ['Connection', 'keep-alive, close'],
        keepAlive: false,
      }),
    ],
  },
  {
    name: 'Connection tokens across fields',
    raw: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo , ,\r\nconnection:\tCLOSE\r\n\r\n',
    messages: [
      msg({
        method: 'GET',
        target: '/',
        rawHeaders: ['Host', 'a', 'Connection', 'x-foo , ,', 'connection', 'CLOSE'],
        keepAlive: false,
      }),
    ],
  },
  {
    name: 'CONNECT ends at the head',
    raw: 'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n\x16\x03\x01tunnel bytes',
    messages: [
      msg({
        method: 'CONNECT',
        target: 'db.internal:5432',
        rawHeaders: ['Host', 'db.internal:5432'],
        upgrade: true,
      }),
    ],
    rest: '\x16\x03\x01tunnel bytes',
  },
  {
    name: 'WebSocket upgrade ends at the head',
    raw:
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05hello',
    messages: [
      msg({
        method: 'GET',
        target: '/ws',
        rawHeaders: [
          'Host',
          'a',
          'Connection',
          'keep-alive, Upgrade',
          'Upgrade',
          'websocket',
          'Sec-WebSocket-Key',
          'dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Version',
          '13',
        ],
        upgrade: true,
      }),
    ],
    rest: '\x81\x05hello',
  },
  {
    name: 'empty lines after a closing message',
    raw: 'POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx\r\n\r\n',
    messages: [
      msg({
        method: 'POST',
        target: '/',
        rawHeaders: ['Host', 'a', 'Connection', 'close', 'Content-Length', '1'],
        keepAlive: false,
        body: 'length',
        contentLength: 1,
        data: 'x',
      }),
    ],
  },
  {
    name: 'Connection: upgrade without an Upgrade header is no upgrade',
    raw: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n' + GET,
    messages: [
      msg({ method: 'GET', target: '/', rawHeaders: ['Host', 'a', 'Connection', 'upgrade'] }),
      getMsg,
    ],
  },
  {
    name: 'Expect: 100-continue',
    raw: 'PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok',
    messages: [
      msg({
        method: 'PUT',
        target: '/f',
        rawHeaders: ['Host', 'a', 'Expect', '100-Continue', 'Content-Length', '2'],
        body: 'length',
        contentLength: 2,
        expectContinue: true,
        data: 'ok',
      }),
    ],
  },
  {
    name: 'Expect in HTTP/1.0 is ignored',
    raw: 'POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx',
    messages: [
      msg({
        method: 'POST',
        target: '/',
        minor: 0,
        rawHeaders: ['Expect', '100-continue', 'Content-Length', '1'],
        keepAlive: false,
        body: 'length',
        contentLength: 1,
        data: 'x',
      }),
    ],
  },
  {
    name: 'OWS trimmed, empty and obs-text values, OPTIONS *',
    raw: 'OPTIONS * HTTP/1.1\r\nHost: a\r\nX-A:   spaced  out \t\r\nX-Empty:\r\nX-B: caf\xe9\r\n\r\n',
    messages: [
      msg({
        method: 'OPTIONS',
        target: '*',
        rawHeaders: ['Host', 'a', 'X-A', 'spaced  out', 'X-Empty', '', 'X-B', 'caf\xe9'],
      }),
    ],
  },
  {
    name: 'leading empty line, extension method, odd but valid target',
    raw: '\r\nPROPFIND /a/b;c=d/%7e!$&\'()*+,=:@[]{}|^`"<>\\?x=1?#f HTTP/1.1\r\nHost: a\r\n\r\n',
    messages: [
      msg({
        method: 'PROPFIND',
        target: '/a/b;c=d/%7e!$&\'()*+,=:@[]{}|^`"<>\\?x=1?#f',
        rawHeaders: ['Host', 'a'],
      }),
    ],
  },
];

const post = (headers: string, body = '') => `POST / HTTP/1.1\r\nHost: a\r\n${headers}\r\n${body}`;
const chunked = (body: string) => CHUNKED + body;

export const malformed: MalformedCase[] = [
  // request line
  {
    name: 'invalid char in method',
    raw: 'G@T / HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_METHOD',
  },
  { name: 'no method', raw: ' / HTTP/1.1\r\nHost: a\r\n\r\n', status: 400, code: 'TRL_HTTP_INVALID_METHOD' },
  {
    name: 'HTAB after method',
    raw: 'GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_METHOD',
  },
  {
    name: 'two spaces after method',
    raw: 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'HTAB in target',
    raw: 'GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'CTL in target',
    raw: 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'DEL in target',
    raw: 'GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'non-ASCII in target',
    raw: 'GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'space in target',
    raw: 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_VERSION',
  },
  {
    name: 'relative target',
    raw: 'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: '* for GET',
    raw: 'GET * HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'scheme without //',
    raw: 'GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'userinfo in authority',
    raw: 'GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'CONNECT to a path',
    raw: 'CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'CONNECT without port',
    raw: 'CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_TARGET',
  },
  {
    name: 'HTTP/1.2',
    raw: 'GET / HTTP/1.2\r\nHost: a\r\n\r\n',
    status: 505,
    code: 'TRL_HTTP_VERSION_NOT_SUPPORTED',
  },
  {
    name: 'HTTP/2.0',
    raw: 'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
    status: 505,
    code: 'TRL_HTTP_VERSION_NOT_SUPPORTED',
  },
  {
    name: 'lowercase version',
    raw: 'GET / http/1.1\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_VERSION',
  },
  {
    name: 'space after version',
    raw: 'GET / HTTP/1.1 \r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_INVALID_VERSION',
  },
  { name: 'no version', raw: 'GET /\r\nHost: a\r\n\r\n', status: 400, code: 'TRL_HTTP_INVALID_VERSION' },
  { name: 'HTTP/0.9 request', raw: 'GET /\r\n\r\n', status: 400, code: 'TRL_HTTP_INVALID_VERSION' },
  {
    name: 'request after Connection: close',
    raw: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\r\n' + GET,
    status: 400,
    code: 'TRL_HTTP_DATA_AFTER_CLOSE',
  },
  {
    name: 'request after an HTTP/1.0 request',
    raw: 'GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_DATA_AFTER_CLOSE',
  },
  {
    name: 'too many empty lines first',
    raw: '\r\n'.repeat(9) + GET,
    status: 400,
    code: 'TRL_HTTP_INVALID_REQUEST_LINE',
  },
  {
    name: 'target over the head limit',
    raw: `GET /${'a'.repeat(61 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n`,
    status: 414,
    code: 'TRL_HTTP_URI_TOO_LONG',
  },
  // line endings
  { name: 'bare LF line endings', raw: 'GET / HTTP/1.1\nHost: a\n\n', status: 400, code: 'TRL_HTTP_BARE_LF' },
  {
    name: 'bare LF ends a header',
    raw: 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_BARE_LF',
  },
  {
    name: 'bare LF ends the head',
    raw: 'GET / HTTP/1.1\r\nHost: a\r\n\n',
    status: 400,
    code: 'TRL_HTTP_BARE_LF',
  },
  {
    name: 'bare CR in a value',
    raw: 'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  {
    name: 'bare CR ends a header',
    raw: 'GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  {
    name: 'CR CR LF after version',
    raw: 'GET / HTTP/1.1\r\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  { name: 'bare LF empty line first', raw: `\n${GET}`, status: 400, code: 'TRL_HTTP_BARE_LF' },
  {
    name: 'bare LF after chunk size',
    raw: chunked('5\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_LF',
  },
  {
    name: 'bare CR after chunk size',
    raw: chunked('5\rhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  {
    name: 'bare LF after chunk data',
    raw: chunked('5\r\nhello\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_LF',
  },
  {
    name: 'bare CR after chunk data',
    raw: chunked('5\r\nhello\r0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  { name: 'bare LF in trailers', raw: chunked('0\r\nX: y\n\r\n'), status: 400, code: 'TRL_HTTP_BARE_LF' },
  { name: 'bare LF ends trailers', raw: chunked('0\r\n\n'), status: 400, code: 'TRL_HTTP_BARE_LF' },
  // header fields
  {
    name: 'space before colon',
    raw: post('X-Foo : bar\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  {
    name: 'HTAB before colon',
    raw: post('X-Foo\t: bar\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  {
    name: 'invalid char in name',
    raw: post('X(Foo): bar\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  {
    name: 'non-ASCII in name',
    raw: post('X-F\xf6o: bar\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  { name: 'empty name', raw: post(': bar\r\n'), status: 400, code: 'TRL_HTTP_INVALID_HEADER_TOKEN' },
  { name: 'no colon', raw: post('X-Foo\r\n'), status: 400, code: 'TRL_HTTP_INVALID_HEADER_TOKEN' },
  {
    name: 'NUL in a value',
    raw: post('X-Foo: a\x00b\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_VALUE',
  },
  {
    name: 'DEL in a value',
    raw: post('X-Foo: a\x7fb\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_VALUE',
  },
  {
    name: 'VT in a value',
    raw: post('X-Foo: \x0bb\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_VALUE',
  },
  { name: 'obs-fold', raw: post('X-Foo: a\r\n  b\r\n'), status: 400, code: 'TRL_HTTP_OBS_FOLD' },
  { name: 'obs-fold with HTAB', raw: post('X-Foo: a\r\n\tb\r\n'), status: 400, code: 'TRL_HTTP_OBS_FOLD' },
  {
    name: 'whitespace before the first header',
    raw: 'GET / HTTP/1.1\r\n Host: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_OBS_FOLD',
  },
  // Host
  {
    name: 'HTTP/1.1 without Host',
    raw: 'GET / HTTP/1.1\r\nX: y\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_MISSING_HOST',
  },
  { name: 'two Host headers', raw: post('host: b\r\n'), status: 400, code: 'TRL_HTTP_DUPLICATE_HOST' },
  {
    name: 'two Host headers in 1.0',
    raw: 'GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_DUPLICATE_HOST',
  },
  ...['host:@evil', 'user@host', 'host:80/x', 'host:99999', 'host:8a', 'host:', '[::1'].map((host) => ({
    name: `Host ${host}`,
    raw: `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    status: 400,
    code: 'TRL_HTTP_INVALID_HOST',
  })),
  // Content-Length
  {
    name: 'Content-Length: +5',
    raw: post('Content-Length: +5\r\n', 'hello'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'Content-Length: -1',
    raw: post('Content-Length: -1\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'Content-Length: 5, 5',
    raw: post('Content-Length: 5, 5\r\n', 'hello'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'Content-Length: 5 5',
    raw: post('Content-Length: 5 5\r\n', 'hello'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'Content-Length: 0x5',
    raw: post('Content-Length: 0x5\r\n', 'hello'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'empty Content-Length',
    raw: post('Content-Length:\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'Content-Length over MAX_SAFE_INTEGER',
    raw: post('Content-Length: 9007199254740992\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CONTENT_LENGTH',
  },
  {
    name: 'two equal Content-Length',
    raw: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'),
    status: 400,
    code: 'TRL_HTTP_DUPLICATE_CONTENT_LENGTH',
  },
  {
    name: 'two different Content-Length',
    raw: post('Content-Length: 5\r\ncontent-length: 6\r\n', 'hello!'),
    status: 400,
    code: 'TRL_HTTP_DUPLICATE_CONTENT_LENGTH',
  },
  // Transfer-Encoding and the classic smuggling shapes
  {
    name: 'CL.TE',
    raw: post('Content-Length: 13\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nSMUGGLED'),
    status: 400,
    code: 'TRL_HTTP_CL_TE_CONFLICT',
  },
  {
    name: 'TE.CL',
    raw: post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '8\r\nSMUGGLED\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_CL_TE_CONFLICT',
  },
  {
    name: 'TE.TE: space before colon',
    raw: post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  {
    name: 'TE.TE: xchunked',
    raw: post('Transfer-Encoding: xchunked\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE.TE: second TE field',
    raw: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE.TE: chunked twice in two fields',
    raw: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE.TE: folded TE',
    raw: post('Transfer-Encoding: chunked\r\n , identity\r\n', '0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_OBS_FOLD',
  },
  {
    name: 'TE.TE: TE value on a folded line',
    raw: post('Transfer-Encoding:\r\n chunked\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE.TE: VT before chunked',
    raw: post('Transfer-Encoding: \x0bchunked\r\n', '0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_VALUE',
  },
  {
    name: 'TE.TE: quoted chunked',
    raw: post('Transfer-Encoding: "chunked"\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE.TE: HTAB after chunked',
    raw: post('Transfer-Encoding: chunked\t\r\n', '0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_TRANSFER_ENCODING',
  },
  {
    name: 'TE list gzip, chunked',
    raw: post('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE list chunked, chunked',
    raw: post('Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE identity',
    raw: post('Transfer-Encoding: identity\r\n'),
    status: 501,
    code: 'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
  },
  {
    name: 'TE in HTTP/1.0',
    raw: 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    status: 400,
    code: 'TRL_HTTP_TE_IN_HTTP10',
  },
  // chunked bodies
  {
    name: 'chunk size 0x5',
    raw: chunked('0x5\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk size "5 "',
    raw: chunked('5 \r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk size -5',
    raw: chunked('-5\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'empty chunk size',
    raw: chunked(';a\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: '17 hex digits',
    raw: chunked(`${'0'.repeat(16)}5\r\nhello\r\n0\r\n\r\n`),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk size over MAX_SAFE_INTEGER',
    raw: chunked('20000000000000\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk data longer than its size',
    raw: chunked('3\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk ext without name',
    raw: chunked('5;=x\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk ext BWS before CRLF',
    raw: chunked('5;a \r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk ext NUL in value',
    raw: chunked('5;a=b\x00\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk ext with a bad token',
    raw: chunked('5;a=b"c\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_CHUNK',
  },
  {
    name: 'chunk ext unterminated quote swallows the CRLF',
    raw: chunked('5;a="b\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_CR',
  },
  {
    name: 'chunk ext escaped LF in quotes',
    raw: chunked('5;a="\\\n"\r\nhello\r\n0\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_BARE_LF',
  },
  {
    name: 'space before the colon in trailers',
    raw: chunked('0\r\nX-T : 1\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_TOKEN',
  },
  {
    name: 'obs-fold in trailers',
    raw: chunked('0\r\nX-T: 1\r\n 2\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_OBS_FOLD',
  },
  {
    name: 'NUL in a trailer',
    raw: chunked('0\r\nX-T: \x00\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_INVALID_HEADER_VALUE',
  },
  {
    name: 'Content-Length in trailers',
    raw: chunked('0\r\nContent-Length: 5\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_FORBIDDEN_TRAILER',
  },
  {
    name: 'Transfer-Encoding in trailers',
    raw: chunked('0\r\nTransfer-Encoding: chunked\r\n\r\n'),
    status: 400,
    code: 'TRL_HTTP_FORBIDDEN_TRAILER',
  },
  // limits (defaults: 60 KiB, 100 fields)
  {
    name: 'header over the head limit',
    raw: `GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(61 * 1024)}\r\n\r\n`,
    status: 431,
    code: 'TRL_HTTP_HEADERS_TOO_LARGE',
  },
  {
    name: '101 header fields',
    raw: `GET / HTTP/1.1\r\nHost: a\r\n${'X: y\r\n'.repeat(100)}\r\n`,
    status: 431,
    code: 'TRL_HTTP_TOO_MANY_HEADERS',
  },
  {
    name: 'trailers push the fields over the limit',
    raw: chunked(`0\r\n${'X: y\r\n'.repeat(99)}\r\n`),
    status: 431,
    code: 'TRL_HTTP_TOO_MANY_HEADERS',
  },
];

/** Deterministic PRNG (mulberry32): the same seed gives the same corpus on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes that sit on the parser's decision points: line ends, separators, CTLs, non-ASCII, TE names. */
const MUTAGENS = [
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  '\x00',
  ',',
  ':',
  ';',
  '=',
  '"',
  '\x7f',
  '\x80',
  'chunked',
  ' chunked',
];

/** Single-byte insertions, replacements and deletions in the valid requests (no upgrades: their tails are
 * not HTTP). */
export function mutations(seed: number, count: number): string[] {
  const rand = prng(seed);
  const templates = valid.filter((c) => c.rest === undefined).map((c) => c.raw);
  const out: string[] = [];
  while (out.length < count) {
    const t = templates[Math.floor(rand() * templates.length)];
    const at = Math.floor(rand() * t.length);
    const m = MUTAGENS[Math.floor(rand() * MUTAGENS.length)];
    const op = rand();
    const mutated =
      op < 0.45
        ? t.slice(0, at) + m + t.slice(at)
        : op < 0.9
          ? t.slice(0, at) + m + t.slice(at + 1)
          : t.slice(0, at) + t.slice(at + 1);
    if (mutated !== t) out.push(mutated);
  }
  return out;
}
