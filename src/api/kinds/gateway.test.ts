import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('Gateway', [
  {
    name: 'bookinfo gateway',
    spec: `
      selector:
        istio: ingressgateway
      servers:
      - port:
          number: 8080
          name: http
          protocol: HTTP
        hosts:
        - "*"
    `,
    warnings: 'none',
  },
  {
    name: 'namespaced and wildcard hosts, lower-case protocol, named servers',
    spec: `
      selector: {app: gateway}
      servers:
      - name: public
        port: {number: 80, name: http, protocol: http}
        hosts: ["prod/*.example.com", "./bookinfo.example.com", "*/reviews"]
      - name: internal
        port: {number: 8081, name: http-internal, protocol: HTTP}
        hosts: [internal.example.com]
    `,
    warnings: 'none',
  },
  {
    name: 'HTTPS with a credential and an HTTP server redirecting to it',
    spec: `
      selector: {istio: ingressgateway}
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: [bookinfo.example.com]
        tls:
          mode: SIMPLE
          credentialName: bookinfo-credential
          minProtocolVersion: TLSV1_2
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: [bookinfo.example.com]
        tls: {httpsRedirect: true}
    `,
    warnings: 'none',
  },
  {
    name: 'TCP and TLS passthrough servers',
    spec: `
      servers:
      - port: {number: 31400, name: tcp, protocol: TCP}
        hosts: ["*"]
      - port: {number: 15443, name: tls, protocol: TLS}
        hosts: ["*.local"]
        tls: {mode: AUTO_PASSTHROUGH}
    `,
    warnings: [
      { path: 'spec.servers[0].port.protocol', message: `${NE}: Trellis gateways serve HTTP, HTTP2` },
      { path: 'spec.servers[1].port.protocol', message: 'found TLS' },
      { path: 'spec.servers[1].tls.mode', message: `${NE}: mode AUTO_PASSTHROUGH` },
    ],
  },
  {
    name: 'servers are required',
    spec: `
      selector: {istio: ingressgateway}
    `,
    errors: [{ path: 'spec.servers', message: 'gateway must have at least one server' }],
  },
  {
    name: 'hosts and port fields are required',
    spec: `
      servers:
      - port: {number: 80, protocol: HTTP}
      - hosts: ["*"]
    `,
    errors: [
      { path: 'spec.servers[0].hosts', message: 'server config must contain at least one host', line: 7 },
      { path: 'spec.servers[0].port.name', message: 'required field is missing', line: 7 },
      { path: 'spec.servers[1].port', message: 'required field is missing', line: 8 },
    ],
  },
  {
    name: 'protocol with did-you-mean, port range',
    spec: `
      servers:
      - port: {number: 70000, name: http, protocol: HTTQ}
        hosts: ["*"]
    `,
    errors: [
      { path: 'spec.servers[0].port.protocol', message: '(did you mean "HTTP"?)', line: 7 },
      { path: 'spec.servers[0].port.number', message: '70000 is above the maximum 65535' },
    ],
  },
  {
    name: 'server names and port names are unique',
    spec: `
      servers:
      - name: web
        port: {number: 80, name: http, protocol: HTTP}
        hosts: [a.example.com]
      - name: web
        port: {number: 8080, name: http, protocol: HTTP}
        hosts: [b.example.com]
    `,
    errors: [
      { path: 'spec.servers[1].name', message: 'server name "web" is not unique', line: 10 },
      {
        path: 'spec.servers[1].port.name',
        message: 'port names in servers must be unique: duplicate name http',
      },
    ],
  },
  {
    name: 'invalid hosts',
    spec: `
      servers:
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["Bad_NS/x.com", "a/b/c", "/x.com", "foo.*.com"]
    `,
    errors: [
      { path: 'spec.servers[0].hosts[0]', message: 'has an invalid namespace "Bad_NS"' },
      { path: 'spec.servers[0].hosts[1]', message: 'is not valid: expected "[namespace/]dnsName"' },
      { path: 'spec.servers[0].hosts[2]', message: 'namespace and DNS name must not be empty' },
      { path: 'spec.servers[0].hosts[3]', message: 'is not valid' },
    ],
  },
  {
    name: 'only one of credentialName, credentialNames, tlsCertificates',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls:
          mode: SIMPLE
          credentialName: a
          credentialNames: [b, c]
    `,
    errors: [
      {
        path: 'spec.servers[0].tls',
        message:
          'only one of credentialName, credentialNames, tlsCertificates may be set, found credentialName and credentialNames',
        line: 9,
      },
    ],
  },
  {
    name: 'HTTPS needs TLS settings; plain HTTP may only redirect',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["*"]
        tls: {mode: SIMPLE, credentialName: x}
      - port: {number: 9443, name: tls, protocol: TLS}
        hosts: ["*"]
        tls: {mode: PASSTHROUGH, httpsRedirect: true}
    `,
    errors: [
      { path: 'spec.servers[0].tls', message: 'server must have TLS settings for HTTPS/TLS protocols' },
      { path: 'spec.servers[1].tls', message: 'server cannot have TLS settings for plain text HTTP ports' },
    ],
    warnings: [
      {
        path: 'spec.servers[2].tls.httpsRedirect',
        message: 'tls.httpsRedirect should only be used with http servers',
      },
    ],
  },
  {
    name: 'certificates for SIMPLE and MUTUAL',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: SIMPLE, serverCertificate: /cert.pem}
      - port: {number: 8443, name: https-mtls, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: MUTUAL, serverCertificate: /cert.pem, privateKey: /key.pem}
      - port: {number: 9443, name: https-mesh, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: ISTIO_MUTUAL, credentialName: x}
    `,
    errors: [
      { path: 'spec.servers[0].tls.privateKey', message: 'SIMPLE TLS requires a private key' },
      { path: 'spec.servers[1].tls.caCertificates', message: 'MUTUAL TLS requires a client CA bundle' },
      {
        path: 'spec.servers[2].tls',
        message: "ISTIO_MUTUAL uses the mesh's own certificates: remove credentialName",
      },
    ],
  },
  {
    name: 'TLS versions, hashes and cipher suites',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls:
          mode: SIMPLE
          tlsCertificates:
          - {serverCertificate: /rsa.pem, privateKey: /rsa.key}
          minProtocolVersion: TLSV1_3
          maxProtocolVersion: TLSV1_2
          cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, NOT-A-CIPHER]
    `,
    errors: [
      { path: 'spec.servers[0].tls.minProtocolVersion', message: 'is higher than maxProtocolVersion' },
      {
        path: 'spec.servers[0].tls.cipherSuites[1]',
        message: 'unknown cipher suite "NOT-A-CIPHER": expected an Envoy (BoringSSL) name',
        line: 15,
      },
    ],
  },
  {
    name: 'cipher suites by their IANA names, TLS servers of one port told apart by host',
    spec: `
      servers:
      - port: {number: 443, name: https-a, protocol: HTTPS}
        hosts: [a.example.com]
        tls:
          mode: SIMPLE
          credentialName: a
          cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ECDHE-ECDSA-AES256-GCM-SHA384]
      - port: {number: 443, name: https-b, protocol: HTTPS}
        hosts: ["*.example.com"]
        tls: {mode: SIMPLE, credentialName: b}
    `,
    warnings: 'none',
  },
  {
    name: 'one port, one protocol; SNI must tell TLS servers apart',
    spec: `
      servers:
      - port: {number: 443, name: https-a, protocol: HTTPS}
        hosts: [a.example.com, "*.example.com"]
        tls: {mode: SIMPLE, credentialName: a}
      - port: {number: 443, name: https-b, protocol: HTTPS}
        hosts: [b.example.com, "prod/A.example.com"]
        tls: {mode: SIMPLE, credentialName: b}
      - port: {number: 443, name: http-c, protocol: HTTP}
        hosts: [c.example.com]
      - port: {number: 80, name: http-a, protocol: HTTP}
        hosts: [a.example.com]
      - port: {number: 80, name: http-b, protocol: HTTP}
        hosts: [a.example.com]
    `,
    errors: [
      {
        path: 'spec.servers[1].hosts[1]',
        message: 'host prod/A.example.com on port 443 is already served by servers[0]: SNI cannot choose',
        line: 11,
      },
      {
        path: 'spec.servers[2].port.protocol',
        message:
          'port 443 is already served as HTTPS by servers[0]: servers on one port cannot mix HTTPS and HTTP',
        line: 13,
      },
    ],
  },
  {
    name: 'TLS modes a gateway does not terminate yet, and insecureSkipVerify, are warned',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: ISTIO_MUTUAL}
      - port: {number: 8443, name: https-pass, protocol: HTTPS}
        hosts: ["*"]
        tls: {minProtocolVersion: TLSV1_2}
      - port: {number: 9443, name: https-m, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: MUTUAL, credentialName: c, insecureSkipVerify: true}
    `,
    warnings: [
      { path: 'spec.servers[0].tls.mode', message: `${NE}: mode ISTIO_MUTUAL; gateways terminate SIMPLE` },
      { path: 'spec.servers[1].tls.mode', message: 'mode PASSTHROUGH (the default)' },
      { path: 'spec.servers[2].tls.insecureSkipVerify', message: NE },
    ],
  },
  {
    name: 'certificate pins',
    spec: `
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls:
          mode: MUTUAL
          credentialName: x
          verifyCertificateHash: [abc]
          verifyCertificateSpki: ["bm90LWEtaGFzaA=="]
    `,
    errors: [
      { path: 'spec.servers[0].tls.verifyCertificateHash[0]', message: 'hex-encoded SHA-256' },
      { path: 'spec.servers[0].tls.verifyCertificateSpki[0]', message: 'base64-encoded SHA-256' },
    ],
  },
  {
    name: 'bind and unix sockets',
    spec: `
      servers:
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["*"]
        bind: not-an-ip
      - port: {number: 81, name: http2, protocol: HTTP}
        hosts: ["*"]
        bind: unix:///var/run/gw.sock
    `,
    errors: [
      { path: 'spec.servers[0].bind', message: 'expected an IP address or a unix:// socket path' },
      { path: 'spec.servers[1].port.number', message: 'port must be 0 for unix domain socket' },
    ],
  },
  {
    name: 'selector labels',
    spec: `
      selector: {"": x, app: "a b"}
      servers:
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: ["*"]
    `,
    errors: [
      { path: 'spec.selector.', message: 'label key must not be empty' },
      { path: 'spec.selector.app', message: 'label value "a b" is not valid' },
    ],
  },
]);
