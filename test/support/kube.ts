// Helpers for the Kubernetes rollout tests: a config with a test app in a
// test namespace, sample images in the region registries, pod counts per
// image, releases stored straight into the deploy step, and a child-process
// deploy worker that a test can SIGKILL mid-rollout.
//
//   node test/support/kube.ts deploy <releaseId>   (env: FERRY_TEST_CONFIG, FERRY_TEST_PREFIX, REDIS_URL)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deployJob } from '../../jobs/deploy.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { planRelease } from '../../src/domain/plan.ts';
import type { BuiltImage, RegionRollout, StepRunners } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { kubeRunners } from '../../src/runners/deploy.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { exampleConfig } from './config.ts';
import { kubectl, kubectlJson, loadInfo, type Region, run, waitFor } from './infra.ts';

export const TEST_APP = 'hello';
export const TEST_ENV = 'kt';

export interface KubeTestConfigOptions {
  regions?: Region[];
  batches?: { size: string; pause?: string; manualPromotion?: boolean }[];
  pause?: string;
  deadline?: string;
  prewarm?: boolean;
  onFailure?: 'rollback' | 'wait';
  order?: 'sequential' | 'parallel';
}

/** The example config plus app `hello` (namespace `ns`) and environment `kt` with the given plan. */
export function kubeTestConfig(ns: string, o: KubeTestConfigOptions = {}): FerryConfig {
  const c = exampleConfig();
  // No pull relay runs beside these tests: their pull pods name the region registry (a test that
  // throttles starts its relay and sets prePull.throttle itself).
  const { throttle: _relayed, ...unthrottled } = c.prePull;
  c.prePull = unthrottled;
  c.environments[TEST_ENV] = {
    description: 'Kubernetes rollout tests',
    regions: o.regions ?? ['eu-west'],
    tail: { packages: [], files: [], env: { FERRY_ENV: TEST_ENV }, run: [], instructions: [] },
    releaseWindows: [],
    plan: {
      approvals: { required: 0 },
      batches: o.batches ?? [{ size: '1' }, { size: '50%' }, { size: '100%' }],
      gate: {
        pause: o.pause ?? '1s',
        maxRestarts: 0,
        onFailure: o.onFailure ?? 'rollback',
        progressDeadline: o.deadline ?? '90s',
      },
      skip: { prewarm: !(o.prewarm ?? false) },
      regions: { order: o.order ?? 'sequential', continueOnFailure: false },
    },
  };
  c.apps[TEST_APP] = {
    repo: '/dev/null',
    dockerfile: 'Dockerfile',
    stack: 'shell',
    owners: ['payments-devs'],
    channels: { releases: 'C_RELEASES', alerts: 'C_PAY_ALERTS' },
    defaultEnvironment: TEST_ENV,
    namespace: ns,
    deployment: TEST_APP,
    container: TEST_APP,
    logFiles: {},
  };
  c.rules.push({
    groups: ['payments-devs'],
    apps: [TEST_APP],
    environments: ['*'],
    actions: ['request', 'pause', 'resume', 'abort', 'rollback', 'logs', 'sync', 'silence', 'adopt'],
  });
  return c;
}

const copied = new Map<string, Promise<BuiltImage>>();

/** The sample app's `tag` from the primary registry, copied (same digest) to the regions' registries. */
export function sampleImage(
  tag: string,
  regions: readonly Region[] = ['eu-west', 'us-east'],
): Promise<BuiltImage> {
  const key = `${tag}:${[...regions].sort().join(',')}`;
  let p = copied.get(key);
  if (!p) {
    p = (async () => {
      const info = loadInfo();
      const image = `${info.images.sampleApp.image}:${tag}`;
      const digest = await manifestDigest(`http://${info.registries.primary}`, 'ferry/hello-app', tag);
      for (const r of regions) {
        const host = info.registries.regions[r];
        const have = await manifestDigest(`http://${host}`, 'ferry/hello-app', digest).catch(() => undefined);
        if (have === digest) continue;
        await run(
          'skopeo',
          [
            'copy',
            '-q',
            '--preserve-digests',
            '--src-tls-verify=false',
            '--dest-tls-verify=false',
            `docker://${image}`,
            `docker://${host}/ferry/hello-app:${tag}`,
          ],
          { timeoutMs: 300_000 },
        );
        const got = await manifestDigest(`http://${host}`, 'ferry/hello-app', tag);
        if (got !== digest) throw new Error(`copy to ${r} changed the digest: ${digest} → ${got}`);
      }
      return { image, digest, cached: true };
    })();
    copied.set(key, p);
    p.catch(() => copied.delete(key));
  }
  return p;
}

export async function manifestDigest(base: string, repo: string, ref: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, {
    method: 'HEAD',
    headers: {
      accept:
        'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json',
    },
  });
  const d = res.headers.get('docker-content-digest');
  if (!res.ok || !d) throw new Error(`${base}/${repo}:${ref}: HTTP ${res.status}`);
  return d;
}

export interface PodCount {
  /** live pods per image reference (spec) */
  byImage: Record<string, number>;
  /** live pods per image digest actually running (status.imageID), when started */
  byImageID: Record<string, number>;
  terminating: number;
  uids: Record<string, string[]>;
}

interface PodJson {
  metadata: { uid: string; name: string; deletionTimestamp?: string };
  spec: { containers: { image: string }[] };
  status: { phase?: string; containerStatuses?: { imageID?: string }[] };
}

/** Counts the app's pods per image with kubectl, independently of Ferry's code. */
export async function countPods(region: Region, ns: string, name = TEST_APP): Promise<PodCount> {
  const out = JSON.parse(
    await kubectl(region, ['-n', ns, 'get', 'pods', '-l', `app.kubernetes.io/name=${name}`, '-o', 'json']),
  ) as { items: PodJson[] };
  const c: PodCount = { byImage: {}, byImageID: {}, terminating: 0, uids: {} };
  for (const p of out.items) {
    if (p.metadata.deletionTimestamp || p.status.phase === 'Succeeded' || p.status.phase === 'Failed') {
      c.terminating++;
      continue;
    }
    const img = p.spec.containers[0]?.image ?? '?';
    c.byImage[img] = (c.byImage[img] ?? 0) + 1;
    c.uids[img] = [...(c.uids[img] ?? []), p.metadata.uid];
    const id = p.status.containerStatuses?.[0]?.imageID;
    if (id) {
      const digest = id.slice(id.indexOf('sha256:'));
      c.byImageID[digest] = (c.byImageID[digest] ?? 0) + 1;
    }
  }
  return c;
}

/** The region's pull reference of a sample image. */
export function regionRef(region: Region, img: BuiltImage): string {
  const info = loadInfo();
  return `${info.registries.regions[region]}/ferry/hello-app@${img.digest}`;
}

/** Stores a release of `app` `version` ready for the deploy step (state syncing), with its image recorded. */
export async function deployableRelease(
  rt: Runtime,
  version: string,
  image: BuiltImage,
  app = TEST_APP,
  env = TEST_ENV,
): Promise<Release> {
  const config = rt.config();
  const planned = planRelease({ app, version, environment: env, factors: [] }, config);
  if (!planned.ok) throw new Error(planned.error.message);
  const now = Date.now();
  const release: Release = {
    id: await rt.releases.nextId(),
    app,
    version,
    environment: env,
    regions: planned.plan.regions.value,
    factors: [],
    plan: planned.plan,
    requestedBy: 'U_ALICE',
    requestedAt: now,
    state: 'syncing',
    stateSince: now,
    approvals: [],
    rev: 1,
  };
  await rt.versions.recordImage(app, version, env, {
    image: image.image,
    digest: image.digest,
    builtAt: now,
  });
  await rt.releases.create(release, 'U_ALICE');
  return release;
}

/** Step runners for deploy tests: kube rollout/verify; build/sync refuse (the tests never run them). */
export function testRunners(config: FerryConfig, wrap?: (r: RegionRollout, region: string) => RegionRollout) {
  const kube = kubeRunners(config, { defaultReplicas: 4, pollMs: 250 });
  const runners: StepRunners = {
    build: async () => {
      throw new Error('no build in deploy tests');
    },
    sync: async () => {
      throw new Error('no sync in deploy tests');
    },
    rollout: async (release, region, image, io) => {
      const r = await kube.rollout(release, region, image, io);
      return wrap ? wrap(r, region) : r;
    },
    verify: (release, region, image, io) => kube.verify(release, region, image, io),
  };
  return { kube, runners };
}

/** A RegionRollout that calls hooks around applyBatch (all methods bound to the original). */
export function tapRollout(
  r: RegionRollout,
  hooks: {
    beforeApply?: (pods: number, batch: number) => unknown;
    afterApply?: (pods: number, batch: number) => unknown;
  },
): RegionRollout {
  return {
    prepare: () => r.prepare(),
    applyBatch: async (pods, batch, limits) => {
      await hooks.beforeApply?.(pods, batch);
      const placed = await r.applyBatch(pods, batch, limits);
      await hooks.afterApply?.(pods, batch);
      return placed;
    },
    ...(r.prewarm ? { prewarm: r.prewarm.bind(r) } : {}),
    gate: (pods, pauseMs, maxRestarts, deadlineMs) => r.gate(pods, pauseMs, maxRestarts, deadlineMs),
    rollback: () => r.rollback(),
  };
}

// Child-process deploy worker: runs the deploy job of one release until it ends or is killed.
async function childMain(args: string[]): Promise<void> {
  const [cmd, releaseId] = args;
  if (cmd !== 'deploy' || !releaseId) throw new Error('usage: node test/support/kube.ts deploy <releaseId>');
  loadInfo();
  const config = JSON.parse(readFileSync(process.env.FERRY_TEST_CONFIG as string, 'utf8')) as FerryConfig;
  const rt = createRuntime({ config, prefix: process.env.FERRY_TEST_PREFIX as string, name: 'deploy-child' });
  const { runners } = testRunners(config, (r, region) =>
    tapRollout(r, {
      beforeApply: (pods, batch) =>
        console.log(JSON.stringify({ event: 'apply-start', region, pods, batch })),
      afterApply: (pods, batch) => console.log(JSON.stringify({ event: 'applied', region, pods, batch })),
    }),
  );
  const ac = new AbortController();
  const out = await deployJob({ releaseId, step: 'deploy' }, jobContext(rt, runners, 200), ac.signal);
  console.log(JSON.stringify({ event: 'done', out }));
  await rt.close();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  childMain(process.argv.slice(2)).then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** The name of a Running, not-unready pod labelled `app=<app>` in eu-west's `namespace`, once there is one. */
export async function runningPod(namespace: string, app: string): Promise<string> {
  return waitFor(
    async () => {
      const pods = await kubectlJson<{
        items: {
          metadata: { name: string };
          status: { phase: string; containerStatuses?: { ready: boolean }[] };
        }[];
      }>('eu-west', ['-n', namespace, 'get', 'pods', '-l', `app=${app}`]);
      return pods.items.find(
        (x) => x.status.phase === 'Running' && x.status.containerStatuses?.[0]?.ready !== false,
      )?.metadata.name;
    },
    { timeoutMs: 180_000, intervalMs: 1000, what: `a running pod of ${app}` },
  );
}
