import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('Service', [
  {
    name: 'bookinfo reviews service',
    spec: `
      selector: {app: reviews}
      ports:
      - {name: http, port: 9080}
    `,
    warnings: 'none',
  },
  {
    name: 'several named ports with targetPort numbers and names',
    spec: `
      selector: {app: gateway}
      type: ClusterIP
      ports:
      - {name: http2, port: 80, targetPort: 8080, protocol: TCP, appProtocol: http}
      - {name: https, port: 443, targetPort: https}
      - {name: status, port: 15021, targetPort: "15021"}
    `,
    warnings: 'none',
  },
  {
    name: 'a cluster IP is taken (the VIP under capture); app protocols other than HTTP, HTTP/2 and gRPC are not yet enforced',
    spec: `
      selector: {app: grpc}
      clusterIP: 10.96.0.10
      ports:
      - {name: grpc, port: 9090, appProtocol: grpc}
      - {name: h2, port: 9091, appProtocol: kubernetes.io/h2c}
      - {name: web, port: 9092, appProtocol: grpc-web}
    `,
    warnings: [{ path: 'spec.ports[2].appProtocol', message: 'found grpc-web' }],
  },
  {
    name: 'port names are required and unique when there are several ports',
    spec: `
      ports:
      - {port: 80}
      - {name: a, port: 81}
      - {name: a, port: 80}
    `,
    errors: [
      {
        path: 'spec.ports[0].name',
        message: 'port name is required when a service has more than one port',
        line: 7,
      },
      { path: 'spec.ports[2].name', message: 'duplicate port name "a"', line: 9 },
      { path: 'spec.ports[2].port', message: 'duplicate port 80/TCP' },
    ],
  },
  {
    name: 'ports: range, targetPort, protocol',
    spec: `
      ports:
      - {name: a, port: 0, targetPort: HTTP_PORT, protocol: HTTP}
      - {name: b, targetPort: 70000}
    `,
    errors: [
      { path: 'spec.ports[0].port', message: 'port number 0 must be in the range 1..65535' },
      { path: 'spec.ports[0].targetPort', message: 'targetPort "HTTP_PORT" is not valid' },
      { path: 'spec.ports[0].protocol', message: 'is not one of TCP, UDP, SCTP' },
      { path: 'spec.ports[1].port', message: 'required field is missing', line: 8 },
      { path: 'spec.ports[1].targetPort', message: 'port number 70000 must be in the range 1..65535' },
    ],
  },
  {
    name: 'a service needs a port',
    spec: 'selector: {app: a}',
    errors: [{ path: 'spec.ports', message: 'a service needs at least one port' }],
  },
  {
    name: 'non-ClusterIP types, session affinity and UDP warn',
    spec: `
      type: NodePort
      sessionAffinity: ClientIP
      externalTrafficPolicy: Local
      ports:
      - {name: dns, port: 53, protocol: UDP, nodePort: 30053}
    `,
    warnings: [
      {
        path: 'spec.type',
        message: `${NE}: Trellis serves ClusterIP services only, found NodePort`,
        line: 6,
      },
      { path: 'spec.sessionAffinity', message: NE, line: 7 },
      { path: 'spec.externalTrafficPolicy', message: NE },
      { path: 'spec.ports[0].protocol', message: NE },
      { path: 'spec.ports[0].nodePort', message: NE },
    ],
  },
  {
    name: 'ExternalName needs externalName, and only it',
    spec: `
      type: ExternalName
    `,
    errors: [{ path: 'spec.externalName', message: 'externalName is required for type ExternalName' }],
  },
  {
    name: 'externalName outside ExternalName',
    spec: `
      externalName: db.example.com
      ports: [{port: 5432}]
    `,
    errors: [{ path: 'spec.externalName', message: 'externalName is only valid for type ExternalName' }],
  },
  {
    name: 'type, clusterIP and selector syntax',
    spec: `
      type: Headless
      clusterIP: 10.0.0
      selector: {app: "a/b"}
      ports: [{port: 80}]
    `,
    errors: [
      { path: 'spec.type', message: 'is not one of ClusterIP, NodePort, LoadBalancer, ExternalName' },
      { path: 'spec.clusterIP', message: 'expected an IP address, "None" or ""' },
      { path: 'spec.selector.app', message: 'label value "a/b" is not valid' },
    ],
  },
]);
