// Workload (trellis.dev/v1alpha1): a process the local runtime starts, with the identity, labels and
// ports the mesh knows it by. Role `sidecar` runs the app with a sidecar proxy; role `gateway` runs a
// gateway proxy only.
import {
  array,
  type Ctx,
  describe,
  fail,
  int,
  isObject,
  join,
  map,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import {
  dns1123Label,
  dns1123Subdomain,
  labels,
  NOT_ENFORCED,
  nonEmptyString,
  portNumber,
} from './common.ts';
import { isEnvVarName } from './syntax.ts';
import type { KindInfo } from './types.ts';

export type WorkloadRole = 'sidecar' | 'gateway';
export type WorkloadProtocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'TCP';

export interface WorkloadPortSpec {
  name?: string;
  port: number;
  /** Default HTTP. */
  protocol?: WorkloadProtocol;
  /** Gateways only: the port on the host the listener is reachable at (0 picks a free one). */
  hostPort?: number;
}

export interface ReadinessProbe {
  httpGet: {
    /** Starts with `/`. */
    path: string;
    /** A workload port number or name; defaults to the first port. */
    port?: number | string;
  };
  /** Default 1. */
  periodSeconds?: number;
  /** Default 0. */
  initialDelaySeconds?: number;
  /** Default 1. */
  timeoutSeconds?: number;
  /** Default 3. */
  failureThreshold?: number;
}

export interface WorkloadSpec {
  /** Default sidecar. */
  role?: WorkloadRole;
  /** Required for sidecars; gateways run Trellis' own proxy. */
  command?: string;
  args?: string[];
  /** Relative to the directory of the mesh file. */
  workingDir?: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** Default "default". */
  serviceAccount?: string;
  /** Default 1. */
  replicas?: number;
  ports?: WorkloadPortSpec[];
  readinessProbe?: ReadinessProbe;
}

export const WORKLOAD_DEFAULTS = {
  role: 'sidecar',
  serviceAccount: 'default',
  replicas: 1,
  protocol: 'HTTP',
} as const;

const envValue: Validator = (v, path, ctx) => {
  if (typeof v !== 'string') {
    fail(ctx, path, `expected a string, found ${describe(v)}: quote environment values, e.g. "${String(v)}"`);
  }
};

const env: Validator = map(envValue, {
  key: (k, path, ctx) => {
    if (!isEnvVarName(k as string)) {
      fail(
        ctx,
        path,
        `environment variable name ${JSON.stringify(k)} is not valid: expected letters, digits and "_", not starting with a digit`,
      );
    }
  },
});

const workloadPort: Validator = object(
  {
    name: dns1123Label('port name'),
    port: portNumber(),
    protocol: string({ enum: ['HTTP', 'HTTP2', 'GRPC', 'TCP'] }),
    hostPort: int({ min: 0, max: 65535 }),
  },
  {
    required: ['port'],
    check: (v, path, ctx) => {
      if (v.protocol === 'TCP') {
        warn(
          ctx,
          join(path, 'protocol'),
          `${NOT_ENFORCED}: the sidecar speaks HTTP to the app for now, found ${v.protocol}`,
        );
      }
    },
  },
);

const probePort: Validator = (v, path, ctx) => {
  if (typeof v === 'number') return portNumber()(v, path, ctx);
  if (typeof v === 'string') return dns1123Label('port name')(v, path, ctx);
  fail(ctx, path, `expected a port number or port name, found ${describe(v)}`);
};

const readinessProbe: Validator = object(
  {
    httpGet: object(
      {
        path: string({
          check: (v, path, ctx) => {
            if (!v.startsWith('/')) fail(ctx, path, `probe path ${JSON.stringify(v)} must start with "/"`);
          },
        }),
        port: probePort,
      },
      { required: ['path'] },
    ),
    periodSeconds: int({ min: 1, max: 3600 }),
    initialDelaySeconds: int({ min: 0, max: 3600 }),
    timeoutSeconds: int({ min: 1, max: 3600 }),
    failureThreshold: int({ min: 1, max: 1000 }),
  },
  { required: ['httpGet'] },
);

const portList = array(workloadPort);

function checkPorts(v: unknown, path: string, ctx: Ctx): void {
  if (!Array.isArray(v)) return;
  const names = new Map<string, number>();
  const numbers = new Map<number, number>();
  v.forEach((p, i) => {
    if (!isObject(p)) return;
    if (typeof p.name === 'string') {
      const first = names.get(p.name);
      if (first !== undefined)
        fail(ctx, join(join(path, i), 'name'), `duplicate port name "${p.name}" (also ports[${first}])`);
      else names.set(p.name, i);
    }
    if (typeof p.port === 'number') {
      const first = numbers.get(p.port);
      if (first !== undefined)
        fail(ctx, join(join(path, i), 'port'), `duplicate port ${p.port} (also ports[${first}])`);
      else numbers.set(p.port, i);
    }
  });
}

function checkWorkload(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const role = (v.role as string | undefined) ?? 'sidecar';
  const ports = Array.isArray(v.ports) ? v.ports : [];
  if (role === 'sidecar') {
    if (v.command == null)
      fail(ctx, join(path, 'command'), 'command is required for role sidecar: it starts the app');
    if (ports.length === 0)
      fail(ctx, join(path, 'ports'), 'a sidecar workload needs at least one port the app listens on');
    ports.forEach((p, i) => {
      if (isObject(p) && p.hostPort != null) {
        fail(
          ctx,
          join(join(join(path, 'ports'), i), 'hostPort'),
          'hostPort is only allowed for role gateway',
        );
      }
    });
  } else if (v.command != null) {
    fail(
      ctx,
      join(path, 'command'),
      'command is not allowed for role gateway: a gateway runs the Trellis proxy only',
    );
  }
  if (role === 'gateway' && (v.args != null || v.workingDir != null || v.env != null)) {
    const extra = ['args', 'workingDir', 'env'].filter((k) => v[k] != null);
    fail(
      ctx,
      join(path, extra[0]),
      `${extra.join(', ')} only apply to the app of a sidecar workload, not to role gateway`,
    );
  }
  const probe =
    isObject(v.readinessProbe) && isObject(v.readinessProbe.httpGet) ? v.readinessProbe.httpGet : undefined;
  if (typeof probe?.port === 'string' && !ports.some((p) => isObject(p) && p.name === probe.port)) {
    fail(
      ctx,
      `${join(path, 'readinessProbe')}.httpGet.port`,
      `probe port "${probe.port}" is not the name of one of the workload's ports`,
    );
  }
}

export const workloadSpec: Validator = object(
  {
    role: string({ enum: ['sidecar', 'gateway'] }),
    command: nonEmptyString(),
    args: array(string()),
    workingDir: nonEmptyString(),
    env,
    labels: labels(),
    serviceAccount: dns1123Subdomain('service account'),
    replicas: int({ min: 0, max: 100 }),
    ports: (v, path, ctx) => {
      portList(v, path, ctx);
      checkPorts(v, path, ctx);
    },
    readinessProbe,
  },
  { check: checkWorkload },
);

export const workload: KindInfo = {
  group: 'trellis.dev',
  kind: 'Workload',
  versions: ['v1alpha1'],
  plural: 'workloads',
  shortNames: ['wl'],
  spec: workloadSpec,
};
