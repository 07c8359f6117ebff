// Where an app's environment runs and what its pods look like, as data.
//
// Every (app, environment, region) has a workload of its own: the namespace
// and Deployment names come from patterns (`{app}`, `{env}`, `{region}`), by
// default `{app}` and `{app}-{env}`, so a test release can never move a prod
// pod. The pod settings merge in layers — Ferry's defaults, the app's
// `workload`, the environment's override under `apps.<app>.environments` —
// the same way a plan is layered. Nothing here knows Kubernetes' types; the
// rollout turns a `Workload` into a pod template.
import type { FerryConfig, ProbeConfig, WorkloadConfig } from './config.ts';
import { defines, lookup } from './lookup.ts';

export interface Placement {
  app: string;
  environment: string;
  region: string;
  namespace: string;
  /** The Deployment name of track a (track b is `<name>-b`); also the pods' app.kubernetes.io/name. */
  name: string;
  container: string;
}

export type EnvValue = Exclude<NonNullable<WorkloadConfig['env']>[string], undefined>;

/** A workload with every setting decided. */
export interface Workload {
  /** Pods per region; undefined keeps what runs (or Ferry's default for a first release). */
  replicas: number | undefined;
  /** Extra pods a batch may start at once before it removes old ones (≥ 1). */
  surge: string;
  ports: { name: string; containerPort: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  probes: { startup: ProbeConfig | null; readiness: ProbeConfig | null; liveness: ProbeConfig | null };
  resources: {
    requests: { cpu?: string; memory?: string };
    limits: { cpu?: string; memory?: string };
  };
  env: Record<string, EnvValue>;
  envFrom: NonNullable<WorkloadConfig['envFrom']>;
  volumes: NonNullable<WorkloadConfig['volumes']>;
  serviceAccount: string | undefined;
  nodeSelector: Record<string, string>;
  tolerations: NonNullable<WorkloadConfig['tolerations']>;
  terminationGracePeriodSeconds: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** What Ferry assumes when the config says nothing: the sample app's contract (port 8080, GET /ready). */
export const WORKLOAD_DEFAULTS: Workload = {
  replicas: undefined,
  surge: '25%',
  ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
  probes: {
    startup: null,
    readiness: {
      httpGet: { path: '/ready', port: 8080 },
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: 2,
      successThreshold: 1,
    },
    liveness: null,
  },
  resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
  env: {},
  envFrom: [],
  volumes: [],
  serviceAccount: undefined,
  nodeSelector: {},
  tolerations: [],
  terminationGracePeriodSeconds: 5,
  labels: {},
  annotations: {},
};

/** Expands {app}, {env} and {region} in a placement pattern. */
export function expandPattern(
  pattern: string,
  p: { app: string; environment: string; region: string },
): string {
  return pattern
    .replaceAll('{app}', p.app)
    .replaceAll('{env}', p.environment)
    .replaceAll('{region}', p.region);
}

export function placementOf(
  config: FerryConfig,
  app: string,
  environment: string,
  region: string,
): Placement {
  const a = lookup(config.apps, app);
  if (!a) throw new Error(`unknown app ${app}`);
  const envOverride = a.environments && lookup(a.environments, environment);
  const defaults = config.workloads ?? { namespace: '{app}', deployment: '{app}-{env}' };
  const vars = { app, environment, region };
  return {
    app,
    environment,
    region,
    namespace: expandPattern(envOverride?.namespace ?? a.namespace ?? defaults.namespace, vars),
    name: expandPattern(envOverride?.deployment ?? a.deployment ?? defaults.deployment, vars),
    container: a.container ?? app,
  };
}

/** The layers of a workload, defaults first. */
function layers(config: FerryConfig, app: string, environment: string): WorkloadConfig[] {
  const a = lookup(config.apps, app);
  return [a?.workload ?? {}, (a?.environments && lookup(a.environments, environment))?.workload ?? {}];
}

export function workloadOf(config: FerryConfig, app: string, environment: string): Workload {
  const w: Workload = structuredClone(WORKLOAD_DEFAULTS);
  for (const l of layers(config, app, environment)) {
    if (l.replicas !== undefined) w.replicas = l.replicas;
    if (l.surge !== undefined) w.surge = l.surge;
    if (l.ports) w.ports = l.ports;
    if (l.probes) {
      for (const kind of ['startup', 'readiness', 'liveness'] as const) {
        const v = l.probes[kind];
        if (v !== undefined) w.probes[kind] = v;
      }
    }
    if (l.resources) {
      w.resources = {
        requests: { ...w.resources.requests, ...l.resources.requests },
        limits: { ...w.resources.limits, ...l.resources.limits },
      };
    }
    if (l.env) w.env = { ...w.env, ...l.env };
    if (l.envFrom) w.envFrom = l.envFrom;
    if (l.volumes) w.volumes = l.volumes;
    if (l.serviceAccount !== undefined) w.serviceAccount = l.serviceAccount;
    if (l.nodeSelector) w.nodeSelector = { ...w.nodeSelector, ...l.nodeSelector };
    if (l.tolerations) w.tolerations = l.tolerations;
    if (l.terminationGracePeriodSeconds !== undefined)
      w.terminationGracePeriodSeconds = l.terminationGracePeriodSeconds;
    if (l.labels) w.labels = { ...w.labels, ...l.labels };
    if (l.annotations) w.annotations = { ...w.annotations, ...l.annotations };
  }
  return w;
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** Bytes of a memory quantity ("512Mi", "2Gi", "1G"); undefined when it is not one. */
export function memoryBytes(q: string | undefined): number | undefined {
  const m = q?.match(/^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1));
}

/**
 * Expands `{memoryLimitMiB}` and `{memoryLimitMiB:75%}` in an env value, so a
 * JVM's -Xmx follows the container's limit instead of being written twice.
 */
export function expandEnvValue(value: string, w: Pick<Workload, 'resources'>): string {
  const limit = memoryBytes(w.resources.limits.memory);
  return value.replace(/\{memoryLimitMiB(?::(\d{1,3})%)?\}/g, (whole, pct: string | undefined) => {
    if (limit === undefined) return whole;
    const mib = limit / 1024 ** 2;
    return String(Math.floor(pct ? (mib * Number(pct)) / 100 : mib));
  });
}

/** Pods a batch may add before it removes old ones: at least 1. */
export function surgePods(surge: string, replicas: number): number {
  const pct = surge.endsWith('%');
  const n = pct ? Math.floor((replicas * Number(surge.slice(0, -1))) / 100) : Number(surge);
  return Math.max(1, Number.isFinite(n) ? n : 1);
}

/** One step inside a batch: the new track grows to `next`, and once those pods are Ready the old one shrinks to `old`. */
export interface SurgeStep {
  next: number;
  old: number;
}

/**
 * The steps that take the new track from `current` to `target` pods of
 * `total` without dipping below `total` Ready pods: each step adds at most
 * `surge` new pods (the cluster's spare room), and the old track gives up
 * only as many pods as are new and Ready. A re-run starts from where the
 * new track got to, so the steps already done are not repeated.
 */
export function surgeSteps(current: number, target: number, total: number, surge: number): SurgeStep[] {
  const goal = Math.max(0, Math.min(total, target));
  const step = Math.max(1, Math.floor(surge));
  const steps: SurgeStep[] = [];
  let next = Math.max(0, Math.min(current, goal));
  do {
    next = Math.min(goal, next + step);
    steps.push({ next, old: total - next });
  } while (next < goal);
  return steps;
}

/** Every placement of an app: one per environment and region the environment runs in. */
export function placementsOf(config: FerryConfig, app: string): Placement[] {
  return Object.entries(config.environments).flatMap(([env, e]) =>
    e.regions.map((region) => placementOf(config, app, env, region)),
  );
}

/** The namespaces Ferry's apps live in (in any region), sorted. */
export function managedNamespaces(config: FerryConfig): string[] {
  return [
    ...new Set(Object.keys(config.apps).flatMap((app) => placementsOf(config, app).map((p) => p.namespace))),
  ].sort();
}

/**
 * The app (and environment) a pod belongs to: its ferry.dev/app and
 * ferry.dev/environment labels when Ferry deployed it, else the placement
 * whose namespace and Deployment name match.
 */
export function ownerOfWorkload(
  config: FerryConfig,
  w: { region?: string; namespace: string; owner?: string; labels?: Record<string, string> },
): { app: string; environment?: string } | undefined {
  const app = w.labels?.['ferry.dev/app'];
  if (app && defines(config.apps, app)) {
    const environment = w.labels?.['ferry.dev/environment'];
    return environment ? { app, environment } : { app };
  }
  const candidates = Object.keys(config.apps).flatMap((a) =>
    placementsOf(config, a).filter(
      (p) => p.namespace === w.namespace && (!w.region || p.region === w.region),
    ),
  );
  const exact = candidates.find((p) => p.name === w.owner || `${p.name}-b` === w.owner);
  const hit = exact ?? (new Set(candidates.map((p) => p.app)).size === 1 ? candidates[0] : undefined);
  if (!hit) return undefined;
  return exact ? { app: hit.app, environment: hit.environment } : { app: hit.app };
}
