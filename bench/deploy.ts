// Benchmark: Kubernetes rollouts on the local eu-west cluster (real kubelet
// on containerd), same machine, same run.
//
//   (1) Ferry's rollout (one batch of 100%, no gate pause: prepare, apply,
//       wait until every new pod is Ready and every old one gone) vs
//       `kubectl set image` + `kubectl rollout status` (and, for the same end
//       state, until the old pods are gone) on a plain Deployment with the same pod
//       template (same image, same readiness probe, 4 replicas). Both flip
//       between the sample app's v1 and v2, whose images are on the node
//       already, so this measures the rollout mechanics, not pulls.
//   (2) Pre-warm on vs off with a LARGE image (the sample app plus a random,
//       incompressible layer), removed from the node's containerd between
//       runs. "Pod start" is the time from applying the batch to every batch
//       pod Ready; with pre-warm the pull happens before, and its time is
//       reported separately (the point of pre-warming is that it happens
//       before the batch, e.g. while the previous batch's gate watches).
//   (3) Pod start with the large image pulled ahead (as while a release
//       waits) vs cold, and pulled ahead through the pull relay at a share
//       of the node's bandwidth (prePull.throttle).
//
//   node bench/deploy.ts   → bench/results/deploy.json and deploy.md
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeRollout } from '../src/kube/rollout.ts';
import { logger } from '../src/logging.ts';
import { RegistryClient } from '../src/registry/client.ts';
import { PullRelay } from '../src/registry/pull-relay.ts';
import { kubeRunners } from '../src/runners/deploy.ts';
import { ensureInfra, kubectl, newNamespace, run } from '../test/support/infra.ts';
import { kubeTestConfig, manifestDigest, regionRef, sampleImage, TEST_APP } from '../test/support/kube.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPLICAS = 4;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 200);
const MB = 1024 * 1024;

const info = await ensureInfra(['registries', 'images', 'k8s']);
const cluster = info.kubernetes.contexts['eu-west'];
const regionHost = info.registries.regions['eu-west'];
const started = Date.now();
const log = (m: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${m}`);

const v1 = await sampleImage('v1', ['eu-west']);
const v2 = await sampleImage('v2', ['eu-west']);
const nsFerry = await newNamespace('eu-west', 'bench-ferry');
const nsKubectl = await newNamespace('eu-west', 'bench-kubectl');
const nsWarm = await newNamespace('eu-west', 'bench-warm');

let seq = 0;
async function ferryRollout(
  ns: string,
  image: { image: string; digest: string },
  version: string,
  opts: { prewarm?: boolean; pods?: number } = {},
) {
  const config = kubeTestConfig(ns);
  const kube = kubeRunners(config, { defaultReplicas: REPLICAS, pollMs: 100 });
  const r = new KubeRollout(
    kube.clients('eu-west'),
    config,
    { releaseId: `bench-${++seq}`, app: TEST_APP, environment: 'kt', version, region: 'eu-west', image },
    { defaultReplicas: REPLICAS, pollMs: 100 },
  );
  const t0 = Date.now();
  const { replicas } = await r.prepare();
  const pods = opts.pods ?? replicas;
  let prewarmMs = 0;
  if (opts.prewarm) {
    const p0 = Date.now();
    await r.prewarm(pods);
    prewarmMs = Date.now() - p0;
  }
  const a0 = Date.now();
  await r.applyBatch(pods, 1);
  const gate = await r.gate(pods, 0, 0, 300_000);
  if (!gate.ok) throw new Error(gate.reason);
  const end = Date.now();
  return { totalMs: end - t0, prewarmMs, podStartMs: end - a0, rollout: r };
}

// ---- (1) Ferry vs kubectl set image + rollout status --------------------------------------------
log('setting up: ferry namespace on v1');
await ferryRollout(nsFerry.name, v1, 'v1');
log('setting up: plain Deployment on v1');
const plain = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'plain', namespace: nsKubectl.name },
  spec: {
    replicas: REPLICAS,
    // The same promise Ferry makes (never below the replica count) and the same
    // surge as Ferry's default (25%): a like-for-like rolling update.
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
    selector: { matchLabels: { app: 'plain' } },
    template: {
      metadata: { labels: { app: 'plain' } },
      spec: {
        terminationGracePeriodSeconds: 5,
        containers: [
          {
            name: TEST_APP,
            image: regionRef('eu-west', v1),
            imagePullPolicy: 'IfNotPresent',
            ports: [{ containerPort: 8080 }],
            env: [{ name: 'FERRY_ENV', value: 'kt' }],
            readinessProbe: {
              httpGet: { path: '/ready', port: 8080 },
              periodSeconds: 2,
              timeoutSeconds: 2,
              failureThreshold: 2,
            },
            resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
          },
        ],
      },
    },
  },
};
await kubectl('eu-west', ['apply', '-f', '-'], { input: JSON.stringify(plain) });
await kubectl('eu-west', ['-n', nsKubectl.name, 'rollout', 'status', 'deployment/plain', '--timeout=300s'], {
  timeoutMs: 320_000,
});

const ferryRuns: number[] = [];
const kubectlRuns: number[] = [];
const kubectlGoneRuns: number[] = [];
const plainCore = kubeRunners(kubeTestConfig(nsKubectl.name)).clients('eu-west').core;
for (let i = 0; i < RUNS; i++) {
  const [img, ver] = i % 2 === 0 ? [v2, 'v2'] : [v1, 'v1'];
  const f = await ferryRollout(nsFerry.name, img, ver);
  ferryRuns.push(f.totalMs);
  log(`ferry → ${ver}: ${f.totalMs} ms`);
  const t0 = Date.now();
  await kubectl('eu-west', [
    '-n',
    nsKubectl.name,
    'set',
    'image',
    'deployment/plain',
    `${TEST_APP}=${regionRef('eu-west', img)}`,
  ]);
  await kubectl(
    'eu-west',
    ['-n', nsKubectl.name, 'rollout', 'status', 'deployment/plain', '--timeout=300s'],
    {
      timeoutMs: 320_000,
    },
  );
  kubectlRuns.push(Date.now() - t0);
  // Ferry's figure ends when only the new pods exist (its batch's end counts the old ones gone);
  // rollout status ends when the new pods are available. The same end for kubectl: polled as Ferry polls.
  for (;;) {
    const pods = (await plainCore.listNamespacedPod({ namespace: nsKubectl.name })).items;
    if (pods.length === REPLICAS && pods.every((p) => !p.metadata?.deletionTimestamp)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  kubectlGoneRuns.push(Date.now() - t0);
  log(`kubectl → ${ver}: ${kubectlRuns.at(-1)} ms (old pods gone: ${kubectlGoneRuns.at(-1)} ms)`);
}

// ---- (2) pre-warm on vs off with a large image --------------------------------------------------
log(`building a large image (+${BIG_MB} MiB random layer)`);
const ctx = mkdtempSync(join(tmpdir(), 'ferry-big-'));
mkdirSync(join(ctx, 'blob'));
{
  const chunk = 16 * MB;
  const parts: Buffer[] = [];
  for (let done = 0; done < BIG_MB * MB; done += chunk) parts.push(randomBytes(chunk));
  writeFileSync(join(ctx, 'blob', 'data'), Buffer.concat(parts));
}
writeFileSync(
  join(ctx, 'Dockerfile'),
  `FROM ${info.registries.primary}/ferry/hello-app:v1\nCOPY blob/ /opt/blob/\n`,
);
const bigTag = `${regionHost}/ferry/bench-big:${Date.now().toString(36)}`;
await run(
  'buildah',
  ['bud', '--isolation', 'chroot', '--tls-verify=false', '--layers=false', '-q', '-t', bigTag, ctx],
  { timeoutMs: 600_000 },
);
await run('buildah', ['push', '-q', '--tls-verify=false', bigTag, `docker://${bigTag}`], {
  timeoutMs: 600_000,
});
await run('buildah', ['rmi', bigTag], { allowFail: true });
const bigDigest = await manifestDigest(
  `http://${regionHost}`,
  'ferry/bench-big',
  bigTag.split(':').pop() as string,
);
const big = { image: `${info.registries.primary}/ferry/bench-big:x`, digest: bigDigest };
const bigRef = `${regionHost}/ferry/bench-big@${bigDigest}`;
const bigManifest = (await (
  await fetch(`http://${regionHost}/v2/ferry/bench-big/manifests/${bigDigest}`, {
    headers: {
      accept:
        'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  })
).json()) as { config: { digest: string }; layers: { digest: string }[] };
const bigConfig = bigManifest.config.digest;
const bigLayer = bigManifest.layers.at(-1)?.digest as string;
/** The snapshot key of the image's unpacked top layer: its chain id, from the config's diff ids. */
const bigChain = await (async () => {
  const cfg = (await (await fetch(`http://${regionHost}/v2/ferry/bench-big/blobs/${bigConfig}`)).json()) as {
    rootfs: { diff_ids: string[] };
  };
  return cfg.rootfs.diff_ids.reduce(
    (chain, diff) => `sha256:${createHash('sha256').update(`${chain} ${diff}`).digest('hex')}`,
  );
})();
log(`large image ${bigRef}`);

const ctr = (args: string[]) =>
  run('ctr', ['--address', cluster.containerdSocket, '-n', 'k8s.io', ...args], { allowFail: true });
// Containers of the last run's pods (deleted, their tasks dead or dying) hold the image's unpacked
// layers as snapshots until the kubelet's container GC comes by; containerd skips fetching a layer
// whose snapshot exists, so they go (a container whose task still runs refuses, and is tried again).
async function removeBigContainers(): Promise<void> {
  const holders = (await ctr(['containers', 'ls'])).stdout
    .split('\n')
    .filter((l) => l.includes('bench-big'))
    .map((l) => l.split(/\s+/)[0] as string);
  for (const id of holders) await ctr(['containers', 'rm', id]);
}
async function clearBig(): Promise<void> {
  // The CRI names an image three ways: repo:tag, repo@digest and its config id.
  const names = (await ctr(['images', 'ls', '-q'])).stdout
    .split('\n')
    .filter((n) => n.includes('ferry/bench-big') || n === bigConfig);
  if (names.length) await ctr(['images', 'rm', '--sync', ...names]);
  const left = (await ctr(['images', 'ls', '-q'])).stdout
    .split('\n')
    .filter((n) => n.includes('bench-big') || n === bigConfig);
  if (left.length) throw new Error(`could not clear ${left.join(', ')} from the node`);
  // The layer itself must be gone too: a container of the last run still being deleted keeps it, and
  // a pull that finds it on the node reads nothing (a run would measure a pull that never happened).
  for (let attempt = 0; ; attempt++) {
    await removeBigContainers();
    await ctr(['content', 'prune', 'references']);
    const content = (await ctr(['content', 'ls', '-q'])).stdout;
    const snapshots = (await ctr(['snapshots', 'ls'])).stdout;
    if (!content.includes(bigLayer) && !snapshots.includes(bigChain)) return;
    if (attempt >= 60)
      throw new Error(`the ${BIG_MB} MiB layer ${bigLayer} (snapshot ${bigChain}) stays on the node`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

log('setting up: warm namespace on v1');
await ferryRollout(nsWarm.name, v1, 'v1');
const warm: { prewarm: boolean; prewarmMs: number; podStartMs: number; totalMs: number }[] = [];
const WARM_PODS = 2;
for (let i = 0; i < RUNS * 2; i++) {
  const prewarm = i % 2 === 1;
  await clearBig();
  const f = await ferryRollout(nsWarm.name, big, 'big', { prewarm, pods: WARM_PODS });
  warm.push({ prewarm, prewarmMs: f.prewarmMs, podStartMs: f.podStartMs, totalMs: f.totalMs });
  log(
    `big image, pre-warm ${prewarm ? 'on ' : 'off'}: pods Ready ${f.podStartMs} ms after apply (pre-warm ${f.prewarmMs} ms)`,
  );
  // Back to v1 (scale: the old track keeps its template) so the next run starts from the same place.
  await f.rollout.rollback();
}

// ---- (3) pod start: pulled ahead while the release waited vs cold -----------------------------------
// What a person waiting for the approval gets back: the time from creating a pod of the
// 200 MiB image to its container running, with the image pulled ahead by Ferry's
// pre-pull (the pods jobs/prepare.ts makes while a release waits) versus a cold node.
const aheadConfig = kubeTestConfig(nsWarm.name);
const aheadKube = kubeRunners(aheadConfig, { defaultReplicas: REPLICAS, pollMs: 100 });
const core = aheadKube.clients('eu-west').core;
async function podStartMs(): Promise<number> {
  const name = `start-${++seq}`;
  const t0 = Date.now();
  await core.createNamespacedPod({
    namespace: nsWarm.name,
    body: {
      metadata: { name },
      spec: {
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'app', image: bigRef, imagePullPolicy: 'IfNotPresent' }],
      },
    },
  });
  for (;;) {
    const p = await core.readNamespacedPod({ name, namespace: nsWarm.name });
    if (p.status?.containerStatuses?.[0]?.state?.running) break;
    const waiting = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
    if (waiting === 'ErrImagePull' || waiting === 'ImagePullBackOff') throw new Error(`${name}: ${waiting}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = Date.now() - t0;
  await core.deleteNamespacedPod({ name, namespace: nsWarm.name, gracePeriodSeconds: 0 });
  return ms;
}
// The throttled pre-pull (prePull.throttle): the same pull pods, through the node's pull relay
// (src/registry/pull-relay.ts) at a quarter of a 1 GbE node link. Its pull takes longer, off the
// critical path; what is measured is the rate it held to and the pod start it leaves behind (the
// pod names the region registry, and finds the layers by digest).
const THROTTLE = { nodeBandwidthMbps: 1000, share: 0.25 };
const budget = (THROTTLE.share * THROTTLE.nodeBandwidthMbps * 1_000_000) / 8;
const relay = new PullRelay({
  port: 0,
  bytesPerSecond: () => budget,
  upstream: () => new RegistryClient({ name: 'eu-west', url: `http://${regionHost}` }),
  stopReason: async () => undefined, // bench releases are not in Redis; the stop rule has its own tests
  log: logger('bench-relay'),
});
const relayAt = await relay.start();
const throttledConfig: typeof aheadConfig = {
  ...aheadConfig,
  prePull: { ...aheadConfig.prePull, throttle: { ...THROTTLE, relayPort: relayAt.port } },
};
type StartMode = 'cold' | 'ahead' | 'throttled';
const starts: { mode: StartMode; podStartMs: number; pullAheadMs: number; relayedBytes: number }[] = [];
const MODES: StartMode[] = ['cold', 'ahead', 'throttled'];
for (let i = 0; i < RUNS * MODES.length; i++) {
  const mode = MODES[i % MODES.length] as StartMode;
  await clearBig();
  let pullAheadMs = 0;
  const relayed0 = relay.stats.bytes;
  if (mode !== 'cold') {
    const r = new KubeRollout(
      aheadKube.clients('eu-west'),
      mode === 'throttled' ? throttledConfig : aheadConfig,
      {
        releaseId: `bench-${++seq}`,
        app: TEST_APP,
        environment: 'kt',
        version: 'big',
        region: 'eu-west',
        image: big,
      },
      { defaultReplicas: REPLICAS, pollMs: 100 },
    );
    const p0 = Date.now();
    await r.prewarm(1, { purpose: 'prepull', nodesAtOnce: 2 });
    pullAheadMs = Date.now() - p0;
  }
  const relayedBytes = relay.stats.bytes - relayed0;
  const podStart = await podStartMs();
  starts.push({ mode, podStartMs: podStart, pullAheadMs, relayedBytes });
  log(
    `pod start, ${mode}: ${podStart} ms${mode !== 'cold' ? ` (pull ahead ${pullAheadMs} ms${relayedBytes ? `, ${(relayedBytes / MB / (pullAheadMs / 1000)).toFixed(1)} MiB/s through the relay` : ''})` : ''}`,
  );
}
await relay.close();

// ---- results --------------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const off = warm.filter((w) => !w.prewarm);
const on = warm.filter((w) => w.prewarm);
const kubeVersion = (await kubectl('eu-west', ['version', '-o', 'json'])).trim();
const result = {
  at: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg() },
  kubernetes: JSON.parse(kubeVersion).serverVersion?.gitVersion,
  replicas: REPLICAS,
  runs: RUNS,
  rollout: {
    ferryMs: ferryRuns,
    kubectlMs: kubectlRuns,
    ferryMedianMs: median(ferryRuns),
    kubectlMedianMs: median(kubectlRuns),
    kubectlOldGoneMs: kubectlGoneRuns,
    kubectlOldGoneMedianMs: median(kubectlGoneRuns),
  },
  prewarm: {
    imageExtraMiB: BIG_MB,
    podsPerBatch: WARM_PODS,
    runs: warm,
    offPodStartMedianMs: median(off.map((w) => w.podStartMs)),
    onPodStartMedianMs: median(on.map((w) => w.podStartMs)),
    onPrewarmMedianMs: median(on.map((w) => w.prewarmMs)),
    offTotalMedianMs: median(off.map((w) => w.totalMs)),
    onTotalMedianMs: median(on.map((w) => w.totalMs)),
  },
  podStart: {
    imageExtraMiB: BIG_MB,
    runs: starts,
    coldMedianMs: median(starts.filter((x) => x.mode === 'cold').map((x) => x.podStartMs)),
    aheadMedianMs: median(starts.filter((x) => x.mode === 'ahead').map((x) => x.podStartMs)),
    pullAheadMedianMs: median(starts.filter((x) => x.mode === 'ahead').map((x) => x.pullAheadMs)),
    throttled: {
      ...THROTTLE,
      budgetMiBps: budget / MB,
      podStartMedianMs: median(starts.filter((x) => x.mode === 'throttled').map((x) => x.podStartMs)),
      pullAheadMedianMs: median(starts.filter((x) => x.mode === 'throttled').map((x) => x.pullAheadMs)),
      /** Bytes the relay handed on over the whole pull-ahead (pod start and deletion included): the rate the node saw. */
      rateMiBps: starts
        .filter((x) => x.mode === 'throttled')
        .map((x) => x.relayedBytes / MB / (x.pullAheadMs / 1000)),
    },
  },
  wallMs: Date.now() - started,
};
const saved = 1 - result.podStart.aheadMedianMs / result.podStart.coldMedianMs;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const md = `# Kubernetes rollout benchmark

Run ${result.at} on ${result.machine.cores} cores (${result.machine.cpu}), load average at the end ${result.machine.loadavg.map((l) => l.toFixed(2)).join(' / ')} — the machine is shared with other work, so times are noisy. Kubernetes ${result.kubernetes} (single node, real kubelet on containerd), ${REPLICAS} replicas, ${RUNS} runs each, alternating v1 ↔ v2 of the sample app.

## Rollout: Ferry (one batch of 100%, no pause) vs kubectl

| approach | median | runs |
| --- | ---: | --- |
| Ferry: prepare + apply (two tracks, surge 25%) until every new pod is Ready and every old one gone | ${s(result.rollout.ferryMedianMs)} | ${ferryRuns.map(s).join(', ')} |
| \`kubectl set image\` + \`kubectl rollout status\` (RollingUpdate maxSurge 25%, maxUnavailable 0) | ${s(result.rollout.kubectlMedianMs)} | ${kubectlRuns.map(s).join(', ')} |
| the same, until the old pods are gone too (the end Ferry's figure has) | ${s(result.rollout.kubectlOldGoneMedianMs)} | ${kubectlGoneRuns.map(s).join(', ')} |

Ferry ÷ kubectl: ${(result.rollout.ferryMedianMs / result.rollout.kubectlMedianMs).toFixed(2)}× against \`rollout status\`, ${(result.rollout.ferryMedianMs / result.rollout.kubectlOldGoneMedianMs).toFixed(2)}× against the same end state.

Both keep every old pod until a new one is Ready: Ferry grows the next track by the surge (here 1 pod), waits for those pods to be Ready, then shrinks the old track by as many, and counts pods exactly (old ones gone included); the Deployment's rolling update does the same in waves of maxSurge with maxUnavailable 0. Before the second wave (no-dip) Ferry scaled both tracks in one step and the comparison was against a 25%/25% rolling update that may dip.

## Pre-warm on vs off, large image (+${BIG_MB} MiB layer), ${WARM_PODS} pods per batch

Before every run the image is removed from the node's containerd: \`ctr -n k8s.io images rm\` of every CRI name of it (incl. its config id), the containers of the last run's pods (the kubelet collects them only later, and their snapshots keep the unpacked layers: containerd skips fetching a layer whose snapshot exists), and content prune, until neither the layer nor its snapshot is left. "Pod start" = from applying the batch to every batch pod Ready.

| pre-warm | pod start (median) | pre-warm pull (median) | total incl. pre-warm (median) |
| --- | ---: | ---: | ---: |
| off | ${s(result.prewarm.offPodStartMedianMs)} | — | ${s(result.prewarm.offTotalMedianMs)} |
| on | ${s(result.prewarm.onPodStartMedianMs)} | ${s(result.prewarm.onPrewarmMedianMs)} | ${s(result.prewarm.onTotalMedianMs)} |

Per run: ${warm.map((w) => `${w.prewarm ? 'on' : 'off'} ${s(w.podStartMs)}${w.prewarm ? ` (+${s(w.prewarmMs)} pre-warm)` : ''}`).join('; ')}.

Pre-warming moves the pull out of the batch: the batch's pods start from a warm node, so the window in which the batch is half-started (and the gate's progress deadline runs) shrinks to about half. It does not make the whole rollout faster by itself: \`jobs/deploy.ts\` calls it right before each batch, so the pull time is still on the critical path (plus the pre-warm pod's own start and deletion: "total" above). It pays when the pull runs off the critical path — during the previous batch's gate pause or while a release waits for approval — and on many nodes pulling at once, where it spreads the registry load; here it is one node and a registry on localhost.

## Pod start: pulled ahead while the release waited vs cold (+${BIG_MB} MiB image)

From creating one pod of the large image to its container running. "Pulled ahead" is what a release gets when it waited for approval or its turn: Ferry's pre-pull (\`jobs/prepare.ts\`, the same pull pods, throttled per region) put the image on the node first; the image, its unpacked layers and the containers holding them are removed from containerd before every run (as above). Until 2026-12-02 only the image and its content were removed, and the cold runs found the last run's unpacked layers: cold measured 1.7 s, not the 2.6–2.8 s of a real cold pull, and the saving read 41%.

| | pod start (median) | pull ahead, off the critical path (median) |
| --- | ---: | ---: |
| cold | ${s(result.podStart.coldMedianMs)} | — |
| pulled ahead | ${s(result.podStart.aheadMedianMs)} | ${s(result.podStart.pullAheadMedianMs)} |

**${Math.round(saved * 100)}% less** pod start time with the image pulled ahead (target: at least 70%; Spegel reports 68%). What is left of a pulled-ahead start is the pod's own: scheduling, the sandbox, creating and starting the container (about 0.9–1.0 s here), which no pull ahead removes. Per run: ${starts.map((x) => `${x.mode} ${s(x.podStartMs)}`).join('; ')}.

### Throttled to a share of the node's bandwidth

\`prePull.throttle: { nodeBandwidthMbps: ${THROTTLE.nodeBandwidthMbps}, share: ${THROTTLE.share} }\`: the pull pods pull through the node's pull relay at most ${(budget / MB).toFixed(1)} MiB/s, and the pod (which names the region registry) finds the layers on the node by digest.

| | pod start (median) | pull ahead (median) | rate through the relay, per run | budget |
| --- | ---: | ---: | --- | ---: |
| throttled pre-pull | ${s(result.podStart.throttled.podStartMedianMs)} | ${s(result.podStart.throttled.pullAheadMedianMs)} | ${result.podStart.throttled.rateMiBps.map((r) => `${r.toFixed(1)} MiB/s`).join(', ')} | ${(budget / MB).toFixed(1)} MiB/s |

The rate is the relay's bytes over the whole pull-ahead, the pull pod's start and deletion included, so it reads a little under the budget; the pacer itself never lets a second through more than the budget plus a 50 ms burst (\`test/unit/pacer.test.ts\`).

Whole benchmark: ${s(result.wallMs)}.
`;
await writeFile(join(here, 'results', 'deploy.json'), `${JSON.stringify(result, null, 2)}\n`);
await writeFile(join(here, 'results', 'deploy.md'), md);
log('written bench/results/deploy.json and deploy.md');
await Promise.all([nsFerry.remove(), nsKubectl.remove(), nsWarm.remove()]);
process.exit(0);
