import assert from 'node:assert/strict';
import { test } from 'node:test';
import { table } from '../../../test/support/validation-table.ts';
import { formatIssue } from '../../lib/errors.ts';
import { validateText } from '../validate.ts';

const NE = 'accepted but not yet enforced by Trellis';

table('VirtualService', [
  // ---- valid: Bookinfo's samples/bookinfo/networking scenarios ----
  {
    name: 'bookinfo gateway routes',
    spec: `
      hosts: ["*"]
      gateways: [bookinfo-gateway]
      http:
      - match:
        - uri: {exact: /productpage}
        - uri: {prefix: /static}
        - uri: {exact: /login}
        - uri: {exact: /logout}
        - uri: {prefix: /api/v1/products}
        route:
        - destination: {host: productpage, port: {number: 9080}}
    `,
    warnings: 'none',
  },
  {
    name: 'reviews 80/20 weights',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
          weight: 80
        - destination: {host: reviews, subset: v2}
          weight: 20
    `,
    warnings: 'none',
  },
  {
    name: 'jason goes to v2, everyone else to v1',
    spec: `
      hosts: [reviews]
      http:
      - name: jason
        match:
        - name: end-user
          headers:
            end-user: {exact: jason}
        route:
        - destination: {host: reviews, subset: v2}
      - route:
        - destination: {host: reviews, subset: v1}
    `,
    warnings: 'none',
  },
  {
    name: 'timeout, header presence and a direct response',
    spec: `
      hosts: [ratings.default.svc.cluster.local]
      gateways: [mesh, istio-system/ingress]
      http:
      - match:
        - headers: {x-canary: {}}
          uri: {regex: "^/ratings/[0-9]+$"}
        timeout: 1.5s
        route:
        - destination: {host: ratings}
      - directResponse:
          status: 503
          body: {string: "unavailable"}
    `,
    warnings: 'none',
  },
  {
    name: 'RE2 syntax that JavaScript lacks is accepted',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {regex: "(?i)/reviews/(?P<id>\\\\d+)\\\\z"}
        route:
        - destination: {host: reviews}
    `,
    warnings: 'none',
  },
  {
    name: 'delegate virtual service (no hosts)',
    spec: `
      http:
      - match:
        - uri: {prefix: /reviews}
        route:
        - destination: {host: reviews}
    `,
    warnings: 'none',
  },
  {
    name: 'fault injection from the Bookinfo tasks is enforced: no warning',
    spec: `
      hosts: [ratings]
      http:
      - match:
        - headers:
            end-user: {exact: jason}
        fault:
          delay:
            percentage: {value: 100.0}
            fixedDelay: 7s
        route:
        - destination: {host: ratings, subset: v1}
      - fault:
          abort: {httpStatus: 555, percentage: {value: 100}}
        route:
        - destination: {host: ratings, subset: v1}
    `,
    warnings: 'none',
  },

  // ---- not-yet-enforced fields are named, never silently ignored ----
  {
    name: 'retries are enforced: no warning',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure,503"}
    `,
    warnings: 'none',
  },
  {
    name: 'every not-enforced field is named; exportTo, route headers, CORS and mirrors are enforced',
    spec: `
      hosts: [reviews]
      exportTo: ["."]
      http:
      - match:
        - method: {exact: GET}
          queryParams: {debug: {exact: "1"}}
          sourceLabels: {app: productpage}
        route:
        - destination: {host: reviews}
          headers: {request: {set: {x-via: trellis}}}
        corsPolicy: {allowOrigins: [{exact: "https://example.com"}], allowMethods: [GET]}
        headers: {response: {remove: [server]}}
        mirror: {host: reviews-shadow}
        mirrorPercentage: {value: 10}
      tcp:
      - route:
        - destination: {host: mysql, port: {number: 3306}}
    `,
    warnings: 'none',
  },
  {
    name: 'every match field and redirect are enforced: no warning',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - method: {exact: GET}
          scheme: {exact: http}
          authority: {prefix: reviews}
          port: 9080
          queryParams: {debug: {exact: "1"}}
          withoutHeaders: {x-skip: {}}
          ignoreUriCase: true
          uri: {prefix: /Reviews}
          sourceLabels: {app: productpage}
          sourceNamespace: default
          gateways: [mesh]
        redirect: {uri: /v2/reviews, authority: reviews-v2, redirectCode: 302}
    `,
    warnings: 'none',
  },
  {
    name: 'JWT claim matches are enforced (no warning)',
    spec: `
      hosts: ["*"]
      gateways: [ingress]
      http:
      - match:
        - headers:
            "@request.auth.claims.groups": {exact: admin}
        route:
        - destination: {host: admin}
    `,
    warnings: 'none',
  },
  {
    name: 'upper-case header names, ignoreUriCase on regex and unreachable rules warn',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - headers: {End-User: {exact: jason}}
          uri: {regex: "/a.*"}
          ignoreUriCase: true
        route:
        - destination: {host: reviews}
      - route:
        - destination: {host: reviews}
      - route:
        - destination: {host: reviews, subset: v1}
    `,
    warnings: [
      { path: 'spec.http[0].match[0].headers.End-User', message: 'lower case' },
      { path: 'spec.http[0].match[0].ignoreUriCase', message: 'not regex' },
      { path: 'spec.http[2]', message: 'http[1] has no match and catches every request', line: 16 },
    ],
  },

  // ---- route actions ----
  {
    name: 'route and redirect are exclusive',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        redirect: {uri: /v2}
    `,
    errors: [
      {
        path: 'spec.http[0].redirect',
        message: 'HTTP route cannot contain both route and redirect',
        line: 10,
      },
    ],
  },
  {
    name: 'route and direct response are exclusive',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        directResponse: {status: 200}
    `,
    errors: [{ path: 'spec.http[0].directResponse', message: 'both route and direct_response' }],
  },
  {
    name: 'fault and redirect, rewrite and redirect are exclusive',
    spec: `
      hosts: [reviews]
      http:
      - redirect: {authority: example.com}
        rewrite: {uri: /x}
        fault: {abort: {httpStatus: 500}}
    `,
    errors: [
      { path: 'spec.http[0].redirect', message: 'both fault and redirect' },
      { path: 'spec.http[0].redirect', message: 'both rewrite and redirect' },
    ],
  },
  {
    name: 'a route needs an action',
    spec: `
      hosts: [reviews]
      http:
      - name: nothing
        timeout: 1s
    `,
    errors: [
      { path: 'spec.http[0]', message: 'HTTP route, redirect or direct_response is required', line: 8 },
    ],
  },
  {
    name: 'mirror and mirrors are exclusive',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        mirror: {host: a}
        mirrors:
        - destination: {host: b}
    `,
    errors: [
      {
        path: 'spec.http[0].mirrors',
        message: 'HTTP route cannot contain both mirror and mirrors',
        line: 11,
      },
    ],
  },
  {
    name: 'redirect needs a target and a 3xx code',
    spec: `
      hosts: [reviews]
      http:
      - redirect: {redirectCode: 200}
      - redirect: {uri: /new, redirectCode: 404}
    `,
    errors: [
      {
        path: 'spec.http[0].redirect.redirectCode',
        message: '200 is not a valid redirect code, must be 3xx',
        line: 8,
      },
      {
        path: 'spec.http[1].redirect.redirectCode',
        message: '404 is not a valid redirect code, must be 3xx',
        line: 9,
      },
    ],
  },
  {
    name: 'redirect must specify something to change',
    spec: `
      hosts: [reviews]
      http:
      - redirect: {redirectCode: 302}
    `,
    errors: [
      { path: 'spec.http[0].redirect', message: 'redirect must specify URI, authority, scheme, or port' },
    ],
  },
  {
    name: 'redirect port and derivePort are a oneof; prefixRewrite needs prefix matches',
    spec: `
      hosts: [reviews]
      http:
      - redirect: {port: 8443, derivePort: FROM_REQUEST_PORT, scheme: https}
      - match:
        - uri: {exact: /old}
        redirect: {prefixRewrite: /new}
    `,
    errors: [
      { path: 'spec.http[0].redirect', message: 'only one of port, derivePort may be set' },
      { path: 'spec.http[1].redirect.prefixRewrite', message: 'requires every match to use a uri prefix' },
    ],
  },
  {
    name: 'direct response status and size',
    spec: `
      hosts: [reviews]
      http:
      - directResponse: {status: 700}
      - directResponse: {body: {string: x}}
    `,
    errors: [
      {
        path: 'spec.http[0].directResponse.status',
        message: 'direct response status 700 is not in range 200-599',
      },
      { path: 'spec.http[1].directResponse.status', message: 'required field is missing' },
    ],
  },

  // ---- weights ----
  {
    name: 'total destination weight = 0',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
          weight: 0
        - destination: {host: reviews, subset: v2}
    `,
    errors: [{ path: 'spec.http[0].route', message: 'total destination weight = 0', line: 8 }],
  },
  {
    name: 'negative weights',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
          weight: -10
        - destination: {host: reviews, subset: v2}
          weight: 110
    `,
    errors: [{ path: 'spec.http[0].route[0].weight', message: 'weight -10 < 0', line: 10 }],
  },
  {
    name: 'weights must be integers',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
          weight: 50.5
    `,
    errors: [{ path: 'spec.http[0].route[0].weight', message: 'expected an integer, found 50.5' }],
  },

  // ---- matches and regexes ----
  {
    name: 'StringMatch is a oneof',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {exact: /a, prefix: /b}
        route:
        - destination: {host: reviews}
    `,
    errors: [
      {
        path: 'spec.http[0].match[0].uri',
        message: 'only one of exact, prefix, regex may be set, found exact and prefix',
        line: 9,
      },
    ],
  },
  {
    name: 'empty prefix and empty regex',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {prefix: ""}
        - authority: {regex: ""}
        route:
        - destination: {host: reviews}
    `,
    errors: [
      { path: 'spec.http[0].match[0].uri.prefix', message: 'prefix must not be empty' },
      { path: 'spec.http[0].match[1].authority.regex', message: 'regex must not be empty' },
    ],
  },
  {
    name: 'a regex that does not compile',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri:
            regex: "/reviews/([0-9]+"
        route:
        - destination: {host: reviews}
    `,
    errors: [{ path: 'spec.http[0].match[0].uri.regex', message: 'regex does not compile', line: 10 }],
  },
  {
    name: 'lookahead is rejected (RE2)',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {regex: "/api/(?!internal).*"}
        route:
        - destination: {host: reviews}
    `,
    errors: [
      {
        path: 'spec.http[0].match[0].uri.regex',
        message: 'negative lookahead (?!...) is not supported',
        line: 9,
      },
    ],
  },
  {
    name: 'lookbehind and backreferences are rejected (RE2)',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - headers: {x-a: {regex: "(?<=a)b"}}
        - headers: {x-b: {regex: "(a)\\\\1"}}
        route:
        - destination: {host: reviews}
    `,
    errors: [
      { path: 'spec.http[0].match[0].headers.x-a.regex', message: 'lookbehind (?<=...) is not supported' },
      { path: 'spec.http[0].match[1].headers.x-b.regex', message: 'backreference \\1 is not supported' },
    ],
  },
  {
    name: 'regexes are limited to 1024 characters',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {regex: "${'a'.repeat(1025)}"}
        route:
        - destination: {host: reviews}
    `,
    errors: [{ path: 'spec.http[0].match[0].uri.regex', message: 'at most 1024 are accepted' }],
  },
  {
    name: 'invalid header names, ports and namespaces in matches',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - headers: {"bad header": {exact: x}}
          port: 70000
          sourceNamespace: Bad_NS
          gateways: [a/b/c]
        route:
        - destination: {host: reviews}
    `,
    errors: [
      {
        path: 'spec.http[0].match[0].headers.bad header',
        message: 'header name bad header is not a valid header name',
      },
      {
        path: 'spec.http[0].match[0].port',
        message: 'port number 70000 must be in the range 1..65535',
        line: 10,
      },
      { path: 'spec.http[0].match[0].sourceNamespace', message: 'sourceNamespace match Bad_NS is invalid' },
      { path: 'spec.http[0].match[0].gateways[0]', message: 'is not valid: expected "mesh"' },
    ],
  },
  {
    name: 'a header match needs a value (use {} for presence)',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - headers:
            end-user:
        route:
        - destination: {host: reviews}
    `,
    errors: [
      { path: 'spec.http[0].match[0].headers.end-user', message: 'expected an object, found null', line: 10 },
    ],
  },

  // ---- fields, types, hosts ----
  {
    name: 'unknown field with did-you-mean',
    spec: `
      hosts: [reviews]
      http:
      - rout:
        - destination: {host: reviews}
    `,
    errors: [{ path: 'spec.http[0].rout', message: 'unknown field "rout" (did you mean "route"?)', line: 8 }],
  },
  {
    name: 'wrong types',
    spec: `
      hosts: reviews
      http:
      - timeout: 5
        route:
        - destination: {host: reviews}
    `,
    errors: [
      { path: 'spec.hosts', message: 'expected a list, found string "reviews"', line: 6 },
      { path: 'spec.http[0].timeout', message: 'expected a duration such as "5s"', line: 8 },
    ],
  },
  {
    name: 'durations must be at least 1ms',
    spec: `
      hosts: [reviews]
      http:
      - timeout: 0s
        route:
        - destination: {host: reviews}
        retries: {attempts: 2, perTryTimeout: 500us}
    `,
    errors: [
      { path: 'spec.http[0].timeout', message: 'duration must be at least 1ms' },
      { path: 'spec.http[0].retries.perTryTimeout', message: 'duration must be at least 1ms' },
    ],
  },
  {
    name: 'destinations need a valid host and subset',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {subset: v1}
        - destination: {host: "bad host", subset: V_1, port: {number: 0}}
    `,
    errors: [
      { path: 'spec.http[0].route[0].destination.host', message: 'required field is missing', line: 9 },
      { path: 'spec.http[0].route[1].destination.host', message: 'is not valid: expected a DNS name' },
      { path: 'spec.http[0].route[1].destination.subset', message: 'subset "V_1" is not valid' },
      {
        path: 'spec.http[0].route[1].destination.port.number',
        message: 'port number 0 must be in the range 1..65535',
      },
    ],
  },
  {
    name: 'wildcard host on the mesh gateway',
    spec: `
      hosts: ["*"]
      http:
      - route:
        - destination: {host: reviews}
    `,
    errors: [
      {
        path: 'spec.hosts[0]',
        message: 'wildcard host * is not allowed for virtual services bound to the mesh gateway',
      },
    ],
  },
  {
    name: 'routes are required',
    spec: `
      hosts: [reviews]
    `,
    errors: [{ path: 'spec', message: 'http, tcp or tls must be provided in virtual service' }],
  },

  // ---- delegation ----
  {
    name: 'a delegate virtual service has no gateways, tcp or tls',
    spec: `
      gateways: [bookinfo-gateway]
      http:
      - route:
        - destination: {host: reviews}
      tcp:
      - route:
        - destination: {host: reviews}
    `,
    errors: [
      { path: 'spec.gateways', message: 'delegate virtual service must have no gateways specified', line: 6 },
      { path: 'spec.tcp', message: 'delegate virtual service must have no tcp route specified' },
    ],
  },
  {
    name: 'delegation is one level deep',
    spec: `
      http:
      - delegate: {name: reviews-v2}
    `,
    errors: [{ path: 'spec.http[0].delegate', message: 'only one level of delegation' }],
  },
  {
    name: 'a delegating route has no route of its own',
    spec: `
      hosts: [reviews]
      http:
      - delegate: {name: reviews, namespace: team-a}
        route:
        - destination: {host: reviews}
    `,
    errors: [{ path: 'spec.http[0].delegate', message: 'HTTP route cannot contain both route and delegate' }],
  },
  {
    name: 'root route delegating is enforced: no warning',
    spec: `
      hosts: [reviews]
      http:
      - match:
        - uri: {prefix: /reviews}
        delegate: {name: reviews, namespace: team-a}
    `,
    warnings: 'none',
  },

  // ---- retries, fault, rewrite, mirrors, cors ----
  {
    name: 'retryOn tokens',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        retries: {attempts: -1, retryOn: "5xxx,gateway-error,777"}
    `,
    errors: [
      { path: 'spec.http[0].retries.attempts', message: 'attempts -1 cannot be negative' },
      { path: 'spec.http[0].retries.retryOn', message: '"5xxx" is not a valid retryOn policy' },
      { path: 'spec.http[0].retries.retryOn', message: '(did you mean "5xx"?)' },
      { path: 'spec.http[0].retries.retryOn', message: 'status code 777' },
    ],
  },
  {
    name: 'retry settings with zero attempts warn',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        retries: {attempts: 0, retryOn: 5xx}
    `,
    warnings: [{ path: 'spec.http[0].retries', message: 'retries are disabled and retryOn has no effect' }],
  },
  {
    name: 'fault injection rules',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        fault: {}
      - route:
        - destination: {host: reviews}
        fault:
          abort: {http2Error: x, percentage: {value: 150}}
      - route:
        - destination: {host: reviews}
        fault:
          delay: {percentage: {value: 50}}
          abort: {grpcStatus: UNAVAILBLE}
    `,
    errors: [
      {
        path: 'spec.http[0].fault',
        message: 'HTTP fault injection must have an abort and/or a delay',
        line: 10,
      },
      {
        path: 'spec.http[1].fault.abort.http2Error',
        message: 'HTTP/2 abort fault injection not supported yet',
      },
      {
        path: 'spec.http[1].fault.abort.percentage.value',
        message: 'percentage 150 is neither 0.0, nor in range [0.0001, 100.0]',
      },
      { path: 'spec.http[2].fault.delay', message: 'one of fixedDelay, exponentialDelay is required' },
      { path: 'spec.http[2].fault.abort.grpcStatus', message: '(did you mean "UNAVAILABLE"?)' },
    ],
  },
  {
    name: 'rewrite rules',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        rewrite:
          uri: /v2
          uriRegexRewrite: {match: "^/v1/(.*)", rewrite: "/v2/\\\\1"}
      - route:
        - destination: {host: reviews}
        rewrite: {}
      - route:
        - destination: {host: reviews}
        rewrite:
          uriRegexRewrite: {match: "(?=x)"}
    `,
    errors: [
      { path: 'spec.http[0].rewrite', message: 'only one of uri, uriRegexRewrite may be set' },
      {
        path: 'spec.http[1].rewrite',
        message: 'rewrite must specify at least one of uri, authority or uriRegexRewrite',
      },
      { path: 'spec.http[2].rewrite.uriRegexRewrite.match', message: 'lookahead' },
      { path: 'spec.http[2].rewrite.uriRegexRewrite.rewrite', message: 'required field is missing' },
    ],
  },
  {
    name: 'mirror percentages',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        mirror: {host: shadow}
        mirrorPercentage: {value: 101}
        mirrorPercent: 200
    `,
    errors: [
      {
        path: 'spec.http[0].mirrorPercentage.value',
        message: 'mirror_percentage must have a max value of 100',
      },
      { path: 'spec.http[0].mirrorPercent', message: 'mirror_percent must have a max value of 100' },
    ],
  },
  {
    name: 'websocketUpgrade was removed: upgrades need no field',
    spec: `
      hosts: [chat]
      http:
      - route:
        - destination: {host: chat}
        websocketUpgrade: true
    `,
    errors: [
      {
        path: 'spec.http[0].websocketUpgrade',
        message: 'WebSocket upgrades are allowed on every HTTP route',
      },
    ],
  },
  {
    name: 'cors policy',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        corsPolicy:
          allowMethods: [GET, FETCH]
          allowHeaders: ["x ok"]
          maxAge: 1500ms
          unmatchedPreflights: DROP
    `,
    errors: [
      { path: 'spec.http[0].corsPolicy.allowMethods[1]', message: '"FETCH" is not a supported HTTP method' },
      { path: 'spec.http[0].corsPolicy.allowHeaders[0]', message: 'is not a valid header name' },
      {
        path: 'spec.http[0].corsPolicy.unmatchedPreflights',
        message: 'is not one of UNSPECIFIED, FORWARD, IGNORE',
      },
    ],
  },
  {
    name: 'header operations need valid names',
    spec: `
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews}
        headers:
          request:
            set: {"x bad": "1"}
            remove: [":authority"]
    `,
    errors: [
      { path: 'spec.http[0].headers.request.set.x bad', message: 'is not a valid header name' },
      {
        path: 'spec.http[0].headers.request.remove[0]',
        message: 'header name :authority is not a valid header name',
      },
    ],
  },

  // ---- TLS and TCP routes ----
  {
    name: 'TLS routes: SNI hosts are required and must match the hosts',
    spec: `
      hosts: ["*.example.com"]
      gateways: [tls-gateway]
      tls:
      - match:
        - port: 443
        route:
        - destination: {host: a}
      - match:
        - sniHosts: [other.org]
        route:
        - destination: {host: b}
      - match:
        - sniHosts: [a.example.com]
    `,
    errors: [
      {
        path: 'spec.tls[0].match[0].sniHosts',
        message: 'TLS match must have at least one SNI host',
        line: 10,
      },
      { path: 'spec.tls[2].route', message: 'TLS route is required' },
    ],
  },
  {
    name: 'TLS SNI outside the virtual service hosts',
    spec: `
      hosts: ["*.example.com"]
      gateways: [tls-gateway]
      tls:
      - match:
        - sniHosts: [other.org]
        route:
        - destination: {host: b}
    `,
    errors: [
      {
        path: 'spec.tls[0].match[0].sniHosts[0]',
        message: 'is not a compatible subset of any of the virtual service hosts',
      },
    ],
  },
  {
    name: 'TCP routes need destinations and valid subnets',
    spec: `
      hosts: [mysql]
      tcp:
      - match:
        - destinationSubnets: [10.0.0.0/33]
          port: 3306
    `,
    errors: [
      { path: 'spec.tcp[0].route', message: 'TCP route is required' },
      { path: 'spec.tcp[0].match[0].destinationSubnets[0]', message: 'is not an IP address or CIDR block' },
    ],
  },
  {
    name: 'valid TCP and TLS routes on sidecars are enforced: no warning',
    spec: `
      hosts: [mysql, "*.example.com"]
      gateways: [mesh, egress]
      tcp:
      - match:
        - port: 3306
          destinationSubnets: [10.0.0.0/8, "2001:db8::/32"]
        route:
        - destination: {host: mysql}
      tls:
      - match:
        - sniHosts: [api.example.com]
        route:
        - destination: {host: api.example.com, port: {number: 443}}
    `,
    warnings: 'none',
  },
  {
    name: 'TCP and TLS routes bound to gateways only warn as not enforced',
    spec: `
      hosts: [mysql, "*.example.com"]
      gateways: [egress]
      tcp:
      - match:
        - port: 3306
          destinationSubnets: [10.0.0.0/8, "2001:db8::/32"]
        route:
        - destination: {host: mysql}
      tls:
      - match:
        - sniHosts: [api.example.com]
        route:
        - destination: {host: api.example.com, port: {number: 443}}
    `,
    warnings: [
      { path: 'spec.tcp', message: NE, line: 8 },
      { path: 'spec.tls', message: NE, line: 14 },
    ],
  },
]);

// Istio rejects what RE2 rejects: each regex below is refused at apply, pointing at its own line.
test('VirtualService: RE2-invalid regexes are refused with file, line and field path', () => {
  const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        x-user: {regex: "(a)\\\\1"}
    - uri: {regex: "(?=a)"}
    - queryParams:
        q: {regex: "((a{1000}){1000}){1000}"}
    route:
    - destination: {host: reviews}
`;
  const result = validateText(yaml, 'routes.yaml');
  assert.equal(result.resources.length, 0);
  const got = result.errors.map((i) => ({ file: i.file, line: i.line, path: i.path }));
  assert.deepEqual(got, [
    { file: 'routes.yaml', line: 10, path: 'spec.http[0].match[0].headers.x-user.regex' },
    { file: 'routes.yaml', line: 11, path: 'spec.http[0].match[1].uri.regex' },
    { file: 'routes.yaml', line: 13, path: 'spec.http[0].match[2].queryParams.q.regex' },
  ]);
  const [backref, lookahead, tooLarge] = result.errors.map(formatIssue);
  assert.match(
    backref,
    /^routes\.yaml:10:\d+ VirtualService default\/reviews: .*backreference \\1 is not supported/,
  );
  assert.match(lookahead, /^routes\.yaml:11:\d+ .*lookahead \(\?=\.\.\.\) is not supported/);
  assert.match(
    tooLarge,
    /^routes\.yaml:13:\d+ .*pattern too large: RE2 would compile it to about \d+ instructions/,
  );
});
