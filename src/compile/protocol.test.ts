import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PortProxying, type Protocol, portProxying, servicePortProtocol } from './protocol.ts';

test('a service port protocol comes from appProtocol, else the name prefix, else sniffing (as Istio)', () => {
  const cases: [{ name?: string; protocol?: string; appProtocol?: string }, Protocol, PortProxying][] = [
    [{ name: 'http' }, 'HTTP', 'HTTP'],
    [{ name: 'http-web' }, 'HTTP', 'HTTP'],
    [{ name: 'HTTP-Web' }, 'HTTP', 'HTTP'],
    [{ name: 'http2' }, 'HTTP2', 'HTTP'],
    [{ name: 'grpc' }, 'GRPC', 'HTTP'],
    [{ name: 'grpc-web' }, 'GRPC-Web', 'HTTP'],
    [{ name: 'grpc-web-x' }, 'GRPC-Web', 'HTTP'],
    [{ name: 'grpc-x' }, 'GRPC', 'HTTP'],
    [{ name: 'tcp' }, 'TCP', 'TCP'],
    [{ name: 'tcp-echo' }, 'TCP', 'TCP'],
    [{ name: 'mongo' }, 'Mongo', 'TCP'],
    [{ name: 'redis-main' }, 'Redis', 'TCP'],
    [{ name: 'mysql' }, 'MySQL', 'TCP'],
    [{ name: 'https' }, 'HTTPS', 'TLS'],
    [{ name: 'tls-db' }, 'TLS', 'TLS'],
    [{ name: 'web' }, 'Unsupported', 'AUTO'],
    [{ name: 'httpx' }, 'Unsupported', 'AUTO'],
    [{}, 'Unsupported', 'AUTO'],
    // appProtocol wins over the name.
    [{ name: 'http', appProtocol: 'tcp' }, 'TCP', 'TCP'],
    [{ name: 'db', appProtocol: 'mysql' }, 'MySQL', 'TCP'],
    [{ name: 'tcp', appProtocol: 'HTTP' }, 'HTTP', 'HTTP'],
    [{ name: 'tcp', appProtocol: 'kubernetes.io/h2c' }, 'HTTP2', 'HTTP'],
    [{ appProtocol: 'kubernetes.io/ws' }, 'HTTP', 'HTTP'],
    [{ appProtocol: 'kubernetes.io/wss' }, 'HTTPS', 'TLS'],
    // An unknown appProtocol is sniffed, even with a port name that says more.
    [{ name: 'http', appProtocol: 'custom' }, 'Unsupported', 'AUTO'],
    [{ name: 'dns', protocol: 'UDP' }, 'UDP', 'TCP'],
  ];
  for (const [port, protocol, proxying] of cases) {
    const got = servicePortProtocol(port);
    assert.equal(got, protocol, JSON.stringify(port));
    assert.equal(portProxying(got), proxying, JSON.stringify(port));
  }
});
