import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorityProblem } from './authority.ts';

test('authorityProblem accepts uri-host [":" port] and refuses everything else', () => {
  const valid = [
    '',
    'reviews',
    'reviews:9080',
    'reviews.default.svc.cluster.local:9080',
    'EXAMPLE.com',
    '127.0.0.1',
    '127.0.0.1:1',
    'host:65535',
    'host:080',
    '[::1]',
    '[::1]:8080',
    '[2001:db8::ffff:192.0.2.1]:443',
    'a-b_c~d.e',
    "sub!$&'()*+,;=delims",
    'pct%2Dencoded',
  ];
  for (const v of valid) assert.equal(authorityProblem(v), null, v);
  const invalid: [string, RegExp][] = [
    ['host:@evil', /userinfo \("@"\)/],
    ['user@host', /userinfo \("@"\)/],
    ['user:pw@host:80', /userinfo \("@"\)/],
    ['[::1]@evil', /userinfo \("@"\)/],
    ['host:80/x', /character "\/" in the port/],
    ['host/x', /character "\/" in the host/],
    ['host?q', /character "\?" in the host/],
    ['host#f', /character "#" in the host/],
    ['host:', /empty port/],
    ['host:8a', /character "a" in the port/],
    ['host:-1', /character "-" in the port/],
    ['host:99999', /out of range/],
    ['host:65536', /out of range/],
    ['host:0', /out of range/],
    ['host:1:2', /character ":" in the port/],
    [':80', /empty host/],
    ['ho st', /character " " in the host/],
    ['hôst', /in the host/],
    ['bad%zz', /"%" not followed by two hex digits/],
    ['bad%2', /"%" not followed/],
    ['[::1', /without "]"/],
    ['[]', /empty IPv6/],
    ['[::g]', /character "g" in an IPv6 address/],
    ['[::1]x', /character "x" after the IPv6 address/],
    ['[::1]:', /empty port/],
    ['[::1]:70000', /out of range/],
  ];
  for (const [v, why] of invalid) assert.match(authorityProblem(v) ?? 'valid', why, v);
});
