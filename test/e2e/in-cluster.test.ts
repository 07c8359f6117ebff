// Ferry running in the eu-west cluster from its own image, deployed with its
// manifests (`kubectl apply -k`, deploy/overlays/local on deploy/ferry) into a
// namespace of its own, on its own Redis Sentinel setup (never the shared
// Redis). Slack is the emulator: it signs and sends slash commands and clicks to
// the in-cluster bot as Slack would, and receives what the bot posts.
//
// 1. A prod release of the sample app to both regions; during the rollout the
//    worker pod running the release's step and the watcher pod holding the
//    Lease are force-deleted, and the Redis primary is SIGKILLed. The release
//    ends succeeded with one card and each batch once, and an OOM kill after
//    the failover still reaches the alerts channel.
// 2. `kubectl rollout restart` of the worker and the bot during a release
//    loses nothing: it succeeds, one card, each batch once, no message twice.
//
// The image is built from the working tree by scripts/build-image.sh, tagged
// with a hash of its inputs, and pulled by the node from the local primary
// registry; a warm run reuses the tag. Ferry's image has no buildah (node and
// the app only), so the release's image is built here beforehand with
// Ferry's own build runner, as a CI would: Ferry in the cluster finds the
// tag and does not rebuild; syncs and rollouts are Ferry's, in the pods.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { StoredMessage } from '../../dev/slack-emulator/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Release } from '../../src/domain/release.ts';
import { QUEUES } from '../../src/queue/names.ts';
import { buildRunner } from '../../src/runners/real.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { ensureFerryImage, type FerryImage } from '../support/ferry-image.ts';
import {
  ensureInfra,
  type InfraInfo,
  kubectl,
  kubectlJson,
  kubectlRun,
  REGIONS,
  REPO_ROOT,
  waitFor,
} from '../support/infra.ts';
import { waitForState } from '../support/lifecycle.ts';
import { freePort } from '../support/redis.ts';
import { TestSentinel } from '../support/sentinel.ts';

const SECRET = 'in-cluster-test-signing-secret';
const BOT = 'xoxb-ferry-in-cluster-test';
const CH = 'C_RELEASES';
const ALERTS = 'C_PAY_ALERTS';
const EU = 'eu-west';

const suffix = `${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
/** Ferry's namespace in eu-west, and the suffix of its objects (cluster-wide roles must not clash). */
const ferryNs = `ferry-it-${suffix}`;
const sfx = `-it${suffix.replace(/-/g, '')}`;
/** The sample app's namespace in both regions. */
const appNs = `ferry-it-app-${suffix}`;
const deployment = (part: 'bot' | 'worker' | 'watcher') => `ferry-${part}${sfx}`;

let info: InfraInfo;
let image: FerryImage;
let sentinel: TestSentinel;
let emu: SlackEmulator;
let rt: Runtime;
let releaseQueue: Queue;
let overlay: string;
let configText: string;
let config: FerryConfig;
let botPort: number;
const timings: Record<string, number> = {};

const flat = (m: StoredMessage | undefined) => JSON.stringify(m?.blocks ?? []);
const cardsOf = (id: string) =>
  emu.channelMessages(CH).filter((m) => m.subtype !== 'thread_broadcast' && flat(m).includes(`"${id} ·`));
const actionIds = (m: StoredMessage | undefined) =>
  (m?.blocks ?? [])
    .filter((b) => b['type'] === 'actions')
    .flatMap((b) => (b['elements'] as { action_id: string }[]).map((e) => e.action_id));

/** The example config with the sample app in this test's namespace and short pauses. */
function testConfigText(): string {
  const doc = parseDocument(readFileSync(join(REPO_ROOT, 'examples', 'ferry.yaml'), 'utf8'));
  for (const app of ['payments', 'checkout', 'ledger', 'billing'])
    if (app !== 'payments') doc.deleteIn(['apps', app]);
  doc.setIn(['apps', 'payments', 'namespace'], appNs);
  doc.setIn(['environments', 'test', 'plan', 'gate', 'pause'], '1s');
  doc.setIn(['environments', 'prod', 'plan', 'gate', 'pause'], '1s');
  doc.deleteIn(['rules']);
  doc.setIn(
    ['rules'],
    doc.createNode([
      { groups: ['payments-devs'], apps: ['payments'], actions: ['request', 'pause', 'resume', 'abort'] },
      { groups: ['approvers'], actions: ['pause', 'resume', 'abort'] },
    ]),
  );
  return doc.toString();
}

async function createAppNamespaces(): Promise<void> {
  for (const region of REGIONS) {
    await kubectl(region, ['create', 'namespace', appNs]);
    await kubectl(region, ['label', 'namespace', appNs, 'ferry.dev/test=true']);
    await waitFor(
      async () =>
        (await kubectlRun(region, ['-n', appNs, 'get', 'serviceaccount/default'], { allowFail: true }))
          .code === 0,
      { timeoutMs: 60_000, what: `default ServiceAccount in ${region}/${appNs}` },
    );
  }
}

/** The kustomization this test applies: the repository's local overlay, in a namespace of its own. */
function writeOverlay(dir: string): void {
  const env = (name: string, value: string) => ({ name, value });
  const patch = (kind: string, name: string, container: string, vars: { name: string; value: string }[]) =>
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind,
      metadata: { name, namespace: 'ferry-system' },
      spec: { template: { spec: { containers: [{ name: container, env: vars }] } } },
    });
  writeFileSync(join(dir, 'ferry.yaml'), configText);
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: ferryNs,
    nameSuffix: sfx,
    resources: [relative(dir, join(REPO_ROOT, 'deploy', 'overlays', 'local'))],
    images: [{ name: image.name, digest: image.digest }],
    configMapGenerator: [
      {
        name: 'ferry-config',
        behavior: 'replace',
        files: ['ferry.yaml'],
        options: { disableNameSuffixHash: true },
      },
    ],
    patches: [
      {
        patch: patch('Deployment', 'ferry-bot', 'bot', [
          env('PORT', String(botPort)),
          env('SLACK_API_URL', emu.apiUrl),
        ]),
      },
      {
        // A killed worker's job goes to the other replica after the lock (10 s), not the default 30 s.
        patch: patch('Deployment', 'ferry-worker', 'worker', [
          env('FERRY_LOCK_MS', '10000'),
          env('FERRY_RECONCILE_MS', '5000'),
        ]),
      },
    ],
  };
  writeFileSync(join(dir, 'kustomization.yaml'), JSON.stringify(kustomization, null, 2));
}

async function rolledOut(name: string): Promise<void> {
  await kubectl(EU, ['-n', ferryNs, 'rollout', 'status', `deployment/${name}`, '--timeout=600s'], {
    timeoutMs: 620_000,
  });
}

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  status: { phase: string; containerStatuses?: { ready: boolean }[] };
}

async function pods(ns: string, selector: string, region = EU): Promise<PodJson[]> {
  return (await kubectlJson<{ items: PodJson[] }>(region, ['-n', ns, 'get', 'pods', '-l', selector])).items;
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>(EU, [
    '-n',
    ferryNs,
    'get',
    'lease',
    'ferry-watcher',
  ]);
  return lease.spec.holderIdentity || undefined;
}

async function forceDelete(pod: string): Promise<void> {
  await kubectl(EU, ['-n', ferryNs, 'delete', 'pod', pod, '--grace-period=0', '--force', '--wait=false']);
}

/** Slack sends `/release <text>` from a user; resolves with the id of the release it created. */
async function request(user: string, text: string): Promise<string> {
  const before = new Set((await rt.releases.byApp('payments', 100)).map((r) => r.id));
  const d = await emu.slashCommand({ userId: user, channelId: CH, text });
  expect(d.acked).toBe(true);
  return waitFor(async () => (await rt.releases.byApp('payments', 100)).find((r) => !before.has(r.id))?.id, {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: `the release of "${text}"`,
  });
}

async function approve(id: string): Promise<void> {
  const card = await emu.waitFor(() => {
    const cards = cardsOf(id);
    return cards.length === 1 && actionIds(cards[0]).includes('approve') ? cards[0] : undefined;
  }, 60_000);
  const d = await emu.clickButton({
    userId: 'U_BOB',
    channelId: CH,
    messageTs: card.ts,
    actionId: 'approve',
  });
  expect(d.acked).toBe(true);
}

const BATCHES = (replicas: number) =>
  ['eu-west', 'us-east'].flatMap((r) => [
    `${r} batch 1/3: 1/${replicas} pods`,
    `${r} batch 2/3: ${replicas / 2}/${replicas} pods`,
    `${r} batch 3/3: ${replicas}/${replicas} pods`,
  ]);

/** The release's end as people and the clusters see it: succeeded, one card, each batch once. */
async function expectSucceededOnce(id: string, version: string): Promise<Release> {
  const done = await waitForState(rt, id, 'succeeded', 600_000);
  expect(done.progress).toEqual({ 'eu-west': 3, 'us-east': 3 });
  const batches = (await rt.releases.audit(id)).filter((a) => a.event === 'batch').map((a) => a.detail);
  expect(batches).toEqual(BATCHES(4));

  const card = await emu.waitFor(() => {
    const cards = cardsOf(id);
    return cards.length === 1 && flat(cards[0]).includes('succeeded') ? cards[0] : undefined;
  }, 60_000);
  expect(card.ts).toBe(done.thread?.ts);
  expect(cardsOf(id)).toHaveLength(1);
  // The thread: no message posted twice (a re-run step would say its batch again).
  const replies = emu
    .thread(CH, card.ts)
    .slice(1)
    .map((m) => m.text);
  expect(replies.length).toBeGreaterThan(0);
  expect(replies.filter((t, i) => replies.indexOf(t) !== i)).toEqual([]);

  // Both clusters run the version on all four pods.
  for (const region of REGIONS) {
    const running = await pods(appNs, 'app.kubernetes.io/name=payments-prod', region);
    const ready = running.filter(
      (p) => p.status.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready),
    );
    expect(ready.length, region).toBeGreaterThanOrEqual(4);
    const deploys = await kubectlJson<{
      items: { metadata: { annotations?: Record<string, string> }; spec: { replicas: number } }[];
    }>(region, ['-n', appNs, 'get', 'deployments']);
    const stable = deploys.items.find((d) => d.metadata.annotations?.['ferry.dev/role'] === 'stable');
    expect(stable?.metadata.annotations?.['ferry.dev/version'], region).toBe(version);
    // the release id, with the store's epoch after a dot
    expect(stable?.metadata.annotations?.['ferry.dev/release']?.split('.')[0], region).toBe(id);
    expect(stable?.spec.replicas, region).toBe(4);
  }
  return done;
}

/** What a CI does before asking for a release: build the version's prod image into the primary registry. */
async function prebuild(version: string): Promise<void> {
  const build = buildRunner(config);
  await build(
    {
      id: `prebuild-${version}`,
      app: 'payments',
      version,
      environment: 'prod',
      regions: ['eu-west', 'us-east'],
    } as Release,
    { say: async () => {}, signal: AbortSignal.timeout(600_000) } as never,
  );
}

beforeAll(async () => {
  const t0 = Date.now();
  info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  configText = testConfigText();
  const parsed = parseConfig(configText);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  config = parsed.config;
  [image, sentinel, emu, botPort] = await Promise.all([
    ensureFerryImage(info.registries.primary),
    TestSentinel.start(),
    SlackEmulator.start({ signingSecret: SECRET, botToken: BOT }),
    freePort(),
  ]);
  // The alerts channel of payments in examples/ferry.yaml.
  emu.addChannel({ id: ALERTS, name: 'pay-alerts' });
  timings.image = Date.now() - t0;
  await Promise.all([prebuild('v1'), prebuild('v2'), createAppNamespaces()]);
  rt = createRuntime({ config, redisUrl: sentinel.url, name: 'in-cluster-test' });
  releaseQueue = new Queue(QUEUES.release, { connection: rt.queue });

  await kubectl(EU, ['create', 'namespace', ferryNs]);
  await kubectl(EU, ['label', 'namespace', ferryNs, 'ferry.dev/test=true']);
  await kubectl(EU, [
    '-n',
    ferryNs,
    'create',
    'secret',
    'generic',
    'ferry',
    `--from-literal=redis-url=${sentinel.url}`,
    `--from-literal=slack-bot-token=${BOT}`,
    `--from-literal=slack-signing-secret=${SECRET}`,
  ]);
  await kubectl(EU, [
    '-n',
    ferryNs,
    'create',
    'secret',
    'generic',
    'ferry-kubeconfig',
    `--from-file=config=${info.kubernetes.kubeconfig}`,
  ]);
  overlay = mkdtempSync(join(tmpdir(), 'ferry-in-cluster-'));
  writeOverlay(overlay);
  const t1 = Date.now();
  await kubectl(EU, ['apply', '-k', overlay]);
  await Promise.all([
    rolledOut(deployment('bot')),
    rolledOut(deployment('worker')),
    rolledOut(deployment('watcher')),
  ]);
  timings.rollout = Date.now() - t1;
  emu.botEventsUrl = `http://127.0.0.1:${botPort}/slack/events`;
}, 1_800_000);

let failed = false;
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') failed = true;
});

/** What Ferry's own pods said, for a failed run: CI keeps nothing else of them. */
async function printFerryLogs(): Promise<void> {
  for (const pod of await pods(ferryNs, 'app.kubernetes.io/name=ferry').catch(() => [])) {
    const { stdout } = await kubectlRun(EU, ['-n', ferryNs, 'logs', '--tail=40', pod.metadata.name], {
      allowFail: true,
    });
    console.log(`--- ${pod.metadata.name}\n${stdout}`);
  }
  const notify = new Queue(QUEUES.notify, { connection: rt.queue });
  console.log('notify queue:', await notify.getJobCounts());
  await notify.close();
  console.log(
    `${CH}:`,
    emu.channelMessages(CH).map((m) => m.text),
  );
}

afterAll(async () => {
  if (failed) await printFerryLogs();
  if (overlay) {
    // Everything the kustomization made, the cluster-wide roles too; then the app's namespaces.
    await kubectlRun(EU, ['delete', '-k', overlay, '--ignore-not-found', '--wait=false'], {
      allowFail: true,
    });
    rmSync(overlay, { recursive: true, force: true });
  }
  await kubectlRun(EU, ['delete', 'namespace', ferryNs, '--ignore-not-found', '--wait=false'], {
    allowFail: true,
  });
  for (const region of REGIONS)
    await kubectlRun(region, ['delete', 'namespace', appNs, '--ignore-not-found', '--wait=false'], {
      allowFail: true,
    });
  await releaseQueue?.close();
  await rt?.close();
  await emu?.close();
  await sentinel?.stop();
  console.log('in-cluster timings (ms):', timings);
}, 120_000);

describe('Ferry in eu-west from its image and manifests', () => {
  it('prod release to both regions through the in-cluster bot survives the active worker, the watcher leader and the Redis primary dying', async () => {
    const t0 = Date.now();
    // The node pulled Ferry's image from the primary registry, by digest.
    const ferryPods = await pods(ferryNs, 'app.kubernetes.io/name=ferry');
    expect(ferryPods.length).toBe(6);
    const spec = await kubectlJson<{
      spec: { containers: { image: string }[] };
      status: { containerStatuses: { imageID: string }[] };
    }>(EU, ['-n', ferryNs, 'get', 'pod', ferryPods[0]?.metadata.name as string]);
    expect(spec.spec.containers[0]?.image).toBe(`${image.name}@${image.digest}`);
    expect(spec.status.containerStatuses[0]?.imageID).toContain(image.digest);

    await rt.versions.recordPassed('payments', 'v2', 'test');
    const id = await request('U_ALICE', 'payments v2 to prod');
    await waitForState(rt, id, 'awaiting-approval', 60_000);
    await approve(id);
    await waitForState(
      rt,
      id,
      'deploying',
      300_000,
      (r) => r.batch?.region === 'eu-west' && r.batch.index >= 1,
    );

    // 1. The worker pod running the release's step (BullMQ records the pod's name on the job).
    const running = await waitFor(
      async () =>
        (await releaseQueue.getJobs(['active'])).find(
          (j) => (j.data as { releaseId?: string }).releaseId === id && j.processedBy,
        ),
      { timeoutMs: 60_000, intervalMs: 100, what: `an active step of ${id}` },
    );
    const activeWorker = running.processedBy as string;
    expect(activeWorker.startsWith(deployment('worker'))).toBe(true);
    await forceDelete(activeWorker);

    // 2. The watcher holding the Lease.
    const leader = await waitFor(leaseHolder, { what: 'the watcher leader' });
    expect(leader.startsWith(deployment('watcher'))).toBe(true);
    await forceDelete(leader);

    // 3. The Redis primary.
    const old = await sentinel.killPrimary();
    const promoted = await sentinel.waitForFailover(old);
    expect(promoted).not.toBe(old);

    await expectSucceededOnce(id, 'v2');
    // The other worker took the step over; the killed pod is gone.
    expect(
      (await pods(ferryNs, `app.kubernetes.io/component=worker`)).map((p) => p.metadata.name),
    ).not.toContain(activeWorker);

    // A new leader watches: an OOM kill after the failover reaches the alerts channel.
    const newLeader = await waitFor(
      async () => {
        const h = await leaseHolder();
        return h && h !== leader ? h : undefined;
      },
      { timeoutMs: 60_000, what: 'a new watcher leader' },
    );
    expect(newLeader.startsWith(deployment('watcher'))).toBe(true);
    const appPod = (await pods(appNs, 'app.kubernetes.io/name=payments-prod')).find(
      (p) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp,
    );
    expect(appPod).toBeDefined();
    const before = emu.channelMessages(ALERTS).length;
    await kubectlRun(
      EU,
      [
        '-n',
        appNs,
        'exec',
        appPod?.metadata.name as string,
        '--',
        'wget',
        '-qO-',
        'http://127.0.0.1:8080/control/oom',
      ],
      { allowFail: true },
    );
    const alert = await emu.waitFor(
      () =>
        emu
          .channelMessages(ALERTS)
          .slice(before)
          .find((m) => /OOM kill/.test(`${m.text} ${flat(m)}`)),
      180_000,
    );
    expect(`${alert.text} ${flat(alert)}`).toMatch(/OOM kill: payments payments in prod\/eu-west/);
    timings.chaos = Date.now() - t0;
  }, 1_200_000);

  it('`kubectl rollout restart` of the worker and the bot during a release loses nothing', async () => {
    const t0 = Date.now();
    await rt.versions.recordPassed('payments', 'v1', 'test');
    const id = await request('U_ALICE', 'payments v1 to prod');
    await waitForState(rt, id, 'awaiting-approval', 60_000);
    await approve(id);
    await waitForState(rt, id, 'deploying', 300_000, (r) => r.batch?.region === 'eu-west');
    const oldPods = (await pods(ferryNs, 'app.kubernetes.io/component in (worker,bot)')).map(
      (p) => p.metadata.name,
    );
    await kubectl(EU, [
      '-n',
      ferryNs,
      'rollout',
      'restart',
      `deployment/${deployment('worker')}`,
      `deployment/${deployment('bot')}`,
    ]);
    await Promise.all([rolledOut(deployment('worker')), rolledOut(deployment('bot'))]);
    // Every bot and worker still serving is a new one (the old ones may still be finishing their work).
    const serving = (await pods(ferryNs, 'app.kubernetes.io/component in (worker,bot)'))
      .filter((p) => !p.metadata.deletionTimestamp)
      .map((p) => p.metadata.name);
    expect(serving).toHaveLength(4);
    expect(serving.filter((p) => oldPods.includes(p))).toEqual([]);
    await expectSucceededOnce(id, 'v1');
    // The restarted bot still answers Slack.
    const status = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: `status ${id}` });
    expect(status.acked).toBe(true);
    timings.restart = Date.now() - t0;
  }, 1_200_000);
});
