// Real apps on the real clusters: environments kept apart, no capacity dip
// during batches, and the pod spec taken from the config. What the pods do is
// read with kubectl and with the plain Kubernetes client, not with Ferry's
// rollout code.
import { randomUUID } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleText } from '../../commands/handle.ts';
import { deployJob } from '../../jobs/deploy.ts';
import type { FerryConfig, WorkloadConfig } from '../../src/domain/config.ts';
import type { BuiltImage } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { KubeRollout } from '../../src/kube/rollout.ts';
import { clusterReleaseId } from '../../src/runners/deploy.ts';
import { commandServices, createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import {
  ensureInfra,
  infra,
  kubectl,
  kubectlJson,
  newNamespace,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';
import {
  countPods,
  deployableRelease,
  kubeTestConfig,
  sampleImage,
  TEST_APP,
  testRunners,
} from '../support/kube.ts';

let redisUrl: string;
let v1: BuiltImage;
let v2: BuiltImage;
const namespaces: TestNamespace[] = [];
const runtimes: Runtime[] = [];

beforeAll(async () => {
  const info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  redisUrl = info.redis.url;
  v1 = await sampleImage('v1', ['eu-west']);
  v2 = await sampleImage('v2', ['eu-west']);
}, 1_800_000);

afterAll(async () => {
  for (const rt of runtimes) await rt.close();
  for (const ns of namespaces) await ns.remove().catch(() => {});
});

async function namespace(prefix: string): Promise<string> {
  const ns = await newNamespace('eu-west', prefix);
  namespaces.push(ns);
  return ns.name;
}

function runtime(config: FerryConfig): Runtime {
  const rt = createRuntime({
    config,
    redisUrl,
    prefix: `wl${randomUUID().slice(0, 8)}`,
    name: 'workload-test',
  });
  runtimes.push(rt);
  return rt;
}

/** The test config with a second environment `ktprod` in the same region, and the default name pattern. */
function twoEnvironments(ns: string, workload?: WorkloadConfig): FerryConfig {
  const c = kubeTestConfig(ns, { batches: [{ size: '1' }, { size: '50%' }, { size: '100%' }] });
  c.environments.ktprod = structuredClone(c.environments.kt as FerryConfig['environments'][string]);
  const app = c.apps[TEST_APP] as FerryConfig['apps'][string];
  delete app.deployment; // the default pattern, {app}-{env}
  if (workload) app.workload = workload;
  return c;
}

async function deploy(rt: Runtime, version: string, image: BuiltImage, env: string): Promise<Release> {
  const { runners } = testRunners(rt.config());
  const release = await deployableRelease(rt, version, image, TEST_APP, env);
  const out = await deployJob(
    { releaseId: release.id, step: 'deploy' },
    jobContext(rt, runners, 200),
    new AbortController().signal,
  ).catch((e: Error) => e);
  if (out instanceof Error) throw out;
  const after = (await rt.releases.get(release.id)) as Release;
  if (after.state === 'deploying') {
    await rt.lifecycle.report(release.id, { type: 'step', to: 'verifying' });
    await rt.lifecycle.report(release.id, { type: 'succeed' });
  }
  return after;
}

const ref = (img: BuiltImage) => `${infra().registries.regions['eu-west']}/ferry/hello-app@${img.digest}`;

describe('environments kept apart', () => {
  it('test and prod in one region are two Deployments: a test release and its rollback never move a prod pod', async () => {
    const ns = await namespace('wl-apart');
    const config = twoEnvironments(ns, { replicas: 2 });
    const rt = runtime(config);
    await deploy(rt, 'v1', v1, 'ktprod');
    const prodBefore = await countPods('eu-west', ns, 'hello-ktprod');
    expect(prodBefore.byImage).toEqual({ [ref(v1)]: 2 });

    await deploy(rt, 'v1', v1, 'kt');
    const test = await deploy(rt, 'v2', v2, 'kt');
    expect(test.state).not.toBe('failed');
    expect((await countPods('eu-west', ns, 'hello-kt')).byImage).toEqual({ [ref(v2)]: 2 });

    // The test environment rolls back to v1 ...
    const { kube } = testRunners(config);
    const back = new KubeRollout(
      kube.clients('eu-west'),
      config,
      {
        releaseId: clusterReleaseId(test),
        app: TEST_APP,
        environment: 'kt',
        version: 'v2',
        region: 'eu-west',
        image: v2,
      },
      { pollMs: 250 },
    );
    await back.rollback();
    expect((await countPods('eu-west', ns, 'hello-kt')).byImage).toEqual({ [ref(v1)]: 2 });

    // ... and prod's pods are the very same pods, on v1, all along.
    const prodAfter = await countPods('eu-west', ns, 'hello-ktprod');
    expect(prodAfter.uids).toEqual(prodBefore.uids);
    const names = (await kubectl('eu-west', ['-n', ns, 'get', 'deploy', '-o', 'name']))
      .trim()
      .split('\n')
      .sort();
    expect(names).toEqual([
      'deployment.apps/hello-kt',
      'deployment.apps/hello-kt-b',
      'deployment.apps/hello-ktprod',
    ]);
  }, 600_000);

  it("refuses to drive another environment's Deployment, even when a config names it", async () => {
    const ns = await namespace('wl-shared');
    const config = twoEnvironments(ns, { replicas: 2 });
    const rt = runtime(config);
    await deploy(rt, 'v1', v1, 'ktprod');
    const before = await countPods('eu-west', ns, 'hello-ktprod');
    // a config that (wrongly) points test at prod's Deployment
    const app = config.apps[TEST_APP] as FerryConfig['apps'][string];
    app.environments = { kt: { deployment: 'hello-ktprod' } };
    const err = await deploy(rt, 'v2', v2, 'kt').catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toContain('belongs to environment ktprod');
    expect((await countPods('eu-west', ns, 'hello-ktprod')).uids).toEqual(before.uids);
  }, 600_000);
});

describe('no capacity dip', () => {
  it('a version that is Ready 20 s after start: ready pods never fall below the replica count', async () => {
    const ns = await namespace('wl-dip');
    const replicas = 4;
    const config = twoEnvironments(ns, {
      replicas,
      surge: '1',
      probes: {
        readiness: { httpGet: { path: '/ready', port: 8080 }, initialDelaySeconds: 20, periodSeconds: 1 },
      },
    });
    const rt = runtime(config);
    await deploy(rt, 'v1', v1, 'kt');

    // Sample the app's pods every 300 ms with the plain client, for the whole v2 rollout.
    const kc = new KubeConfig();
    kc.loadFromFile(infra().kubernetes.kubeconfig);
    kc.setCurrentContext('eu-west');
    const core = kc.makeApiClient(CoreV1Api);
    const samples: { ready: number; live: number; newReady: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const pods = await core.listNamespacedPod({
          namespace: ns,
          labelSelector: 'app.kubernetes.io/name=hello-kt',
        });
        const live = pods.items.filter((p) => !p.metadata?.deletionTimestamp);
        const ready = pods.items.filter((p) =>
          (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        samples.push({
          ready: ready.length,
          live: live.length,
          newReady: ready.filter((p) => p.spec?.containers[0]?.image === ref(v2)).length,
        });
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const t0 = Date.now();
    const release = await deploy(rt, 'v2', v2, 'kt').finally(() => {
      sampling = false;
    });
    await sampler;
    expect(release.state).not.toBe('failed');
    expect((await countPods('eu-west', ns, 'hello-kt')).byImage).toEqual({ [ref(v2)]: replicas });
    // the samples cover the rollout: it took at least 4 readiness delays (1 + 1 + 2 new pods, one at a time)
    expect(Date.now() - t0).toBeGreaterThan(4 * 20_000);
    expect(samples.length).toBeGreaterThan(100);
    expect(Math.min(...samples.map((s) => s.ready))).toBe(replicas);
    // surge 1: never more than one pod beyond the replica count
    expect(Math.max(...samples.map((s) => s.live))).toBeLessThanOrEqual(replicas + 1);
    // and the samples saw the switch happen, not just the end state
    expect(samples.some((s) => s.newReady > 0 && s.newReady < replicas)).toBe(true);
  }, 900_000);
});

describe('the workload from config', () => {
  it('puts resources, probes, env from a Secret, volumes, labels and the derived -Xmx on the pods', async () => {
    const ns = await namespace('wl-spec');
    await kubectl('eu-west', [
      '-n',
      ns,
      'create',
      'secret',
      'generic',
      'hello-db',
      '--from-literal=password=s3cr3t-from-k8s',
    ]);
    await kubectl('eu-west', [
      '-n',
      ns,
      'create',
      'configmap',
      'hello-settings',
      '--from-literal=FEATURE_X=on',
    ]);
    const config = twoEnvironments(ns, {
      replicas: 1,
      resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
      env: {
        JAVA_OPTS: '-Xmx{memoryLimitMiB:75%}m',
        LOG_DIR: '/usr/local/tomcat/logs',
        DB_PASSWORD: { secret: 'hello-db', key: 'password' },
      },
      envFrom: [{ configMap: 'hello-settings' }],
      volumes: [{ name: 'tomcat-logs', mountPath: '/usr/local/tomcat/logs', emptyDir: {} }],
      probes: {
        startup: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 1, failureThreshold: 60 },
        liveness: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 5 },
      },
      terminationGracePeriodSeconds: 17,
      labels: { team: 'payments' },
      annotations: { 'prometheus.io/scrape': 'true' },
    });
    const app = config.apps[TEST_APP] as FerryConfig['apps'][string];
    app.environments = { ktprod: { workload: { resources: { limits: { memory: '512Mi' } } } } };
    const rt = runtime(config);
    await deploy(rt, 'v2', v2, 'kt');

    type Pod = {
      metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        containers: {
          resources: unknown;
          startupProbe?: unknown;
          livenessProbe?: unknown;
          volumeMounts: { mountPath: string }[];
        }[];
      };
    };
    const pods = await kubectlJson<{ items: Pod[] }>('eu-west', [
      '-n',
      ns,
      'get',
      'pods',
      '-l',
      'app.kubernetes.io/name=hello-kt',
    ]);
    expect(pods.items).toHaveLength(1);
    const pod = pods.items[0] as Pod;
    const c = pod.spec.containers[0] as Pod['spec']['containers'][number];
    expect(c.resources).toEqual({ requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } });
    expect(c.startupProbe).toMatchObject({ httpGet: { path: '/ready', port: 8080 }, failureThreshold: 60 });
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 8080 } });
    expect(c.volumeMounts.map((m) => m.mountPath)).toContain('/usr/local/tomcat/logs');
    expect(pod.spec.terminationGracePeriodSeconds).toBe(17);
    expect(pod.metadata.labels).toMatchObject({ team: 'payments', 'ferry.dev/environment': 'kt' });
    expect(pod.metadata.annotations['prometheus.io/scrape']).toBe('true');

    // Inside the container: the Secret's value, the ConfigMap's keys, -Xmx from the 256Mi limit, logs in the volume.
    const sh = (cmd: string) =>
      kubectl('eu-west', ['-n', ns, 'exec', pod.metadata.name, '--', 'sh', '-c', cmd]);
    expect((await sh('echo "$DB_PASSWORD|$FEATURE_X|$JAVA_OPTS"')).trim()).toBe(
      's3cr3t-from-k8s|on|-Xmx192m',
    );
    expect(await sh('ls /usr/local/tomcat/logs')).toMatch(/\S/);
  }, 600_000);
});

describe('adopting an existing Deployment', () => {
  it('takes over a kubectl-made Deployment without a restart, then releases v2 without a dip', async () => {
    const ns = await namespace('wl-adopt');
    const replicas = 4;
    await kubectl('eu-west', [
      '-n',
      ns,
      'create',
      'deployment',
      TEST_APP,
      `--image=${ref(v1)}`,
      `--replicas=${replicas}`,
      '--port=8080',
    ]);
    await kubectl('eu-west', ['-n', ns, 'rollout', 'status', `deployment/${TEST_APP}`, '--timeout=180s'], {
      timeoutMs: 200_000,
    });
    type Deploy = {
      metadata: { generation: number; annotations?: Record<string, string> };
      spec: { replicas: number };
    };
    const podsBefore = await teamPods(ns);
    const rsBefore = await replicaSets(ns);
    expect(podsBefore.ready).toBe(replicas);

    // kubeTestConfig names the Deployment "hello", as the team did
    const config = kubeTestConfig(ns, { batches: [{ size: '1' }, { size: '50%' }, { size: '100%' }] });
    const rt = runtime(config);
    const services = await commandServices(rt);
    const alice = { userId: 'U_ALICE', channel: 'C_RELEASES' };

    // Before adoption a release is refused, and says how to adopt.
    const refused = await deploy(rt, 'v2', v2, 'kt').catch((e: Error) => e);
    expect(String(refused)).toContain(`/release adopt ${TEST_APP} to kt`);
    // the worker fails a release whose step throws; it changed nothing, so it frees the lock
    for (const r of await rt.releases.active())
      await rt.lifecycle.report(r.id, { type: 'fail', reason: String(refused) });

    const dry = await handleText(`/release adopt ${TEST_APP} to kt`, alice, services);
    expect(dry.text).not.toMatch(/may not|in flight|Nothing to adopt/);
    expect(dry.ok).toBe(true);
    expect(dry.text).toContain(`${replicas} replicas`);
    expect(dry.text).toContain('no pod restarts');
    expect(dry.text).toContain(`/release adopt ${TEST_APP} to kt confirm`);
    const afterDry = await kubectlJson<Deploy>('eu-west', ['-n', ns, 'get', 'deployment', TEST_APP]);
    expect(afterDry.metadata.annotations?.['ferry.dev/adopted']).toBeUndefined();

    const done = await handleText(`/release adopt ${TEST_APP} to kt confirm`, alice, services);
    expect(done).toMatchObject({ ok: true, visibility: 'channel' });
    const adopted = await kubectlJson<Deploy>('eu-west', ['-n', ns, 'get', 'deployment', TEST_APP]);
    // metadata only: no new ReplicaSet (the pod template is untouched), and the very same pods run
    expect(await replicaSets(ns)).toEqual(rsBefore);
    expect(adopted.metadata.annotations?.['ferry.dev/adopted']).toBe('true');
    expect((await teamPods(ns)).uids).toEqual(podsBefore.uids);

    // v2 through Ferry, sampling what the team's Service would select (app=hello) all along.
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push((await teamPods(ns)).ready);
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const release = await deploy(rt, 'v2', v2, 'kt').finally(() => {
      sampling = false;
    });
    await sampler;
    expect(release.state).not.toBe('failed');
    expect(samples.length).toBeGreaterThan(10);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(replicas);
    const end = await teamPods(ns);
    expect(end.images).toEqual({ [ref(v2)]: replicas });
    const old = await kubectlJson<Deploy>('eu-west', ['-n', ns, 'get', 'deployment', TEST_APP]);
    expect(old.spec.replicas).toBe(0);

    // The release after retires the adopted Deployment: track a is Ferry's own again.
    await deploy(rt, 'v1', v1, 'kt');
    const a = await kubectlJson<{ spec: { selector: { matchLabels: Record<string, string> } } }>('eu-west', [
      '-n',
      ns,
      'get',
      'deployment',
      TEST_APP,
    ]);
    expect(a.spec.selector.matchLabels['ferry.dev/track']).toBe('a');
    expect((await teamPods(ns)).images).toEqual({ [ref(v1)]: replicas });
  }, 900_000);
});

async function replicaSets(ns: string): Promise<string[]> {
  return (await kubectl('eu-west', ['-n', ns, 'get', 'rs', '-l', `app=${TEST_APP}`, '-o', 'name']))
    .trim()
    .split('\n')
    .sort();
}

/** The pods a Service selecting the team's own label (app=hello) would see. */
async function teamPods(
  ns: string,
): Promise<{ ready: number; uids: string[]; images: Record<string, number> }> {
  type P = {
    metadata: { uid: string; deletionTimestamp?: string };
    spec: { containers: { image: string }[] };
    status: { conditions?: { type: string; status: string }[] };
  };
  const list = await kubectlJson<{ items: P[] }>('eu-west', [
    '-n',
    ns,
    'get',
    'pods',
    '-l',
    `app=${TEST_APP}`,
  ]);
  const live = list.items.filter((p) => !p.metadata.deletionTimestamp);
  const images: Record<string, number> = {};
  for (const p of live) {
    const img = p.spec.containers[0]?.image ?? '?';
    images[img] = (images[img] ?? 0) + 1;
  }
  return {
    ready: live.filter((p) =>
      (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    ).length,
    uids: live.map((p) => p.metadata.uid).sort(),
    images,
  };
}

describe('an app under a HorizontalPodAutoscaler', () => {
  it('takes its total from the HPA, never fights it while pods move, and hands it the new track', async () => {
    const ns = await namespace('wl-hpa');
    const config = twoEnvironments(ns, { replicas: 2 });
    const rt = runtime(config);
    await deploy(rt, 'v1', v1, 'kt');
    // A real HPA on the running track; its controller raises the app to its minimum of 3.
    await kubectl('eu-west', [
      '-n',
      ns,
      'autoscale',
      'deployment',
      'hello-kt',
      '--min=3',
      '--max=5',
      '--cpu-percent=80',
    ]);
    type Dep = { spec: { replicas: number } };
    const replicasOf = async (name: string) =>
      (await kubectlJson<Dep>('eu-west', ['-n', ns, 'get', 'deployment', name])).spec.replicas;
    await waitFor(async () => (await replicasOf('hello-kt')) === 3 || undefined, {
      timeoutMs: 120_000,
      what: 'the HPA controller scaling hello-kt to its minimum',
    });
    await waitFor(
      async () => (await countPods('eu-west', ns, 'hello-kt')).byImage[ref(v1)] === 3 || undefined,
      {
        timeoutMs: 120_000,
        what: 'three v1 pods',
      },
    );

    // The config says 2; the HPA says 3, and the HPA wins.
    const release = await deploy(rt, 'v2', v2, 'kt');
    expect(release.state).not.toBe('failed');
    expect((await countPods('eu-west', ns, 'hello-kt')).byImage).toEqual({ [ref(v2)]: 3 });

    type Hpa = {
      metadata: { annotations?: Record<string, string> };
      spec: { scaleTargetRef: { name: string } };
    };
    const hpa = await kubectlJson<Hpa>('eu-west', ['-n', ns, 'get', 'hpa', 'hello-kt']);
    expect(hpa.spec.scaleTargetRef.name).toBe('hello-kt-b');
    expect(hpa.metadata.annotations?.['ferry.dev/paused-target']).toBeUndefined();

    // The HPA scales the new track from here on, and leaves the old one at 0.
    await kubectl('eu-west', [
      '-n',
      ns,
      'patch',
      'hpa',
      'hello-kt',
      '--type=merge',
      '-p',
      '{"spec":{"minReplicas":4}}',
    ]);
    await waitFor(async () => (await replicasOf('hello-kt-b')) === 4 || undefined, {
      timeoutMs: 120_000,
      what: 'the HPA controller scaling the new track to 4',
    });
    expect(await replicasOf('hello-kt')).toBe(0);
  }, 900_000);
});
