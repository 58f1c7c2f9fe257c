import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('ServiceEntry', [
  {
    name: "Istio's NONE example with IPv6 addresses in a flow list, wildcard host, exportTo: nothing to warn about",
    spec: `
      hosts: ["*.example.com"]
      addresses: [1.2.3.4, 001:db8::]
      ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: other}]
      resolution: NONE
      exportTo: [".", istio-system]
    `,
    warnings: 'none',
  },
  {
    name: 'MESH_INTERNAL entries: workloadSelector, and endpoints with locality: nothing to warn about',
    spec: `
      hosts: [vm.internal]
      location: MESH_INTERNAL
      ports: [{number: 80, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 10.0.0.7, locality: us-east/a, serviceAccount: vm}]
    `,
    warnings: 'none',
  },
  {
    name: 'bookinfo googleapis egress: the HTTP port is routed, the HTTPS one is named as not',
    spec: `
      hosts: [www.googleapis.com]
      ports:
      - {number: 80, name: http, protocol: HTTP}
      - {number: 443, name: https, protocol: HTTPS}
      resolution: DNS
      location: MESH_EXTERNAL
    `,
    warnings: [
      {
        path: 'spec.ports[1].protocol',
        message: `${NE}: port 443 (protocol HTTPS) is not routed: its cluster is compiled`,
        line: 9,
      },
    ],
  },
  {
    name: 'an HTTP port of a DNS entry, and a STATIC one: nothing to warn about',
    spec: `
      hosts: [api.example.com]
      ports: [{number: 80, name: http, protocol: HTTP, targetPort: 443}]
      resolution: STATIC
      endpoints: [{address: 10.0.0.7}]
    `,
    warnings: 'none',
  },
  {
    name: 'static endpoints with ports and a unix socket',
    spec: `
      hosts: [mysql.internal]
      addresses: [10.1.0.0/16]
      ports: [{number: 3306, name: mysql, protocol: TCP, targetPort: 13306}]
      location: MESH_INTERNAL
      resolution: STATIC
      endpoints:
      - address: 10.1.2.3
        ports: {mysql: 13306}
        labels: {version: v1}
        locality: us-west/zone1
        weight: 2
        network: net-2
      - address: unix:///var/run/mysql.sock
      exportTo: ["~"]
    `,
    warnings: [
      {
        path: 'spec.ports[0].protocol',
        message: 'port 3306 (protocol TCP) is not routed: its cluster is compiled',
      },
      { path: 'spec.addresses', message: `${NE}: CIDR addresses (10.1.0.0/16) select connections` },
      { path: 'spec.endpoints[0].network', message: `${NE}: endpoint network` },
      { path: 'spec.endpoints[1].address', message: 'unix domain socket endpoints are not routed' },
    ],
  },
  {
    name: 'DYNAMIC_DNS is not routed; wildcard hosts are',
    spec: `
      hosts: ["*.example.com"]
      ports: [{number: 80, name: http, protocol: HTTP}]
      resolution: DYNAMIC_DNS
    `,
    warnings: [{ path: 'spec.resolution', message: 'resolution DYNAMIC_DNS: the hosts are not routed' }],
  },
  {
    name: 'NONE mode cannot set endpoints',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      endpoints:
      - address: 1.2.3.4
    `,
    errors: [{ path: 'spec.endpoints', message: 'NONE mode cannot set endpoints', line: 8 }],
  },
  {
    name: 'DNS_ROUND_ROBIN mode cannot have multiple endpoints',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      resolution: DNS_ROUND_ROBIN
      endpoints:
      - address: a1.example.com
      - address: a2.example.com
    `,
    errors: [{ path: 'spec.endpoints', message: 'DNS_ROUND_ROBIN mode cannot have multiple endpoints' }],
  },
  {
    name: 'only one of WorkloadSelector or Endpoints can be set',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      location: MESH_INTERNAL
      resolution: STATIC
      workloadSelector: {labels: {app: a}}
      endpoints:
      - address: 1.2.3.4
    `,
    errors: [
      {
        path: 'spec.workloadSelector',
        message: 'only one of WorkloadSelector or Endpoints can be set',
        line: 10,
      },
    ],
  },
  {
    name: 'hosts are required and "*" alone is not a host',
    spec: `
      hosts: ["*"]
      ports: [{number: 80, name: http}]
    `,
    errors: [{ path: 'spec.hosts[0]', message: 'host "*" is not allowed here', line: 6 }],
  },
  {
    name: 'missing hosts',
    spec: `
      ports: [{number: 80, name: http}]
    `,
    errors: [{ path: 'spec.hosts', message: 'service entry must have at least one host' }],
  },
  {
    name: 'ports need names and unique numbers',
    spec: `
      hosts: [a.example.com]
      ports:
      - {number: 80, name: http}
      - {number: 80, name: http}
      - {number: 81, protocol: HTTP3}
    `,
    errors: [
      { path: 'spec.ports[1].name', message: 'service entry port name "http" already defined' },
      { path: 'spec.ports[1].number', message: 'service entry port 80 already defined', line: 9 },
      { path: 'spec.ports[2].name', message: 'required field is missing' },
      { path: 'spec.ports[2].protocol', message: 'protocol "HTTP3" is not one of' },
    ],
  },
  {
    name: 'CIDR addresses only with NONE or STATIC',
    spec: `
      hosts: [a.example.com]
      addresses: [10.0.0.0/8, not-an-ip]
      ports: [{number: 80, name: http}]
      resolution: DNS
    `,
    errors: [{ path: 'spec.addresses[1]', message: 'is not an IP address or CIDR block' }],
  },
  {
    name: 'CIDR addresses with DNS resolution',
    spec: `
      hosts: [a.example.com]
      addresses: [10.0.0.0/8]
      ports: [{number: 80, name: http}]
      resolution: DNS
    `,
    errors: [
      { path: 'spec.addresses', message: 'CIDR addresses are allowed only for NONE/STATIC resolution types' },
    ],
  },
  {
    name: 'STATIC endpoints are IPs; DNS without endpoints needs FQDN hosts',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      resolution: STATIC
      endpoints:
      - address: a.example.com
    `,
    errors: [
      {
        path: 'spec.endpoints[0].address',
        message: 'STATIC resolution needs IP or unix:// endpoint addresses',
      },
    ],
  },
  {
    name: 'DNS resolution of wildcard hosts needs endpoints',
    spec: `
      hosts: ["*.example.com"]
      ports: [{number: 443, name: tls, protocol: TLS}]
      resolution: DNS
    `,
    errors: [
      {
        path: 'spec.hosts[0]',
        message: 'hosts must be FQDN if no endpoints are provided for resolution mode DNS',
      },
    ],
  },
  {
    name: 'endpoint ports, names and sockets',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      resolution: STATIC
      endpoints:
      - address: 1.2.3.4
        ports: {"-bad": 1}
      - address: unix:///tmp/a.sock
        ports: {http: 80}
      - address: unix://relative
      - labels: {app: a}
    `,
    errors: [
      { path: 'spec.endpoints[0].ports.-bad', message: 'endpoint port name "-bad" is not valid' },
      { path: 'spec.endpoints[1].ports', message: 'a unix domain socket endpoint cannot have ports' },
      {
        path: 'spec.endpoints[2].address',
        message: 'expected "unix:///absolute/path" or "unix://@abstract"',
      },
      { path: 'spec.endpoints[3].address', message: 'address is required (unless network is set)' },
    ],
  },
  {
    name: 'endpoint ports must be service entry ports',
    spec: `
      hosts: [a.example.com]
      ports: [{number: 80, name: http}]
      resolution: DNS
      endpoints:
      - address: a.example.com
        ports: {http: 8080, grpc: 9090}
    `,
    errors: [
      {
        path: 'spec.endpoints[0].ports.grpc',
        message: 'endpoint port grpc is not defined by the service entry',
        line: 11,
      },
    ],
  },
  {
    name: 'enums and exportTo',
    spec: `
      hosts: [a.example.com]
      location: MESH_EXTERNEL
      resolution: dns
      exportTo: ["~", "."]
    `,
    errors: [
      { path: 'spec.location', message: '(did you mean "MESH_EXTERNAL"?)' },
      { path: 'spec.resolution', message: 'is not one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS' },
      { path: 'spec.exportTo', message: 'exportTo "~" exports to no namespace: list it alone' },
    ],
  },
  {
    name: 'workload selector on an external service warns',
    spec: `
      hosts: [a.internal]
      ports: [{number: 80, name: http}]
      resolution: STATIC
      workloadSelector: {labels: {app: a}}
    `,
    warnings: [{ path: 'spec.workloadSelector', message: 'MESH_INTERNAL services only' }],
  },
]);
