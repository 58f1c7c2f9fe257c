import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('Sidecar', [
  {
    name: 'namespace egress hosts, enforced (no warning)',
    spec: `
      egress:
        - hosts: ["./*", "istio-system/*", "*/ratings.default.svc.cluster.local", "~/*"]
    `,
    warnings: 'none',
  },
  {
    name: 'a workload Sidecar with egress ports, ingress and an outbound policy',
    spec: `
      workloadSelector: {labels: {app: reviews}}
      ingress:
        - port: {number: 9080, protocol: HTTP, name: http}
          defaultEndpoint: 127.0.0.1:8080
      egress:
        - port: {number: 9080, protocol: HTTP, name: http}
          hosts: ["./ratings.default.svc.cluster.local"]
        - hosts: ["istio-system/*"]
      outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    `,
    warnings: 'none',
  },
  {
    name: 'a host without a namespace',
    spec: `
      egress:
        - hosts: ["reviews.default.svc.cluster.local"]
    `,
    errors: [{ path: 'spec.egress[0].hosts[0]', message: 'must be of form namespace/dnsName', line: 7 }],
  },
  {
    name: 'a bad namespace and a bad DNS name',
    spec: `
      egress:
        - hosts: ["Prod/*", "./a..b"]
    `,
    errors: [
      { path: 'spec.egress[0].hosts[0]', message: 'invalid namespace "Prod"' },
      { path: 'spec.egress[0].hosts[1]', message: 'invalid DNS name "a..b"' },
    ],
  },
  {
    name: 'exclusion entries are refused',
    spec: `
      egress:
        - hosts: ["~prod/*"]
    `,
    errors: [{ path: 'spec.egress[0].hosts[0]', message: 'exclusion entries' }],
  },
  {
    name: 'a short name is warned: hosts match full names',
    spec: `
      egress:
        - hosts: ["./reviews"]
    `,
    warnings: [{ path: 'spec.egress[0].hosts[0]', message: "write the service's FQDN" }],
  },
  {
    name: 'an egress listener needs hosts',
    spec: `
      egress:
        - hosts: []
    `,
    errors: [{ path: 'spec.egress[0].hosts', message: 'at least one entry' }],
  },
  {
    name: 'the portless egress listener comes last, ports are unique',
    spec: `
      egress:
        - hosts: ["./*"]
        - port: {number: 80}
          hosts: ["./*"]
        - port: {number: 80}
          hosts: ["./*"]
    `,
    errors: [
      { path: 'spec.egress[0]', message: 'should be the last listener' },
      { path: 'spec.egress[2].port', message: 'egress port 80 is already defined by egress[1]' },
    ],
  },
  {
    name: 'empty configuration',
    spec: 'workloadSelector: {labels: {app: a}}',
    errors: [{ path: 'spec', message: 'sidecar: empty configuration provided' }],
  },
  {
    name: 'an empty workloadSelector',
    spec: `
      workloadSelector: {labels: {}}
      egress: [{hosts: ["./*"]}]
    `,
    errors: [{ path: 'spec.workloadSelector.labels', message: 'must not be empty' }],
  },
  {
    name: 'bad defaultEndpoints',
    spec: `
      ingress:
        - port: {number: 9080}
          defaultEndpoint: 10.0.0.1:8080
        - port: {number: 9081}
          defaultEndpoint: 127.0.0.1:70000
        - port: {number: 9082}
          defaultEndpoint: localhost:8080
    `,
    errors: [
      { path: 'spec.ingress[0].defaultEndpoint', message: 'must be of form 127.0.0.1:<port>', line: 8 },
      { path: 'spec.ingress[1].defaultEndpoint', message: 'must be of form 127.0.0.1:<port>', line: 10 },
      { path: 'spec.ingress[2].defaultEndpoint', message: 'must be of form 127.0.0.1:<port>', line: 12 },
    ],
  },
  {
    name: 'ingress ports are unique',
    spec: `
      ingress:
        - port: {number: 9080}
        - port: {number: 9080}
    `,
    errors: [{ path: 'spec.ingress[1].port', message: 'ingress port 9080 is already defined by ingress[0]' }],
  },
  {
    name: 'an ingress listener needs a port',
    spec: `
      ingress:
        - defaultEndpoint: 0.0.0.0:8080
    `,
    errors: [{ path: 'spec.ingress[0].port', message: 'required field is missing' }],
  },
  {
    name: 'ingress tls: httpsRedirect and credentialName are refused',
    spec: `
      ingress:
        - port: {number: 9443}
          tls: {mode: SIMPLE, httpsRedirect: true, credentialName: x}
    `,
    errors: [
      { path: 'spec.ingress[0].tls.httpsRedirect', message: 'httpsRedirect is not supported' },
      { path: 'spec.ingress[0].tls', message: 'credentialName is not currently supported' },
    ],
  },
  {
    name: 'what the local runtime cannot do is warned',
    spec: `
      ingress:
        - port: {number: 9443, protocol: HTTPS}
          bind: 127.0.0.1
          captureMode: NONE
          tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
      egress:
        - hosts: ["./*"]
          bind: 127.0.0.1
          captureMode: IPTABLES
    `,
    warnings: [
      { path: 'spec.ingress[0].bind', message: NE },
      { path: 'spec.ingress[0].captureMode', message: NE },
      { path: 'spec.ingress[0].tls', message: `${NE}: tls` },
      { path: 'spec.ingress[0].port.protocol', message: `${NE}: protocol HTTPS` },
      { path: 'spec.egress[0].bind', message: NE },
      { path: 'spec.egress[0].captureMode', message: NE },
    ],
  },
  {
    name: 'egressProxy only with ALLOW_ANY',
    spec: `
      outboundTrafficPolicy:
        mode: REGISTRY_ONLY
        egressProxy: {host: proxy.example.com}
    `,
    errors: [{ path: 'spec.outboundTrafficPolicy.egressProxy', message: 'only with ALLOW_ANY' }],
  },
  {
    name: 'an unknown outbound mode',
    spec: 'outboundTrafficPolicy: {mode: DENY}',
    errors: [{ path: 'spec.outboundTrafficPolicy.mode', message: 'is not one of REGISTRY_ONLY, ALLOW_ANY' }],
  },
]);
