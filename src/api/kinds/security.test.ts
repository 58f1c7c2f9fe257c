import { table } from '../../../test/support/validation-table.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('PeerAuthentication', [
  { name: 'mesh-wide STRICT needs no warning', spec: 'mtls: {mode: STRICT}', warnings: 'none' },
  { name: 'UNSET needs no warning', spec: 'mtls: {mode: UNSET}', warnings: 'none' },
  {
    name: 'a selector without mtls inherits (no warning)',
    spec: 'selector: {matchLabels: {app: reviews}}',
    warnings: 'none',
  },
  { name: 'PERMISSIVE is enforced (no warning)', spec: 'mtls: {mode: PERMISSIVE}', warnings: 'none' },
  {
    name: 'port-level DISABLE is enforced as PERMISSIVE, with a warning',
    spec: `
      selector: {matchLabels: {app: reviews}}
      mtls: {mode: STRICT}
      portLevelMtls:
        9080: {mode: DISABLE}
    `,
    warnings: [{ path: 'spec', message: `${NE}: DISABLE is enforced as PERMISSIVE` }],
  },
  {
    name: 'portLevelMtls requires a selector',
    spec: `
      mtls: {mode: STRICT}
      portLevelMtls:
        9080: {mode: STRICT}
    `,
    errors: [{ path: 'spec.portLevelMtls', message: 'portLevelMtls requires selector', line: 7 }],
  },
  {
    name: 'an empty portLevelMtls still requires a selector, as Istio refuses it',
    spec: `
      mtls: {mode: STRICT}
      portLevelMtls: {}
    `,
    errors: [{ path: 'spec.portLevelMtls', message: 'portLevelMtls requires selector', line: 7 }],
  },
  {
    name: 'port keys and modes',
    spec: `
      selector: {matchLabels: {app: reviews}}
      mtls: {mode: STRICTLY}
      portLevelMtls:
        0: {mode: STRICT}
        http: {mode: STRICT}
    `,
    errors: [
      { path: 'spec.mtls.mode', message: '(did you mean "STRICT"?)', line: 7 },
      {
        path: 'spec.portLevelMtls.0',
        message: 'portLevelMtls key "0" is not a port number in the range 1..65535',
      },
      { path: 'spec.portLevelMtls.http', message: 'is not a port number' },
    ],
  },
  {
    name: 'selectors forbid wildcards',
    spec: 'selector: {matchLabels: {app: "*"}}',
    errors: [
      { path: 'spec.selector.matchLabels.app', message: 'must not contain the wildcard "*"', line: 6 },
    ],
  },
]);

table('RequestAuthentication', [
  {
    name: 'every JWT rule field is accepted and enforced (no warning)',
    spec: `
      selector: {matchLabels: {app: productpage}}
      jwtRules:
      - issuer: testing@secure.istio.io
        jwksUri: https://raw.githubusercontent.com/istio/istio/release-1.30/security/tools/jwt/samples/jwks.json
        audiences: [bookinfo]
        fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
        fromParams: [token]
        fromCookies: [session]
        outputPayloadToHeader: x-jwt-payload
        forwardOriginalToken: true
        outputClaimToHeaders: [{header: x-sub, claim: sub}]
        timeout: 10s
      - issuer: inline
        jwks: '{"keys": []}'
    `,
    warnings: 'none',
  },
  {
    name: 'issuer is required; jwksUri is http(s) only',
    spec: `
      jwtRules:
      - jwksUri: file:///etc/jwks.json
      - issuer: a
        jwksUri: not a url
    `,
    errors: [
      { path: 'spec.jwtRules[0].issuer', message: 'required field is missing', line: 7 },
      {
        path: 'spec.jwtRules[0].jwksUri',
        message: 'jwksUri scheme file is not allowed: only http and https',
        line: 7,
      },
      { path: 'spec.jwtRules[1].jwksUri', message: 'is not a URL' },
    ],
  },
  {
    name: 'jwks and jwksUri exclude each other; jwks must be a key set',
    spec: `
      jwtRules:
      - issuer: a
        jwksUri: https://a.example.com/jwks
        jwks: '{"keys": []}'
      - issuer: b
        jwks: 'not json'
    `,
    errors: [
      { path: 'spec.jwtRules[0]', message: 'only one of jwksUri, jwks may be set' },
      { path: 'spec.jwtRules[1].jwks', message: 'jwks is not valid JSON' },
    ],
  },
  {
    name: 'token locations and claim headers',
    spec: `
      jwtRules:
      - issuer: a
        fromHeaders: [{prefix: "Bearer "}]
        fromParams: [""]
        outputClaimToHeaders: [{header: "bad header", claim: sub}, {header: x-a}]
        timeout: 0s
    `,
    errors: [
      { path: 'spec.jwtRules[0].fromHeaders[0].name', message: 'required field is missing' },
      { path: 'spec.jwtRules[0].fromParams[0]', message: 'must not be empty' },
      {
        path: 'spec.jwtRules[0].outputClaimToHeaders[0].header',
        message: 'header name bad header is not a valid header name',
      },
      { path: 'spec.jwtRules[0].outputClaimToHeaders[1].claim', message: 'required field is missing' },
      { path: 'spec.jwtRules[0].timeout', message: 'duration must be at least 1ms' },
    ],
  },
  {
    name: 'at most one of selector, targetRef, targetRefs',
    spec: `
      selector: {matchLabels: {app: a}}
      targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]
    `,
    errors: [
      {
        path: 'spec',
        message: 'only one of selector, targetRef, targetRefs may be set, found selector and targetRefs',
      },
    ],
  },
  {
    name: 'target references stay in the namespace; targetRef is deprecated',
    spec: `
      targetRef: {kind: Gateway, name: ingress, namespace: other}
    `,
    errors: [
      { path: 'spec.targetRef.namespace', message: 'cross namespace referencing is not currently supported' },
    ],
    warnings: [{ path: 'spec.targetRef', message: 'deprecated: use targetRefs' }],
  },
  {
    name: 'each claim header is written by one entry',
    spec: `
      jwtRules:
      - issuer: a
        outputClaimToHeaders: [{header: x-sub, claim: sub}, {header: X-Sub, claim: email}]
    `,
    errors: [
      {
        path: 'spec.jwtRules[0].outputClaimToHeaders[1].header',
        message: 'header X-Sub is set by another outputClaimToHeaders entry',
      },
    ],
  },
  {
    name: 'Istio has no jwtRules[].presence: refused as its CRD refuses unknown fields',
    spec: `
      jwtRules:
      - issuer: a
        presence: REQUIRED
    `,
    errors: [{ path: 'spec.jwtRules[0].presence', message: 'unknown field "presence"' }],
  },
]);

table('AuthorizationPolicy', [
  {
    name: 'ALLOW with sources, operations and conditions',
    spec: `
      selector: {matchLabels: {app: reviews}}
      action: ALLOW
      rules:
      - from:
        - source:
            principals: [cluster.local/ns/default/sa/bookinfo-productpage]
            notNamespaces: [untrusted]
            ipBlocks: [10.0.0.0/8, 192.168.1.1]
        to:
        - operation:
            methods: [GET]
            paths: [/reviews/*, "/api/{*}/items/{**}"]
            ports: ["9080"]
            hosts: [reviews, "reviews:*"]
        when:
        - key: request.auth.claims[iss]
          values: [https://accounts.google.com]
        - key: request.headers[x-version]
          notValues: [v0]
        - key: destination.port
          values: ["9080"]
    `,
    warnings: 'none',
  },
  { name: 'spec {} denies everything and is valid', spec: '{}', warnings: 'none' },
  {
    name: "Istio's trust-domain-style wildcards are accepted in every string value",
    spec: `
      action: DENY
      rules:
      - from:
        - source:
            principals: ["*", "cluster.local/ns/default/*", "*/ns/foo/sa/bar"]
            notNamespaces: ["prod-*", "*-system"]
            trustDomains: ["*.example.com"]
        when:
        - key: source.trustDomain
          values: ["*", "prefix-*", "*-suffix"]
        - key: request.auth.claims[groups]
          values: ["admin-*"]
    `,
    warnings: 'none',
  },
  {
    name: 'CUSTOM with a provider is accepted as it is: the external authorizer decides',
    spec: `
      action: CUSTOM
      provider: {name: ext-authz}
      rules: [{to: [{operation: {paths: [/admin]}}]}]
    `,
  },
  {
    name: 'Envoy filter metadata cannot be evaluated and is refused',
    spec: `
      action: DENY
      rules:
      - when:
        - key: experimental.envoy.filters.network.mysql_proxy[db.table]
          values: ["[update]"]
    `,
    errors: [
      {
        path: 'spec.rules[0].when[0].key',
        message: 'reads Envoy filter metadata, which Trellis proxies do not have',
        line: 9,
      },
    ],
  },
  {
    name: 'targetRefs: Gateway and Service are enforced; other kinds select nothing (warned)',
    spec: `
      targetRefs:
      - {kind: Gateway, group: gateway.networking.k8s.io, name: ingress}
      - {kind: Gateway, name: bookinfo-gateway}
      - {kind: Service, name: reviews}
      - {kind: ServiceEntry, group: networking.istio.io, name: external}
    `,
    warnings: [
      {
        path: 'spec.targetRefs[3].kind',
        message:
          'target kind networking.istio.io/ServiceEntry; Trellis attaches policies to Gateway and Service only',
      },
    ],
  },
  {
    name: 'a DENY policy without rules',
    spec: 'action: DENY',
    errors: [
      {
        path: 'spec.rules',
        message: 'a DENY policy without rules is meaningless as it will never be triggered',
      },
    ],
  },
  {
    name: 'provider only with CUSTOM',
    spec: `
      action: ALLOW
      provider: {name: ext-authz}
      rules: [{}]
    `,
    errors: [{ path: 'spec.provider', message: 'provider is only allowed with the CUSTOM action', line: 7 }],
  },
  {
    name: 'CUSTOM needs a provider and no identity fields',
    spec: `
      action: CUSTOM
      rules:
      - from:
        - source: {principals: ["*"]}
        when:
        - key: request.auth.principal
          values: ["*"]
    `,
    errors: [
      { path: 'spec.provider', message: 'the CUSTOM action requires a provider' },
      {
        path: 'spec.rules[0].from[0].source.principals',
        message: 'principals is not supported with the CUSTOM action',
      },
      {
        path: 'spec.rules[0].when[0].key',
        message: 'when key request.auth.principal is not supported with the CUSTOM action',
      },
    ],
  },
  {
    name: 'condition keys',
    spec: `
      rules:
      - when:
        - key: request.header[x-user]
          values: [a]
        - key: destination.labels[app]
          values: [a]
        - key: source.ip
          values: [not-an-ip]
        - key: destination.port
          values: [http]
        - key: source.namespace
    `,
    errors: [
      { path: 'spec.rules[0].when[0].key', message: 'unknown attribute: request.header[x-user]', line: 8 },
      {
        path: 'spec.rules[0].when[1].key',
        message: 'destination.labels[app] is not supported: replaced by the workload selector',
      },
      { path: 'spec.rules[0].when[2].values[0]', message: '"not-an-ip" is not an IP address or CIDR block' },
      { path: 'spec.rules[0].when[3].values[0]', message: 'invalid port "http"' },
      {
        path: 'spec.rules[0].when[4]',
        message: 'at least one of values or notValues must be set for key source.namespace',
      },
    ],
  },
  {
    name: 'sources and operations must not be empty',
    spec: `
      rules:
      - from:
        - source: {}
        to:
        - {}
    `,
    errors: [
      { path: 'spec.rules[0].from[0].source', message: '`from.source` must not be empty', line: 8 },
      { path: 'spec.rules[0].to[0].operation', message: 'required field is missing' },
    ],
  },
  {
    name: 'ports are strings; ip blocks and path templates are checked',
    spec: `
      rules:
      - to:
        - operation:
            ports: [8080]
            paths: ["/foo/{*}.txt", "/{**}/foo/{*}", "/*/baz/{*}"]
        from:
        - source:
            remoteIpBlocks: [300.1.1.1]
            principals: [""]
    `,
    errors: [
      {
        path: 'spec.rules[0].to[0].operation.ports[0]',
        message: 'write ports as strings, e.g. "8080"',
        line: 9,
      },
      {
        path: 'spec.rules[0].to[0].operation.paths[0]',
        message: '{*} and {**} must each be a whole path segment',
      },
      { path: 'spec.rules[0].to[0].operation.paths[1]', message: '{**} must be the last template segment' },
      { path: 'spec.rules[0].to[0].operation.paths[2]', message: 'cannot be combined with {*} or {**}' },
      {
        path: 'spec.rules[0].from[0].source.remoteIpBlocks[0]',
        message: 'is not an IP address or CIDR block',
      },
      { path: 'spec.rules[0].from[0].source.principals[0]', message: 'empty value is not allowed' },
    ],
  },
  {
    name: 'service accounts',
    spec: `
      rules:
      - from:
        - source:
            serviceAccounts: [default/bookinfo-*]
      - from:
        - source:
            serviceAccounts: [default/bookinfo-reviews]
            principals: [cluster.local/ns/default/sa/x]
    `,
    errors: [
      {
        path: 'spec.rules[0].from[0].source.serviceAccounts[0]',
        message: 'serviceAccounts do not support wildcards',
      },
      {
        path: 'spec.rules[1].from[0].source',
        message: 'cannot set serviceAccounts with namespaces or principals',
      },
    ],
  },
  {
    name: 'action enum and selector exclusivity',
    spec: `
      action: REJECT
      selector: {matchLabels: {app: a}}
      targetRef: {kind: Service, name: a}
    `,
    errors: [
      { path: 'spec.action', message: 'string "REJECT" is not one of ALLOW, DENY, AUDIT, CUSTOM', line: 6 },
      { path: 'spec', message: 'only one of selector, targetRef, targetRefs may be set' },
    ],
  },
  {
    name: 'lower-case methods and inner wildcards warn',
    spec: `
      rules:
      - to:
        - operation:
            methods: [get]
            hosts: ["a*b.example.com"]
    `,
    warnings: [
      { path: 'spec.rules[0].to[0].operation.methods[0]', message: 'never matches, write GET' },
      { path: 'spec.rules[0].to[0].operation.hosts[0]', message: 'it is matched literally' },
    ],
  },
]);
