import { table } from '../../../test/support/validation-table.ts';

table('Workload', [
  {
    name: 'a sidecar workload (reviews v2)',
    spec: `
      command: node
      args: [reviews/main.ts]
      workingDir: .
      env: {ENABLE_RATINGS: "true", STAR_COLOR: black}
      labels: {app: reviews, version: v2}
      serviceAccount: bookinfo-reviews
      replicas: 2
      ports:
      - {name: http, port: 9080, protocol: HTTP}
      readinessProbe: {httpGet: {path: /health}, periodSeconds: 1}
    `,
    warnings: 'none',
  },
  {
    name: 'a gateway workload',
    spec: `
      role: gateway
      labels: {istio: ingressgateway}
      ports:
      - {name: http2, port: 80, hostPort: 8080}
      - {name: https, port: 443, hostPort: 0}
    `,
    warnings: 'none',
  },
  {
    name: 'GRPC and HTTP2 app ports are served (h2c to the app); TCP is accepted but not yet served',
    spec: `
      command: node
      ports:
      - {name: grpc, port: 9090, protocol: GRPC}
      - {name: h2, port: 9091, protocol: HTTP2}
      - {name: db, port: 9092, protocol: TCP}
    `,
    warnings: [{ path: 'spec.ports[2].protocol', message: 'found TCP' }],
  },
  {
    name: 'sidecars need a command and ports',
    spec: `
      labels: {app: reviews}
    `,
    errors: [
      { path: 'spec.command', message: 'command is required for role sidecar' },
      { path: 'spec.ports', message: 'a sidecar workload needs at least one port' },
    ],
  },
  {
    name: 'gateways take no command; sidecars no hostPort',
    spec: `
      role: gateway
      command: node
    `,
    errors: [{ path: 'spec.command', message: 'command is not allowed for role gateway', line: 7 }],
  },
  {
    name: 'hostPort is for gateways only',
    spec: `
      command: node
      ports:
      - {name: http, port: 9080, hostPort: 9080}
    `,
    errors: [
      { path: 'spec.ports[0].hostPort', message: 'hostPort is only allowed for role gateway', line: 8 },
    ],
  },
  {
    name: 'environment names and values',
    spec: `
      command: node
      env: {1FOO: x, PORT: 9080, OK_NAME: "fine"}
      ports: [{port: 9080}]
    `,
    errors: [
      { path: 'spec.env.1FOO', message: 'environment variable name "1FOO" is not valid', line: 7 },
      { path: 'spec.env.PORT', message: 'quote environment values, e.g. "9080"', line: 7 },
    ],
  },
  {
    name: 'ranges, enums and names',
    spec: `
      role: proxy
      command: node
      replicas: 101
      serviceAccount: Bookinfo_Reviews
      ports:
      - {name: http, port: 9080, protocol: HTTPS}
      - {name: http, port: 9080}
    `,
    errors: [
      { path: 'spec.role', message: 'is not one of sidecar, gateway', line: 6 },
      { path: 'spec.replicas', message: '101 is above the maximum 100' },
      { path: 'spec.serviceAccount', message: 'service account "Bookinfo_Reviews" is not valid' },
      { path: 'spec.ports[0].protocol', message: 'is not one of HTTP, HTTP2, GRPC, TCP' },
      { path: 'spec.ports[1].name', message: 'duplicate port name "http"' },
      { path: 'spec.ports[1].port', message: 'duplicate port 9080' },
    ],
  },
  {
    name: 'readiness probes',
    spec: `
      command: node
      ports: [{name: http, port: 9080}]
      readinessProbe: {httpGet: {path: health, port: admin}, periodSeconds: 0}
    `,
    errors: [
      {
        path: 'spec.readinessProbe.httpGet.path',
        message: 'probe path "health" must start with "/"',
        line: 8,
      },
      { path: 'spec.readinessProbe.periodSeconds', message: '0 is below the minimum 1' },
    ],
  },
  {
    name: 'a probe port names a workload port',
    spec: `
      command: node
      ports: [{name: http, port: 9080}]
      readinessProbe: {httpGet: {path: /health, port: admin}}
    `,
    errors: [
      {
        path: 'spec.readinessProbe.httpGet.port',
        message: 'probe port "admin" is not the name of one of the workload\'s ports',
      },
    ],
  },
  {
    name: 'unknown field with did-you-mean',
    spec: `
      comand: node
      ports: [{port: 9080}]
    `,
    errors: [{ path: 'spec.comand', message: 'unknown field "comand" (did you mean "command"?)', line: 6 }],
  },
]);
