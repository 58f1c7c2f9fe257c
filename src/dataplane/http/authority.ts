// Host and :authority are `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 9112 §3.2) and nothing more.
// A value with userinfo, a path or a malformed port is routed by its prefix here but may be read
// differently by the app or a proxy further in, so it is refused, as Envoy refuses it.

/** unreserved / sub-delims / "%" of RFC 3986's reg-name; IPv4 addresses are made of these too. */
const REG_NAME = new Uint8Array(128);
for (const c of "-._~!$&'()*+,;=%") REG_NAME[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) REG_NAME[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) REG_NAME[c] = REG_NAME[c + 0x20] = 1;

const COLON = 0x3a;

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function describe(c: number): string {
  return `character ${JSON.stringify(String.fromCharCode(c))}`;
}

/**
 * What is wrong with a Host or :authority value, or null when it is a reg-name, an IPv4 address or
 * a bracketed IPv6 address, optionally with a port of 1-65535. An empty value is valid (RFC 9112
 * §3.2: the target has no authority); routing decides what to do with it.
 */
export function authorityProblem(v: string): string | null {
  // Named on its own: `user@host` and `host:@evil` are attempts to smuggle a second authority.
  if (v.includes('@')) return 'userinfo ("@") is not allowed';
  const n = v.length;
  let i = 0;
  if (n > 0 && v.charCodeAt(0) === 0x5b) {
    // IP-literal: hex digits, colons and the dots of an embedded IPv4 address (IPvFuture is not served).
    i = 1;
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c === 0x5d) break;
      if (!isHex(c) && c !== COLON && c !== 0x2e) return `${describe(c)} in an IPv6 address`;
    }
    if (i === n) return 'IPv6 address without "]"';
    if (i === 1) return 'empty IPv6 address';
    i++;
    if (i < n && v.charCodeAt(i) !== COLON) return `${describe(v.charCodeAt(i))} after the IPv6 address`;
  } else {
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c === COLON) break;
      if (c >= 128 || REG_NAME[c] !== 1) return `${describe(c)} in the host`;
      if (c === 0x25 && !(i + 2 < n && isHex(v.charCodeAt(i + 1)) && isHex(v.charCodeAt(i + 2))))
        return '"%" not followed by two hex digits';
    }
    if (i === 0 && n > 0) return 'empty host before the port';
  }
  if (i === n) return null;
  // v[i] is the colon before the port.
  const p = i + 1;
  if (p === n) return 'empty port';
  let port = 0;
  for (let j = p; j < n; j++) {
    const c = v.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return `${describe(c)} in the port`;
    port = port * 10 + (c - 0x30);
    if (port > 65535) return 'port out of range (1-65535)';
  }
  return port === 0 ? 'port out of range (1-65535)' : null;
}
