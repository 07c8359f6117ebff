// One region's rollout of an app, in exact batches.
//
// DESIGN: two Deployments ("tracks") per app, like Argo Rollouts' stable and
// canary ReplicaSets. A single Deployment cannot stop at exactly k new pods
// (maxSurge/maxUnavailable bound the pace, not the end state, and pausing it
// mid-way is racy), so Ferry owns two:
//
//   track a: Deployment <name>      pods labelled ferry.dev/track=a
//   track b: Deployment <name>-b    pods labelled ferry.dev/track=b
//
// Both tracks' pods carry `app.kubernetes.io/name: <name>`, which is what the
// app's Service selects, so traffic spreads over old and new pods in
// proportion to their counts. One track is "stable" (runs the current
// version), the other "next". Batch k with p cumulative new pods applies:
//
//   next   ← new digest-pinned image, replicas p          (fieldManager ferry)
//   stable ← unchanged template,      replicas total − p  (fieldManager ferry-scale)
//
// in steps of at most `surge` pods: the next track grows, its new pods must be
// Ready, and only then does the stable track shrink by as many (see
// `applyBatch`). Ready pods never fall below the replica count, and there are
// never more than replicas + surge pods. Both writes are declarative
// server-side applies, so applying a batch twice changes nothing and a job
// killed between the two writes completes the batch when it runs again.
// When p reaches total the roles swap in the same apply: the next track is
// annotated `ferry.dev/role: stable`, the old one `next` with 0 replicas and
// its old template kept — which is what makes rollback instant: rollback
// scales the track that still runs the previous image back to all replicas
// and the other to 0 (no new template, the image is on the nodes already).
//
// The rollout's own state lives in annotations on the Deployments, not in
// memory: `ferry.dev/release`, `ferry.dev/digest`, `ferry.dev/batch`,
// `ferry.dev/replicas` on the track being rolled out. A restarted deploy job
// finds the track carrying its release id and goes on with the same total.
//
// The first release of an app creates track a; there is no old image, so the
// batches grow the app from 0 to its replica count and rollback scales it to
// 0. A Deployment <name> that Ferry did not create (its selector lacks
// ferry.dev/track) is refused with an explanation: its selector is immutable
// and would overlap the other track's pods. A Deployment of another
// environment (its ferry.dev/environment label) is refused too: environments
// never share a workload, even when a config names the same Deployment twice.
//
// The pod template is generated from the app's workload in the config (see
// `podTemplate` and src/domain/workload.ts): ports, probes, resources, env
// (values, Secrets, ConfigMaps), volumes, service account, scheduling, grace
// period, labels and annotations, plus FERRY_ENV/FERRY_APP/FERRY_VERSION.
import { createHash } from 'node:crypto';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { limiter } from '../concurrency.ts';
import type { FerryConfig } from '../domain/config.ts';
import type { BuiltImage, RegionRollout, StepIO } from '../domain/ports.ts';
import {
  expandEnvValue,
  type Placement,
  placementOf,
  surgePods,
  surgeSteps,
  type Workload,
  workloadOf,
} from '../domain/workload.ts';
import type { Descriptor } from '../registry/client.ts';
import { isAbortError, UnauthorizedError, UnreachableError } from '../registry/errors.ts';
import { defaultPool } from '../registry/pool.ts';
import { relayable, relayReference } from '../registry/pull-relay.ts';
import { parseReference } from '../registry/reference.ts';
import {
  type ApplyObject,
  applyDeployment,
  isNotFound,
  type KubeClients,
  kubeErrorMessage,
  readOrUndefined,
  SCALE_MANAGER,
  sleep,
  statusOf,
} from './client.ts';
import { findHpa, hpaReplicas, pauseHpa, resumeHpa } from './hpa.ts';
import { ListWatch } from './list-watch.ts';

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_MANAGED = 'app.kubernetes.io/managed-by';
export const LABEL_TRACK = 'ferry.dev/track';
export const LABEL_PREWARM = 'ferry.dev/prewarm';
export const LABEL_APP = 'ferry.dev/app';
export const LABEL_ENV = 'ferry.dev/environment';
export const ANN = {
  role: 'ferry.dev/role',
  release: 'ferry.dev/release',
  version: 'ferry.dev/version',
  digest: 'ferry.dev/digest',
  image: 'ferry.dev/image',
  batch: 'ferry.dev/batch',
  replicas: 'ferry.dev/replicas',
  /** On a Deployment Ferry did not create but took over (`/release adopt`): it plays track a. */
  adopted: 'ferry.dev/adopted',
  /** The labels the team's Service selects on (the adopted Deployment's selector), kept on every track's pods. */
  serviceLabels: 'ferry.dev/service-labels',
} as const;

export type Track = 'a' | 'b';

/** One environment's workload in one region: namespace, Deployment name (track a; track b is `<name>-b`), container. */
export type AppTarget = Placement;

export const appTarget = placementOf;

/** Labels every pod and Deployment of a target carries: the Service selects on the name. */
function targetLabels(t: AppTarget): Record<string, string> {
  return { [LABEL_NAME]: t.name, [LABEL_MANAGED]: 'ferry', [LABEL_APP]: t.app, [LABEL_ENV]: t.environment };
}

export function trackName(t: AppTarget, track: Track): string {
  return track === 'a' ? t.name : `${t.name}-b`;
}

/** The image as the region pulls it: region registry host, same repository, pinned by digest. */
export function regionImageRef(
  config: FerryConfig,
  region: string,
  image: { image: string; digest: string },
): string {
  const r = config.regions[region];
  if (!r) throw new Error(`unknown region ${region}`);
  const host = new URL(r.registry.url).host;
  const ref = parseReference(image.image);
  return `${host}/${ref.repository}@${image.digest}`;
}

type Probe = NonNullable<Workload['probes']['readiness']>;

function probeSpec(p: Probe): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
}

function envVar(name: string, value: Workload['env'][string], w: Workload): Record<string, unknown> {
  if (typeof value === 'string') return { name, value: expandEnvValue(value, w) };
  if ('secret' in value)
    return {
      name,
      valueFrom: { secretKeyRef: { name: value.secret, key: value.key, optional: value.optional ?? false } },
    };
  return {
    name,
    valueFrom: {
      configMapKeyRef: { name: value.configMap, key: value.key, optional: value.optional ?? false },
    },
  };
}

/**
 * The pod template for one track. Deterministic in its inputs (no release id
 * or time in it), so re-applying it never restarts pods.
 */
export function podTemplate(
  t: AppTarget,
  track: Track,
  ref: string,
  version: string,
  w: Workload,
): Record<string, unknown> {
  const ferryEnv = { FERRY_ENV: t.environment, FERRY_APP: t.app, FERRY_VERSION: version };
  const env = [
    ...Object.entries(ferryEnv).map(([name, value]) => ({ name, value })),
    ...Object.entries(w.env)
      .filter(([name]) => !Object.hasOwn(ferryEnv, name))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => envVar(name, value, w)),
  ];
  const resources: Record<string, Record<string, string>> = {};
  for (const kind of ['requests', 'limits'] as const) {
    const list = Object.fromEntries(Object.entries(w.resources[kind]).filter(([, v]) => v !== undefined));
    if (Object.keys(list).length) resources[kind] = list as Record<string, string>;
  }
  const container: Record<string, unknown> = {
    name: t.container,
    image: ref,
    imagePullPolicy: 'IfNotPresent',
    ports: w.ports.map((p) => ({ ...p, protocol: p.protocol ?? 'TCP' })),
    env,
    resources,
  };
  if (w.envFrom.length)
    container.envFrom = w.envFrom.map((e) =>
      'secret' in e
        ? { secretRef: { name: e.secret, optional: e.optional ?? false } }
        : { configMapRef: { name: e.configMap, optional: e.optional ?? false } },
    );
  if (w.probes.startup) container.startupProbe = probeSpec(w.probes.startup);
  if (w.probes.readiness) container.readinessProbe = probeSpec(w.probes.readiness);
  if (w.probes.liveness) container.livenessProbe = probeSpec(w.probes.liveness);
  if (w.volumes.length)
    container.volumeMounts = w.volumes.map((v) => ({
      name: v.name,
      mountPath: v.mountPath,
      ...(v.readOnly ? { readOnly: true } : {}),
    }));
  const spec: Record<string, unknown> = {
    terminationGracePeriodSeconds: w.terminationGracePeriodSeconds,
    containers: [container],
  };
  if (w.volumes.length)
    spec.volumes = w.volumes.map((v) =>
      v.secret
        ? { name: v.name, secret: { secretName: v.secret } }
        : v.configMap
          ? { name: v.name, configMap: { name: v.configMap } }
          : v.persistentVolumeClaim
            ? { name: v.name, persistentVolumeClaim: { claimName: v.persistentVolumeClaim } }
            : { name: v.name, emptyDir: v.emptyDir ?? {} },
    );
  if (w.serviceAccount) spec.serviceAccountName = w.serviceAccount;
  if (Object.keys(w.nodeSelector).length) spec.nodeSelector = w.nodeSelector;
  if (w.tolerations.length) spec.tolerations = w.tolerations;
  return {
    metadata: {
      // The team's labels first: Ferry's own (selector, environment) cannot be overridden.
      labels: { ...w.labels, ...targetLabels(t), [LABEL_TRACK]: track },
      annotations: { ...w.annotations, [ANN.version]: version },
    },
    spec,
  };
}

function deploymentObject(
  t: AppTarget,
  track: Track,
  replicas: number,
  template: Record<string, unknown>,
  annotations: Record<string, string>,
): ApplyObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: trackName(t, track),
      namespace: t.namespace,
      labels: { ...targetLabels(t), [LABEL_TRACK]: track },
      annotations,
    },
    spec: {
      replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: { [LABEL_NAME]: t.name, [LABEL_TRACK]: track } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
      template,
    },
  };
}

/** Scale one track (and set its role) without touching its template. */
async function scaleTrack(k: KubeClients, t: AppTarget, track: Track, replicas: number, role: string) {
  await applyDeployment(
    k,
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: trackName(t, track), namespace: t.namespace, annotations: { [ANN.role]: role } },
      spec: { replicas },
    },
    SCALE_MANAGER,
  );
}

export interface Tracks {
  a?: V1Deployment;
  b?: V1Deployment;
  /** Track a is a Deployment Ferry adopted: its own selector, its own pod labels. */
  adopted?: true;
}

/** The Deployment's selector labels, when it is a foreign Deployment Ferry adopted. */
export function adoptedSelector(d: V1Deployment | undefined): Record<string, string> | undefined {
  if (!d || ann(d, ANN.adopted) !== 'true') return undefined;
  if (d.spec?.selector?.matchLabels?.[LABEL_TRACK]) return undefined;
  return d.spec?.selector?.matchLabels ?? {};
}

/** Labels the team's Service selects on, recorded at adoption and carried by every track. */
export function serviceLabels(tracks: Tracks): Record<string, string> {
  for (const d of [tracks.a, tracks.b]) {
    const raw = ann(d, ANN.serviceLabels);
    if (!raw) continue;
    try {
      const parsed = JSON.parse(raw) as unknown;
      if (parsed && typeof parsed === 'object') return parsed as Record<string, string>;
    } catch {
      // a hand-edited annotation: ignore it rather than fail the rollout
    }
  }
  return {};
}

const matches = (labels: Record<string, string> | undefined, selector: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

export async function readTracks(k: KubeClients, t: AppTarget): Promise<Tracks> {
  const [a, b] = await Promise.all(
    (['a', 'b'] as const).map((tr) =>
      readOrUndefined(() =>
        k.apps.readNamespacedDeployment({ name: trackName(t, tr), namespace: t.namespace }),
      ),
    ),
  );
  for (const [tr, d] of [
    ['a', a],
    ['b', b],
  ] as const) {
    const adopted = tr === 'a' && adoptedSelector(d) !== undefined;
    if (d && !adopted && d.spec?.selector?.matchLabels?.[LABEL_TRACK] !== tr) {
      throw new Error(
        `deployment ${t.namespace}/${d.metadata?.name} in ${t.region} was not created by Ferry (its selector ${JSON.stringify(
          d.spec?.selector?.matchLabels ?? {},
        )} lacks ${LABEL_TRACK}=${tr}). Take it over without a restart with \`/release adopt ${t.app} to ${t.environment}\`, or set apps.${t.app}.deployment to a new name.`,
      );
    }
    const owner = d?.metadata?.labels?.[LABEL_ENV];
    if (d && owner && owner !== t.environment) {
      throw new Error(
        `deployment ${t.namespace}/${d.metadata?.name} in ${t.region} belongs to environment ${owner}; a ${t.environment} release never touches it. Give ${t.environment} its own Deployment: a pattern with {env} in apps.${t.app}.deployment (default "{app}-{env}").`,
      );
    }
  }
  return {
    ...(a ? { a } : {}),
    ...(b ? { b } : {}),
    ...(adoptedSelector(a) ? { adopted: true as const } : {}),
  };
}

const other = (tr: Track): Track => (tr === 'a' ? 'b' : 'a');
const ann = (d: V1Deployment | undefined, key: string) => d?.metadata?.annotations?.[key];

export function trackImage(d: V1Deployment | undefined, container: string): string | undefined {
  const cs = d?.spec?.template?.spec?.containers ?? [];
  return (cs.find((c) => c.name === container) ?? cs[0])?.image;
}

export function podImage(p: V1Pod, container: string): string | undefined {
  const cs = p.spec?.containers ?? [];
  return (cs.find((c) => c.name === container) ?? cs[0])?.image;
}

export function containerStatus(p: V1Pod, container: string) {
  const cs = p.status?.containerStatuses ?? [];
  return cs.find((c) => c.name === container) ?? cs[0];
}

export function isReady(p: V1Pod): boolean {
  return (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function isTerminating(p: V1Pod): boolean {
  return !!p.metadata?.deletionTimestamp || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
}

export async function appPods(k: KubeClients, t: AppTarget): Promise<V1Pod[]> {
  const list = await k.core.listNamespacedPod({
    namespace: t.namespace,
    labelSelector: `${LABEL_NAME}=${t.name}`,
  });
  return list.items;
}

/** Which track is stable, as Ferry records it; and the app's pods per image. */
export interface TrackStatus {
  stable: string | null;
  next: string | null;
  replicas: Record<string, number>;
  images: Record<string, string | undefined>;
  /** Live (not terminating) pods per image reference. */
  podsByImage: Record<string, number>;
  terminating: number;
}

export async function trackStatus(k: KubeClients, t: AppTarget): Promise<TrackStatus> {
  const tracks = await readTracks(k, t);
  const pods = await appPods(k, t);
  const out: TrackStatus = {
    stable: null,
    next: null,
    replicas: {},
    images: {},
    podsByImage: {},
    terminating: 0,
  };
  for (const tr of ['a', 'b'] as const) {
    const d = tracks[tr];
    if (!d) continue;
    const name = trackName(t, tr);
    out.replicas[name] = d.spec?.replicas ?? 0;
    out.images[name] = trackImage(d, t.container);
    if (ann(d, ANN.role) === 'stable') out.stable = name;
    else out.next = name;
  }
  for (const p of pods) {
    if (isTerminating(p)) out.terminating++;
    else {
      const img = podImage(p, t.container) ?? '?';
      out.podsByImage[img] = (out.podsByImage[img] ?? 0) + 1;
    }
  }
  return out;
}

export interface RolloutSpec {
  /** The release id (or a rollback id) recorded on the track it rolls out. */
  releaseId: string;
  app: string;
  environment: string;
  version: string;
  region: string;
  image: Pick<BuiltImage, 'image' | 'digest'>;
}

export interface RolloutOptions {
  /** Replicas of an app that has no Deployment yet and no `replicas` in its workload. Default 2. */
  defaultReplicas?: number;
  /** How long applyBatch waits for the exact pod counts after a scale-down. Default 120 s. */
  applyTimeoutMs?: number;
  /** Check that the region registry has the image before rolling out. Default true. */
  checkRegistry?: boolean;
  /** Poll interval of waits. Default 300 ms. */
  pollMs?: number;
  /** How long a pre-warm pull may take per node. Default 5 min. */
  prewarmTimeoutMs?: number;
  /** Restart the gate's pod watch after this long (silent watches). Default 60 s. */
  watchRestartMs?: number;
  io?: StepIO;
}

/** HEAD the digest in the region's registry (Ferry's registry client: auth, tokens); throws a clear error if it is missing. */
export async function checkRegionImage(
  config: FerryConfig,
  region: string,
  image: { image: string; digest: string },
): Promise<void> {
  const r = config.regions[region];
  if (!r) throw new Error(`unknown region ${region}`);
  const repo = parseReference(image.image).repository;
  const password = r.registry.passwordEnv ? process.env[r.registry.passwordEnv] : undefined;
  const client = defaultPool.client({
    name: region,
    url: r.registry.url,
    ...(r.registry.username && password ? { username: r.registry.username, password } : {}),
  });
  const host = new URL(r.registry.url).host;
  let found: Descriptor | null;
  try {
    found = await client.headManifest(repo, image.digest, AbortSignal.timeout(15_000));
  } catch (err) {
    if (err instanceof UnauthorizedError) return; // the kubelet pulls with its own pull secret
    if (err instanceof UnreachableError || isAbortError(err))
      throw new Error(
        `${region}: cannot reach the region registry ${r.registry.url.replace(/\/+$/, '')} to check ${repo}@${image.digest}: ${(err as Error).message}`,
      );
    throw new Error(
      `${region}: the region registry ${host} failed the check of ${repo}@${image.digest}: ${(err as Error).message}`,
    );
  }
  if (!found)
    throw new Error(
      `${region}: the region registry ${host} has no ${repo}@${image.digest.slice(0, 19)}…; the pods could not pull it. Sync the image to ${region} first (/release sync).`,
    );
}

type GateResult = { ok: true } | { ok: false; reason: string };

export interface BatchLimits {
  /** How long new pods may take to become Ready (the plan's progress deadline). */
  deadlineMs?: number;
  /** Restarts of a new pod that fail the batch (the plan's gate). */
  maxRestarts?: number;
}

export interface PrewarmOptions {
  /** Nodes pulling at once (default: all targets). A pre-pull while a release waits is throttled; a batch's pre-warm is not. */
  nodesAtOnce?: number;
  /** Names the pods apart, so a batch's pre-warm never waits on a pre-pull pod being deleted. */
  purpose?: 'prewarm' | 'prepull';
}

export class KubeRollout implements RegionRollout {
  readonly k: KubeClients;
  readonly config: FerryConfig;
  readonly spec: RolloutSpec;
  readonly target: AppTarget;
  readonly ref: string;
  private readonly opts: RolloutOptions;
  readonly workload: Workload;
  /** Set by prepare(). */
  newTrack: Track = 'a';
  replicas = 0;
  previousImage: string | null = null;
  private prepared = false;
  private oldExists = false;
  /** Selector of an adopted foreign Deployment playing track a, if any. */
  private adopted: Record<string, string> | undefined;
  /** Labels the team's Service selects on, kept on every pod Ferry makes. */
  private serviceLabels: Record<string, string> = {};
  /** The HPA that owns the app's replica count, if any (paused while pods move). */
  private hpa: import('@kubernetes/client-node').V2HorizontalPodAutoscaler | undefined;

  constructor(k: KubeClients, config: FerryConfig, spec: RolloutSpec, opts: RolloutOptions = {}) {
    this.k = k;
    this.config = config;
    this.spec = spec;
    this.opts = opts;
    this.target = appTarget(config, spec.app, spec.environment, spec.region);
    this.ref = regionImageRef(config, spec.region, spec.image);
    this.workload = workloadOf(config, spec.app, spec.environment);
  }

  private get signal(): AbortSignal | undefined {
    return this.opts.io?.signal;
  }

  private checkStopped(): void {
    if (this.signal?.aborted) throw new Error('stopped: the worker is shutting down');
  }

  async prepare(): Promise<{ replicas: number; previousImage: string | null }> {
    const t = this.target;
    const tracks = await readTracks(this.k, t);
    const mine = (['a', 'b'] as const).find(
      (tr) =>
        ann(tracks[tr], ANN.release) === this.spec.releaseId &&
        ann(tracks[tr], ANN.digest) === this.spec.image.digest,
    );
    if (mine) {
      this.newTrack = mine;
    } else {
      const stable =
        (['a', 'b'] as const).find((tr) => ann(tracks[tr], ANN.role) === 'stable') ??
        (['a', 'b'] as const)
          .filter((tr) => tracks[tr])
          .sort((x, y) => (tracks[y]?.spec?.replicas ?? 0) - (tracks[x]?.spec?.replicas ?? 0))[0];
      this.newTrack = stable ? other(stable) : 'a';
    }
    const old = tracks[other(this.newTrack)];
    this.oldExists = !!old;
    this.adopted = adoptedSelector(tracks.a);
    this.serviceLabels = serviceLabels(tracks);
    this.previousImage = trackImage(old, t.container) ?? null;
    const recorded = Number(ann(tracks[this.newTrack], ANN.replicas));
    const sum = (tracks.a?.spec?.replicas ?? 0) + (tracks.b?.spec?.replicas ?? 0);
    this.hpa = await findHpa(this.k, t.namespace, [trackName(t, 'a'), trackName(t, 'b')]);
    // A rollout in flight keeps the total it started with; otherwise an HPA
    // decides, then the config, then what runs, then Ferry's default.
    this.replicas =
      mine && Number.isInteger(recorded) && recorded > 0
        ? recorded
        : this.hpa
          ? hpaReplicas(this.hpa)
          : (this.workload.replicas ?? (sum > 0 ? sum : (this.opts.defaultReplicas ?? 2)));
    // Before the first batch only: a rollout in flight (or its rollback) has
    // the image on the nodes already and must not be blocked by the registry.
    if (!mine && this.opts.checkRegistry !== false)
      await checkRegionImage(this.config, t.region, this.spec.image);
    this.prepared = true;
    return { replicas: this.replicas, previousImage: this.previousImage };
  }

  private async ensurePrepared(): Promise<void> {
    if (!this.prepared) await this.prepare();
  }

  /**
   * Moves the batch to `pods` new pods without a dip: the next track grows by
   * at most `surge` pods, those pods must be Ready, and only then does the
   * stable track shrink by as many. Idempotent: a re-run reads how far the
   * next track got and goes on from there. When new pods do not become Ready
   * within the deadline (or crash), the old pods are left as they are and the
   * failure is returned for the gate's on-failure rule.
   */
  async applyBatch(pods: number, batchIndex: number, limits: BatchLimits = {}): Promise<GateResult> {
    await this.ensurePrepared();
    const total = this.replicas;
    const p = Math.max(0, Math.min(total, pods));
    // The HPA must not scale either track while pods move between them.
    // (read again: a re-run must see its own pause, not repeat it over the original behavior)
    const hpa = this.hpa && (await this.currentHpa());
    if (hpa) await pauseHpa(this.k, hpa, this.target.name);
    let tracks = await readTracks(this.k, this.target);
    if (this.newTrack === 'a' && tracks.adopted) tracks = await this.retireAdopted(tracks);
    const next = tracks[this.newTrack];
    const ours =
      ann(next, ANN.release) === this.spec.releaseId && ann(next, ANN.digest) === this.spec.image.digest;
    const current = ours ? Math.min(next?.spec?.replicas ?? 0, p) : 0;
    if (!this.oldExists) {
      // The app's first release: nothing to protect, grow straight to p.
      await this.applyNext(p, p >= total, batchIndex);
      const ready = await this.waitNewReady(p, limits);
      if (!ready.ok) return ready;
      await this.waitExact(p, 0);
      if (p >= total) await this.handHpaTo(this.newTrack);
      return { ok: true };
    }
    for (const { next: target, old } of surgeSteps(
      current,
      p,
      total,
      surgePods(this.workload.surge, total),
    )) {
      await this.applyNext(target, target >= total, batchIndex);
      const ready = await this.waitNewReady(target, limits);
      if (!ready.ok) return ready;
      await scaleTrack(this.k, this.target, other(this.newTrack), old, target >= total ? 'next' : 'stable');
      // Old pods being deleted are already out of the Service (not Ready) and
      // the next step counts only Ready new pods, so the steps inside a batch
      // do not wait for terminations; the batch's end does, exactly.
    }
    await this.waitExact(p, total - p);
    if (p >= total) await this.handHpaTo(this.newTrack);
    return { ok: true };
  }

  /** The rollout is over: the HPA scales the track that runs the app now, as before. */
  private async handHpaTo(track: Track): Promise<void> {
    const hpa = this.hpa && (await this.currentHpa());
    if (hpa) await resumeHpa(this.k, hpa, trackName(this.target, track));
  }

  private currentHpa() {
    return findHpa(this.k, this.target.namespace, [trackName(this.target, 'a'), trackName(this.target, 'b')]);
  }

  /**
   * The adopted Deployment handed all its pods to track b in an earlier
   * release and stayed at 0 as that release's rollback target; now track a is
   * needed again, so it goes (its selector cannot become Ferry's).
   */
  private async retireAdopted(tracks: Tracks): Promise<Tracks> {
    const t = this.target;
    const replicas = tracks.a?.spec?.replicas ?? 0;
    if (replicas > 0)
      throw new Error(
        `${t.region}: the adopted deployment ${t.namespace}/${t.name} still runs ${replicas} pods while ${trackName(t, 'b')} is stable; scale one of them to 0 first`,
      );
    await this.k.apps.deleteNamespacedDeployment({
      name: t.name,
      namespace: t.namespace,
      propagationPolicy: 'Background',
    });
    this.adopted = undefined;
    this.oldExists = !!tracks.b;
    const { a: _retired, adopted: _was, ...rest } = tracks;
    return rest;
  }

  private templateFor(track: Track, image: string, version: string): Record<string, unknown> {
    const w = { ...this.workload, labels: { ...this.serviceLabels, ...this.workload.labels } };
    return podTemplate(this.target, track, image, version, w);
  }

  private async applyNext(replicas: number, done: boolean, batchIndex: number): Promise<void> {
    const template = this.templateFor(this.newTrack, this.ref, this.spec.version);
    await applyDeployment(
      this.k,
      deploymentObject(this.target, this.newTrack, replicas, template, {
        [ANN.role]: done ? 'stable' : 'next',
        [ANN.release]: this.spec.releaseId,
        [ANN.version]: this.spec.version,
        [ANN.digest]: this.spec.image.digest,
        [ANN.image]: this.spec.image.image,
        [ANN.batch]: String(batchIndex),
        [ANN.replicas]: String(this.replicas),
        ...(Object.keys(this.serviceLabels).length
          ? { [ANN.serviceLabels]: JSON.stringify(this.serviceLabels) }
          : {}),
      }),
    );
  }

  /** Waits until `n` live pods run the new image and are Ready; a crash or the deadline ends the wait. */
  private async waitNewReady(n: number, limits: BatchLimits): Promise<GateResult> {
    const t = this.target;
    const deadlineMs = limits.deadlineMs ?? this.opts.applyTimeoutMs ?? 120_000;
    const until = Date.now() + deadlineMs;
    for (;;) {
      this.checkStopped();
      const pods = await this.pollPods();
      if (pods) {
        const fresh = pods.filter(
          (p) =>
            !isTerminating(p) &&
            p.metadata?.labels?.[LABEL_TRACK] === this.newTrack &&
            podImage(p, t.container) === this.ref,
        );
        for (const p of fresh) {
          const bad = this.hardFailure(p, limits.maxRestarts ?? Number.POSITIVE_INFINITY);
          if (bad) return { ok: false, reason: bad };
        }
        if (fresh.filter(isReady).length >= n) return { ok: true };
        if (Date.now() > until)
          return { ok: false, reason: await this.describeNotReady(fresh, n, deadlineMs) };
      } else if (Date.now() > until) {
        throw new Error(`${t.region}: the API server did not answer in time`);
      }
      await sleep(this.opts.pollMs ?? 300, this.signal);
    }
  }

  /**
   * The app's pods for a polling loop: undefined on a transient API failure
   * (connection refused or reset, 5xx, 429) so the loop tries again until its
   * own deadline, instead of failing the rollout on an API server restart.
   */
  private async pollPods(): Promise<V1Pod[] | undefined> {
    try {
      const own = await appPods(this.k, this.target);
      if (!this.adopted) return own;
      // the adopted Deployment's pods carry the team's labels, not Ferry's
      const selector = Object.entries(this.adopted)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const theirs = await this.k.core.listNamespacedPod({
        namespace: this.target.namespace,
        labelSelector: selector,
      });
      const seen = new Set(own.map((p) => p.metadata?.uid));
      return [...own, ...theirs.items.filter((p) => !seen.has(p.metadata?.uid))];
    } catch (err) {
      const code = statusOf(err);
      if (code !== undefined && code < 500 && code !== 429) throw err;
      return undefined;
    }
  }

  /** A pod of the adopted Deployment (playing the old track a). */
  private isAdoptedPod(p: V1Pod): boolean {
    return (
      !!this.adopted &&
      this.newTrack === 'b' &&
      !p.metadata?.labels?.[LABEL_TRACK] &&
      matches(p.metadata?.labels, this.adopted)
    );
  }

  /** Waits until exactly `fresh` pods of the new image and `old` pods of the old track exist, nothing else. */
  async waitExact(
    fresh: number,
    old: number,
    timeoutMs = this.opts.applyTimeoutMs ?? 120_000,
  ): Promise<void> {
    const t = this.target;
    const until = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      this.checkStopped();
      const pods = await this.pollPods();
      if (!pods) {
        if (Date.now() > until) throw new Error(`${t.region}: the API server did not answer in time`);
        await sleep(this.opts.pollMs ?? 300, this.signal);
        continue;
      }
      let nNew = 0;
      let nOld = 0;
      let stray = 0;
      let terminating = 0;
      for (const p of pods) {
        if (isTerminating(p)) {
          terminating++;
          continue;
        }
        const tr = p.metadata?.labels?.[LABEL_TRACK];
        if (tr === this.newTrack && podImage(p, t.container) === this.ref) nNew++;
        else if (tr === other(this.newTrack) || this.isAdoptedPod(p)) nOld++;
        else stray++;
      }
      if (nNew === fresh && nOld === old && stray === 0 && terminating === 0) return;
      last = `${nNew}/${fresh} new, ${nOld}/${old} old, ${stray} other, ${terminating} terminating`;
      if (Date.now() > until)
        throw new Error(
          `${t.region}: ${t.namespace}/${t.name} did not reach ${fresh} new + ${old} old pods in ${Math.round(timeoutMs / 1000)}s (${last})`,
        );
      await sleep(this.opts.pollMs ?? 300, this.signal);
    }
  }

  async prewarm(pods: number, opts: PrewarmOptions = {}): Promise<number> {
    await this.ensurePrepared();
    const t = this.target;
    const nodes = (await this.k.core.listNode({})).items.filter(
      (n) =>
        !n.spec?.unschedulable &&
        (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    const running = new Set((await appPods(this.k, t)).map((p) => p.spec?.nodeName).filter(Boolean));
    const ordered = [
      ...nodes.filter((n) => running.has(n.metadata?.name)),
      ...nodes.filter((n) => !running.has(n.metadata?.name)),
    ];
    const targets = ordered.slice(0, Math.max(1, Math.min(pods, ordered.length)));
    // node.status.images lags the node by up to a status period and is cut at
    // 50 images, so it is not trusted to skip a node: the pre-warm pod itself is
    // cheap when the image is present (IfNotPresent), and exact when it is not.
    const slot = limiter(opts.nodesAtOnce ?? targets.length);
    const purpose = opts.purpose ?? 'prewarm';
    await Promise.all(targets.map((n) => slot(() => this.prewarmNode(n.metadata?.name ?? '', purpose))));
    return targets.length;
  }

  /**
   * What a pull pod names: the region registry's reference, or for a
   * throttled pre-pull the same repository and digest through the pull relay
   * on the node's loopback (src/registry/pull-relay.ts). A batch's pre-warm
   * is never throttled: its pods are about to start.
   */
  pullReference(purpose: 'prewarm' | 'prepull'): string {
    const throttle = this.config.prePull.throttle;
    if (purpose !== 'prepull' || !throttle || !relayable(this.spec.region, this.spec.releaseId))
      return this.ref;
    return relayReference(
      throttle.relayPort,
      this.spec.region,
      this.spec.releaseId,
      parseReference(this.spec.image.image).repository,
      this.spec.image.digest,
    );
  }

  private async prewarmNode(node: string, purpose: 'prewarm' | 'prepull'): Promise<void> {
    const t = this.target;
    const image = this.pullReference(purpose);
    const name = `${t.name}-${purpose}-${createHash('sha256').update(`${node}\n${image}`).digest('hex').slice(0, 10)}`;
    const body: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: t.namespace,
        labels: { [LABEL_PREWARM]: t.name, [LABEL_MANAGED]: 'ferry' },
      },
      spec: {
        nodeName: node,
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
        automountServiceAccountToken: false,
        tolerations: [{ operator: 'Exists' }],
        containers: [
          {
            name: 'prewarm',
            image,
            imagePullPolicy: 'IfNotPresent',
            command: ['true'],
            resources: { requests: { cpu: '1m', memory: '4Mi' }, limits: { memory: '16Mi' } },
          },
        ],
      },
    };
    try {
      await this.k.core.createNamespacedPod({ namespace: t.namespace, body });
    } catch (err) {
      if ((err as { code?: number }).code !== 409)
        throw new Error(`${t.region}: pre-warm pod on ${node}: ${kubeErrorMessage(err)}`);
    }
    const until = Date.now() + (this.opts.prewarmTimeoutMs ?? 300_000);
    try {
      for (;;) {
        this.checkStopped();
        const p = await readOrUndefined(() =>
          this.k.core.readNamespacedPod({ name, namespace: t.namespace }),
        );
        const cs = p?.status?.containerStatuses?.[0];
        if (cs?.imageID || cs?.state?.running || cs?.state?.terminated) return;
        const waiting = cs?.state?.waiting;
        if (
          waiting?.reason === 'ErrImagePull' ||
          waiting?.reason === 'ImagePullBackOff' ||
          waiting?.reason === 'InvalidImageName'
        )
          throw new Error(
            `${t.region}: pre-warm on ${node} could not pull ${image}: ${waiting.reason} ${waiting.message ?? ''}`.trim(),
          );
        if (Date.now() > until)
          throw new Error(`${t.region}: pre-warm on ${node} did not pull ${image} in time`);
        await sleep(this.opts.pollMs ?? 300, this.signal);
      }
    } finally {
      await this.k.core
        .deleteNamespacedPod({ name, namespace: t.namespace, gracePeriodSeconds: 0 })
        .catch((err) => {
          if (!isNotFound(err)) throw err;
        });
    }
  }

  async gate(pods: number, pauseMs: number, maxRestarts: number, deadlineMs: number): Promise<GateResult> {
    await this.ensurePrepared();
    const t = this.target;
    const selector = `${LABEL_NAME}=${t.name},${LABEL_TRACK}=${this.newTrack}`;
    const lw = new ListWatch<V1Pod>({
      name: `${t.region}/pods/${t.namespace}/${selector}`,
      kc: this.k.kc,
      path: `/api/v1/namespaces/${t.namespace}/pods`,
      labelSelector: selector,
      relistMs: this.opts.watchRestartMs ?? 60_000,
      list: () => this.k.core.listNamespacedPod({ namespace: t.namespace, labelSelector: selector }),
    }).start();
    // Wait for the first list; a list that keeps failing leaves the pods unknown until the deadline.
    const listed = new AbortController();
    await Promise.race([
      lw.ready,
      sleep(deadlineMs, this.signal ? AbortSignal.any([this.signal, listed.signal]) : listed.signal),
    ]);
    listed.abort();
    try {
      const started = Date.now();
      let readyAt: number | undefined;
      for (;;) {
        this.checkStopped();
        const live = [...lw.items.values()].filter(
          (p) => !isTerminating(p) && podImage(p, t.container) === this.ref,
        );
        for (const p of live) {
          const bad = this.hardFailure(p, maxRestarts);
          if (bad) return { ok: false, reason: bad };
        }
        const allReady = live.length >= pods && live.every(isReady);
        if (readyAt === undefined) {
          if (allReady) readyAt = Date.now();
          else if (Date.now() - started > deadlineMs)
            return { ok: false, reason: await this.describeNotReady(live, pods, deadlineMs) };
        } else {
          if (!allReady) {
            const p = live.find((x) => !isReady(x));
            return {
              ok: false,
              reason: p
                ? `pod ${p.metadata?.name} stopped being Ready during the ${Math.round(pauseMs / 1000)}s pause: ${await this.podCondition(p)}`
                : `only ${live.length}/${pods} new pods left during the pause`,
            };
          }
          if (Date.now() - readyAt >= pauseMs) return { ok: true };
        }
        await sleep(Math.min(this.opts.pollMs ?? 300, 500), this.signal);
      }
    } finally {
      lw.stop();
    }
  }

  private hardFailure(p: V1Pod, maxRestarts: number): string | undefined {
    const cs = containerStatus(p, this.target.container);
    if (!cs) return undefined;
    const name = p.metadata?.name;
    const oom =
      cs.lastState?.terminated?.reason === 'OOMKilled' || cs.state?.terminated?.reason === 'OOMKilled';
    if (oom)
      return `pod ${name} was OOMKilled (memory limit ${this.workload.resources.limits.memory ?? 'none'}, ${cs.restartCount} restarts)`;
    if (cs.restartCount > maxRestarts) {
      const last = cs.lastState?.terminated;
      return `pod ${name} restarted ${cs.restartCount} times (limit ${maxRestarts})${last ? `; last exit ${last.exitCode} ${last.reason ?? ''}`.trimEnd() : ''}${cs.state?.waiting?.reason ? `, now ${cs.state.waiting.reason}` : ''}`;
    }
    return undefined;
  }

  private async podCondition(p: V1Pod): Promise<string> {
    const cs = containerStatus(p, this.target.container);
    const waiting = cs?.state?.waiting;
    if (waiting?.reason && waiting.reason !== 'ContainerCreating')
      return `${waiting.reason}${waiting.message ? ` (${waiting.message.slice(0, 200)})` : ''}`;
    const sched = (p.status?.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status !== 'True');
    if (p.status?.phase === 'Pending' && sched)
      return `Pending, not scheduled: ${sched.message ?? sched.reason ?? ''}`;
    // Still creating, or running but not Ready: the kubelet's events say why
    // (probe failures, sandbox or mount errors).
    const prefix = waiting?.reason ? `${waiting.reason}; ` : '';
    try {
      const ev = await this.k.core.listNamespacedEvent({
        namespace: this.target.namespace,
        fieldSelector: `involvedObject.name=${p.metadata?.name}`,
      });
      const warning = ev.items
        .filter((e) => e.type === 'Warning' && e.reason !== 'MissingClusterDNS')
        .sort((x, y) =>
          String(x.lastTimestamp ?? x.eventTime ?? '').localeCompare(
            String(y.lastTimestamp ?? y.eventTime ?? ''),
          ),
        )
        .pop();
      if (warning) return `${prefix}${warning.reason}: ${(warning.message ?? '').trim().slice(0, 240)}`;
    } catch {
      // events are an extra; the condition below still says something
    }
    if (waiting?.reason) return waiting.reason;
    const ready = (p.status?.conditions ?? []).find((c) => c.type === 'Ready');
    return `Ready=${ready?.status ?? 'Unknown'}${ready?.reason ? ` (${ready.reason}${ready.message ? `: ${ready.message}` : ''})` : ''}`;
  }

  private async describeNotReady(live: V1Pod[], pods: number, deadlineMs: number): Promise<string> {
    const secs = Math.round(deadlineMs / 1000);
    const p = live.find((x) => !isReady(x));
    if (!p) return `only ${live.length}/${pods} new pods exist after ${secs}s`;
    const others = live.filter((x) => !isReady(x)).length - 1;
    return `pod ${p.metadata?.name} not Ready after ${secs}s: ${await this.podCondition(p)}${others > 0 ? ` (and ${others} more)` : ''}`;
  }

  async rollback(): Promise<void> {
    await this.ensurePrepared();
    const t = this.target;
    const total = this.replicas;
    const tracks = await readTracks(this.k, t);
    const prev = this.previousImage;
    if (prev === null) {
      // The app did not exist before this release: back to nothing.
      if (tracks[this.newTrack]) await scaleTrack(this.k, t, this.newTrack, 0, 'next');
      await this.waitGone();
      return;
    }
    const holder =
      (['a', 'b'] as const).find(
        (tr) => tr !== this.newTrack && trackImage(tracks[tr], t.container) === prev,
      ) ?? (['a', 'b'] as const).find((tr) => trackImage(tracks[tr], t.container) === prev);
    // The previous image's pods come back (and are Ready) before the new
    // ones go: a rollback must not dip below the replica count either.
    const until = Date.now() + (this.opts.applyTimeoutMs ?? 120_000);
    let leaving: Track;
    if (holder) {
      await scaleTrack(this.k, t, holder, total, 'stable');
      leaving = other(holder);
    } else {
      // Nobody runs the previous image any more: put it on the old track.
      const old = other(this.newTrack);
      const version = ann(tracks[old], ANN.version) ?? 'previous';
      await applyDeployment(
        this.k,
        deploymentObject(t, old, total, this.templateFor(old, prev, version), {
          [ANN.role]: 'stable',
        }),
      );
      leaving = this.newTrack;
    }
    for (;;) {
      this.checkStopped();
      const all = await this.pollPods();
      const ready = (all ?? []).filter(
        (p) => !isTerminating(p) && isReady(p) && podImage(p, t.container) === prev,
      );
      if (ready.length >= total) break;
      if (Date.now() > until)
        throw new Error(
          `${t.region}: rollback could not bring ${total} Ready pods back on ${prev} in time (${ready.length}/${total} Ready); the new pods were left running`,
        );
      await sleep(this.opts.pollMs ?? 300, this.signal);
    }
    if (tracks[leaving]) await scaleTrack(this.k, t, leaving, 0, 'next');
    await this.handHpaTo(other(leaving));
    for (;;) {
      this.checkStopped();
      const all = await this.pollPods();
      if (!all) {
        if (Date.now() > until) throw new Error(`${t.region}: the API server did not answer in time`);
        await sleep(this.opts.pollMs ?? 300, this.signal);
        continue;
      }
      const pods = all.filter((p) => !isTerminating(p));
      const onPrev = pods.filter((p) => podImage(p, t.container) === prev);
      if (onPrev.length === total && pods.length === total && all.length === total) return;
      if (Date.now() > until)
        throw new Error(
          `${t.region}: rollback did not bring ${total} pods back on ${prev} in time (${onPrev.length}/${total})`,
        );
      await sleep(this.opts.pollMs ?? 300, this.signal);
    }
  }

  private async waitGone(): Promise<void> {
    const until = Date.now() + (this.opts.applyTimeoutMs ?? 120_000);
    for (;;) {
      const pods = await this.pollPods();
      if (pods && !pods.some((p) => !isTerminating(p))) return;
      if (Date.now() > until)
        throw new Error(`${this.target.region}: pods of ${this.target.name} did not go away in time`);
      await sleep(this.opts.pollMs ?? 300, this.signal);
    }
  }
}

/** Every live pod of the app runs `digest` and is Ready. */
export async function verifyRegion(
  k: KubeClients,
  t: AppTarget,
  ref: string,
  digest: string,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let pods: V1Pod[];
  try {
    pods = (await appPods(k, t)).filter((p) => !isTerminating(p));
  } catch (err) {
    return { ok: false, reason: `cannot list pods of ${t.namespace}/${t.name}: ${kubeErrorMessage(err)}` };
  }
  if (pods.length === 0) return { ok: false, reason: `no pods of ${t.namespace}/${t.name}` };
  for (const p of pods) {
    const img = podImage(p, t.container);
    const id = containerStatus(p, t.container)?.imageID ?? '';
    if (img !== ref && !id.endsWith(digest))
      return { ok: false, reason: `pod ${p.metadata?.name} runs ${img}, not ${digest.slice(0, 19)}…` };
    if (id && !id.endsWith(digest))
      return { ok: false, reason: `pod ${p.metadata?.name} runs image ${id}, not ${digest.slice(0, 19)}…` };
    if (!isReady(p)) return { ok: false, reason: `pod ${p.metadata?.name} is not Ready` };
  }
  return { ok: true };
}
