import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('DestinationRule', [
  {
    name: 'bookinfo reviews subsets',
    spec: `
      host: reviews
      subsets:
      - name: v1
        labels: {version: v1}
      - name: v2
        labels: {version: v2}
      - name: v3
        labels: {version: v3}
    `,
    warnings: 'none',
  },
  {
    name: 'traffic policies at the top and in subsets are enforced; what is not yet is named',
    spec: `
      host: reviews.default.svc.cluster.local
      trafficPolicy:
        loadBalancer: {simple: RANDOM}
        tls: {mode: ISTIO_MUTUAL}
      subsets:
      - name: v2
        labels: {version: v2}
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s}
            http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1, h2UpgradePolicy: UPGRADE}
          outlierDetection:
            consecutive5xxErrors: 7
            interval: 5m
            baseEjectionTime: 15m
            maxEjectionPercent: 50
    `,
    warnings: 'none',
  },
  {
    name: "credentialName is enforced (the control plane's credential store): no warning",
    spec: `
      host: api.example.com
      trafficPolicy:
        tls: {mode: SIMPLE, credentialName: api-ca}
    `,
    warnings: 'none',
  },
  {
    name: 'every traffic policy field validates',
    spec: `
      host: "*.example.com"
      exportTo: [".", istio-system]
      trafficPolicy:
        loadBalancer:
          consistentHash:
            httpCookie: {name: user, ttl: 0s, path: /, attributes: [{name: SameSite, value: Strict}]}
            maglev: {tableSize: 65537}
          localityLbSetting:
            distribute:
            - from: us-west/zone1/*
              to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
          warmup: {duration: 60s, minimumPercent: 10, aggression: 2}
        portLevelSettings:
        - port: {number: 443}
          tls: {mode: SIMPLE, sni: api.example.com, caCertificates: /etc/ca.pem}
        - port: {number: 80}
          loadBalancer: {simple: LEAST_REQUEST}
        tunnel: {protocol: CONNECT, targetHost: egress.example.com, targetPort: 8443}
        proxyProtocol: {version: V2}
        retryBudget: {percent: 20, minRetryConcurrency: 3}
    `,
    warnings: [
      {
        path: 'spec.trafficPolicy.loadBalancer.warmup',
        message: 'applies to ROUND_ROBIN and LEAST_REQUEST only',
      },
      { path: 'spec.trafficPolicy.tunnel', message: NE },
      { path: 'spec.trafficPolicy.proxyProtocol', message: NE },
      { path: 'spec.trafficPolicy.loadBalancer.consistentHash', message: 'together with consistentHash' },
    ],
  },
  {
    name: 'host is required; subsets need unique names',
    spec: `
      subsets:
      - name: v1
      - name: v1
      - labels: {version: v2}
    `,
    errors: [
      { path: 'spec.host', message: 'required field is missing', line: 5 },
      { path: 'spec.subsets[2].name', message: 'required field is missing', line: 9 },
    ],
  },
  {
    name: 'duplicate subset names',
    spec: `
      host: reviews
      subsets:
      - name: v1
      - name: v1
    `,
    errors: [{ path: 'spec.subsets[1].name', message: 'duplicate subset name "v1"', line: 9 }],
  },
  {
    name: 'subset names and labels',
    spec: `
      host: reviews
      subsets:
      - name: V1
        labels: {"*": v1, version: "*"}
    `,
    errors: [
      {
        path: 'spec.subsets[0].name',
        message: 'subset name "V1" is not valid: expected a DNS-1123 label',
        line: 8,
      },
      { path: 'spec.subsets[0].labels.*', message: 'must not contain the wildcard "*"' },
      {
        path: 'spec.subsets[0].labels.version',
        message: 'label value "*" must not contain the wildcard "*"',
      },
    ],
  },
  {
    name: 'load balancer oneofs and enums',
    spec: `
      host: reviews
      trafficPolicy:
        loadBalancer:
          simple: ROUND_ROBBIN
          consistentHash: {useSourceIp: true}
    `,
    errors: [
      { path: 'spec.trafficPolicy.loadBalancer.simple', message: '(did you mean "ROUND_ROBIN"?)', line: 9 },
      { path: 'spec.trafficPolicy.loadBalancer', message: 'only one of simple, consistentHash may be set' },
    ],
  },
  {
    name: 'consistent hash rules',
    spec: `
      host: reviews
      trafficPolicy:
        loadBalancer:
          consistentHash:
            httpCookie: {path: /}
            httpHeaderName: x-user
            maglev: {tableSize: 1000}
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name',
        message: 'required field is missing',
      },
      {
        path: 'spec.trafficPolicy.loadBalancer.consistentHash',
        message: 'only one of httpHeaderName, httpCookie',
      },
      {
        path: 'spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize',
        message: 'must be a prime number',
      },
    ],
  },
  {
    name: 'LEAST_CONN and consistent hash without a key warn',
    spec: `
      host: reviews
      trafficPolicy:
        loadBalancer: {simple: LEAST_CONN}
        portLevelSettings:
        - port: {number: 9080}
          loadBalancer:
            consistentHash: {ringHash: {minimumRingSize: 2048}}
    `,
    warnings: [
      {
        path: 'spec.trafficPolicy.loadBalancer.simple',
        message: 'LEAST_CONN is deprecated: use LEAST_REQUEST',
      },
      {
        path: 'spec.trafficPolicy.portLevelSettings[0].loadBalancer.consistentHash',
        message: 'no hash key is set',
      },
    ],
  },
  {
    name: 'locality load balancing',
    spec: `
      host: reviews
      trafficPolicy:
        outlierDetection: {consecutive5xxErrors: 3}
        loadBalancer:
          localityLbSetting:
            distribute:
            - from: us-west/*
              to: {"us-west/*": 60, "us-east/*": 30}
            - from: us-west/*
              to: {"us-*/a": 100}
      subsets:
      - name: v1
        trafficPolicy:
          loadBalancer:
            localityLbSetting:
              failover:
              - {from: us-east, to: us-east}
              - {from: us-east/zone1, to: eu-west}
              failoverPriority: [topology.kubernetes.io/region]
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to',
        message: 'total weight 90 != 100',
      },
      { path: 'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].from', message: 'overlaps' },
      {
        path: 'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].to.us-*/a',
        message: 'is not valid: expected "region[/zone[/subzone]]"',
      },
      {
        path: 'spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting',
        message: 'only one of distribute, failover, failoverPriority may be set',
      },
      {
        path: 'spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.failover[0]',
        message: 'must specify different regions',
      },
      {
        path: 'spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.failover[1].from',
        message: 'only specifies regions',
      },
    ],
  },
  {
    name: 'connection pool and outlier detection',
    spec: `
      host: reviews
      trafficPolicy:
        connectionPool: {}
        outlierDetection:
          consecutiveLocalOriginFailures: 5
          maxEjectionPercent: 150
          interval: 10
      subsets:
      - name: v1
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: -1, maxConnectionDuration: 0s}
            http: {h2UpgradePolicy: ALWAYS}
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.connectionPool',
        message: 'connection pool must have at least one field',
        line: 8,
      },
      {
        path: 'spec.trafficPolicy.outlierDetection.maxEjectionPercent',
        message: '150 is above the maximum 100',
      },
      { path: 'spec.trafficPolicy.outlierDetection.interval', message: 'expected a duration' },
      {
        path: 'spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections',
        message: 'max connections must be non-negative',
      },
      {
        path: 'spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnectionDuration',
        message: 'at least 1ms',
      },
      {
        path: 'spec.subsets[0].trafficPolicy.connectionPool.http.h2UpgradePolicy',
        message: 'is not one of DEFAULT, DO_NOT_UPGRADE, UPGRADE',
      },
    ],
  },
  {
    name: 'local origin failures need split errors',
    spec: `
      host: reviews
      trafficPolicy:
        outlierDetection: {consecutiveLocalOriginFailures: 5, consecutiveErrors: 3}
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures',
        message: 'splitExternalLocalOriginErrors is not true',
      },
    ],
    warnings: [{ path: 'spec.trafficPolicy.outlierDetection.consecutiveErrors', message: 'deprecated' }],
  },
  {
    name: 'client TLS modes',
    spec: `
      host: reviews
      trafficPolicy:
        tls: {mode: MUTUAL}
        portLevelSettings:
        - port: {number: 9080}
          tls: {mode: ISTIO_MUTUAL, clientCertificate: /c.pem}
        - port: {number: 9081}
          tls: {mode: STRICT}
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.tls.clientCertificate',
        message: 'client certificate required for mutual tls',
      },
      { path: 'spec.trafficPolicy.tls.privateKey', message: 'private key required for mutual tls' },
      {
        path: 'spec.trafficPolicy.portLevelSettings[0].tls',
        message: "ISTIO_MUTUAL uses the mesh's own certificates: remove clientCertificate",
      },
      {
        path: 'spec.trafficPolicy.portLevelSettings[1].tls.mode',
        message: 'is not one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL',
      },
    ],
  },
  {
    name: 'SIMPLE TLS without a CA warns',
    spec: `
      host: api.example.com
      trafficPolicy:
        tls: {mode: SIMPLE}
    `,
    warnings: [{ path: 'spec.trafficPolicy.tls', message: 'does not verify the server certificate' }],
  },
  {
    name: 'port-level settings need distinct ports',
    spec: `
      host: reviews
      trafficPolicy:
        portLevelSettings:
        - loadBalancer: {simple: RANDOM}
        - port: {number: 80}
          loadBalancer: {simple: RANDOM}
        - port: {number: 80}
          loadBalancer: {simple: ROUND_ROBIN}
        - port: {number: 80}
          tunnel: {targetHost: x, targetPort: 1}
    `,
    errors: [
      {
        path: 'spec.trafficPolicy.portLevelSettings[0].port',
        message: 'port-level settings need a port number',
      },
      {
        path: 'spec.trafficPolicy.portLevelSettings[2].port.number',
        message: 'port 80 already has settings at index 1',
      },
      { path: 'spec.trafficPolicy.portLevelSettings[3].tunnel', message: 'unknown field "tunnel"' },
    ],
  },
  {
    name: 'tunnel and proxy protocol',
    spec: `
      host: reviews
      trafficPolicy:
        tunnel: {protocol: GET, targetPort: 70000}
        proxyProtocol: {version: V3}
    `,
    errors: [
      { path: 'spec.trafficPolicy.tunnel.protocol', message: 'expected CONNECT or POST' },
      { path: 'spec.trafficPolicy.tunnel.targetHost', message: 'required field is missing' },
      {
        path: 'spec.trafficPolicy.tunnel.targetPort',
        message: 'port number 70000 must be in the range 1..65535',
      },
      { path: 'spec.trafficPolicy.proxyProtocol.version', message: 'is not one of V1, V2' },
    ],
  },
  {
    name: 'exportTo and workload selector',
    spec: `
      host: reviews
      exportTo: ["*", "Bad"]
      workloadSelector: {matchLabels: {app: productpage}}
    `,
    errors: [
      {
        path: 'spec.exportTo[1]',
        message: 'exportTo "Bad" is not valid: expected ".", "*", "~" or a namespace name',
        line: 7,
      },
    ],
  },
  {
    name: 'a destination rule with a workload selector stays in its namespace',
    spec: `
      host: reviews
      exportTo: ["*"]
      workloadSelector: {matchLabels: {app: productpage}}
    `,
    errors: [{ path: 'spec.exportTo', message: 'can only be exported to its own namespace' }],
  },
  {
    name: 'exportTo "*" stands alone',
    spec: `
      host: reviews
      exportTo: ["*", "."]
    `,
    errors: [{ path: 'spec.exportTo', message: 'list it alone' }],
  },
]);
