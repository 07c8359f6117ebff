// OOM alerts end to end on the real eu-west cluster: real OOM kills of a main
// process and of a child process (which Kubernetes does not report), and a
// crash loop of kills. `ferry watch` (pods + events + the node agent on the
// local node's memory cgroups) runs in-process; the test reads the alerts it
// enqueued from the notify queue.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { QueueAnnouncer } from '../../src/queue/announcer.ts';
import { QUEUES } from '../../src/queue/names.ts';
import { ReleaseStore } from '../../src/store/releases.ts';
import type { AlertOutcome } from '../../src/watch/alerter.ts';
import { localTargets } from '../../src/watch/targets.ts';
import { startWatch, type WatchHandle } from '../../src/watch/watcher.ts';
import { exampleConfig } from '../support/config.ts';
import {
  ensureInfra,
  type InfraInfo,
  kubectl,
  kubectlJson,
  newNamespace,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';
import { runningPod } from '../support/kube.ts';
import { TestRedis } from '../support/redis.ts';

type Alert = Extract<Outbound, { kind: 'alert' }>;

let info: InfraInfo;
let server: TestRedis;
let store: Redis;
let queueConn: Redis;
let ns: TestNamespace;
let config: FerryConfig;
let watch: WatchHandle;
let announcer: QueueAnnouncer;
let notify: Queue<Outbound>;
let release: Release;
const prefix = `w${Date.now().toString(36)}`;

function deployment(name: string, memory: string, env: Record<string, string> = {}): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns.name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 1,
          enableServiceLinks: false,
          containers: [
            {
              name: 'app',
              image: `${info.images.sampleApp.image}:v1`,
              env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
              resources: { limits: { memory }, requests: { memory: '16Mi' } },
            },
          ],
        },
      },
    },
  });
}

interface PodJson {
  metadata: { name: string };
  status: { phase: string; containerStatuses?: { ready: boolean; restartCount: number }[] };
}

async function alerts(): Promise<Alert[]> {
  const jobs = await notify.getJobs(
    ['waiting', 'active', 'completed', 'delayed', 'prioritized'],
    0,
    -1,
    true,
  );
  return jobs
    .sort((a, b) => Number(a.id) - Number(b.id))
    .map((j) => j.data)
    .filter((m): m is Alert => m.kind === 'alert');
}

/** Every finding the watcher handled, in order: the positive signal before a "no new alert" check. */
const outcomes: { owner: string; source: string; outcome: AlertOutcome }[] = [];
const handled = (owner: string, outcome?: AlertOutcome) =>
  outcomes.filter((o) => o.owner === owner && (!outcome || o.outcome === outcome)).length;

const forWorkload = (list: Alert[], owner: string) =>
  list.filter((a) => a.silenceKey.endsWith(`/${owner}/app`));
const field = (a: Alert, label: string) => a.fields.find(([l]) => l === label)?.[1];

beforeAll(async () => {
  info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  server = await TestRedis.start();
  store = new Redis(server.url);
  queueConn = new Redis(server.url, { maxRetriesPerRequest: null });
  ns = await newNamespace('eu-west', 'oom');
  config = exampleConfig();
  const payments = config.apps.payments as FerryConfig['apps'][string];
  payments.namespace = ns.name;
  config.apps = { payments };
  announcer = new QueueAnnouncer(queueConn, prefix);
  notify = new Queue(QUEUES.notify, { connection: queueConn, prefix });
  const releases = new ReleaseStore(store, prefix);
  // a release of payments to prod in flight: alerts go into its thread too
  release = {
    id: 'R-OOM-1',
    app: 'payments',
    version: 'v1',
    environment: 'prod',
    regions: ['eu-west', 'us-east'],
    factors: [],
    plan: {} as Release['plan'],
    requestedBy: 'U_ALICE',
    requestedAt: Date.now(),
    state: 'deploying',
    stateSince: Date.now(),
    approvals: [],
    rev: 1,
  };
  await releases.create(release, 'test');
  const agents = localTargets(config).filter((t) => t.region === 'eu-west');
  expect(agents.length).toBe(1);
  watch = startWatch({
    config: () => config,
    redis: store,
    prefix,
    announcer,
    releases,
    log: logger('watch-test').child({}, { level: 'warn' }),
    regions: ['eu-west'],
    nodeAgents: agents,
    pollMs: 250,
    onOutcome: (f, outcome) => outcomes.push({ owner: f.owner, source: f.source, outcome }),
  });
  await watch.ready;
}, 3_600_000);

afterAll(async () => {
  await watch?.stop();
  await ns?.remove().catch(() => {});
  await notify?.close();
  await announcer?.close();
  store?.disconnect();
  queueConn?.disconnect();
  await server?.stop();
});

describe('OOM alerts from a real cluster', () => {
  it('an OOM kill of the main process is one alert, with limit, restarts and the last log lines, in the channel and the release thread', async () => {
    await kubectl('eu-west', ['apply', '-f', '-'], { input: deployment('oom-main', '48Mi') });
    const pod = await runningPod(ns.name, 'oom-main');
    await kubectl('eu-west', [
      '-n',
      ns.name,
      'exec',
      pod,
      '--',
      'wget',
      '-qO-',
      'http://127.0.0.1:8080/control/oom',
    ]);
    const first = await waitFor(async () => forWorkload(await alerts(), 'oom-main')[0], {
      timeoutMs: 120_000,
      what: 'the OOM alert for oom-main',
    });
    expect(first.channel).toBe('C_PAY_ALERTS');
    expect(first.releaseId).toBe(release.id);
    expect(first.count).toBe(1);
    expect(first.title).toContain('OOM kill: payments app in prod/eu-west');
    expect(field(first, 'Pod')).toBe(`${ns.name}/${pod}`);
    expect(field(first, 'Memory limit')).toBe('48Mi');
    expect(field(first, 'Memory request')).toBe('16Mi');
    expect(field(first, 'Killed')).toContain('main process');
    expect(first.snippet).toContain('allocating memory until the limit is hit');
    // the container restarts; the pod status now says OOMKilled; the node agent saw it too: still one alert
    await waitFor(
      async () => {
        const p = await kubectlJson<{
          status: { containerStatuses?: { lastState?: { terminated?: { reason?: string } } }[] };
        }>('eu-west', ['-n', ns.name, 'get', 'pod', pod]);
        return p.status.containerStatuses?.[0]?.lastState?.terminated?.reason === 'OOMKilled';
      },
      { timeoutMs: 60_000, what: 'OOMKilled in the pod status' },
    );
    // Kubernetes' own report of the kill reached the alerter too (the node agent's came first).
    await waitFor(() => outcomes.some((o) => o.owner === 'oom-main' && o.source !== 'cgroup') || undefined, {
      timeoutMs: 60_000,
      what: "the pod status' OOM finding handled",
    });
    // A re-list delivers every pod again; once the alerter has handled the pod once more, still one alert.
    const seen = handled('oom-main');
    for (const w of watch.watches) w.restart();
    await waitFor(() => handled('oom-main') > seen || undefined, {
      timeoutMs: 60_000,
      what: 'the re-listed pod handled again',
    });
    const all = forWorkload(await alerts(), 'oom-main');
    expect(all).toHaveLength(1);
  });

  it('an OOM kill of a child process (not reported by Kubernetes) is one alert from the node agent', async () => {
    await kubectl('eu-west', ['apply', '-f', '-'], { input: deployment('oom-child', '64Mi') });
    const pod = await runningPod(ns.name, 'oom-child');
    await kubectl('eu-west', [
      '-n',
      ns.name,
      'exec',
      pod,
      '--',
      'wget',
      '-qO-',
      'http://127.0.0.1:8080/control/oom-child?mb=256',
    ]);
    const alert = await waitFor(async () => forWorkload(await alerts(), 'oom-child')[0], {
      timeoutMs: 60_000,
      what: 'the OOM alert for oom-child',
    });
    expect(alert.channel).toBe('C_PAY_ALERTS');
    expect(alert.releaseId).toBe(release.id);
    expect(alert.title).toContain('child process');
    expect(field(alert, 'Pod')).toBe(`${ns.name}/${pod}`);
    expect(field(alert, 'Container')).toBe('app');
    expect(field(alert, 'Memory limit')).toBe('64Mi');
    expect(field(alert, 'Detected by')).toContain('node agent');
    expect(alert.snippet).toContain('to allocate 256 MiB');
    // The main process still answers after its child was killed, and Kubernetes saw no restart.
    await kubectl('eu-west', ['-n', ns.name, 'exec', pod, '--', 'wget', '-qO-', 'http://127.0.0.1:8080/']);
    const p = await kubectlJson<PodJson>('eu-west', ['-n', ns.name, 'get', 'pod', pod]);
    expect(p.status.containerStatuses?.[0]?.restartCount).toBe(0);
    expect(forWorkload(await alerts(), 'oom-child')).toHaveLength(1);
  });

  it('a crash loop of OOM kills is one alert whose count goes up', async () => {
    await kubectl('eu-west', ['apply', '-f', '-'], {
      input: deployment('oom-loop', '48Mi', { OOM_AFTER_SECONDS: '1' }),
    });
    const list = await waitFor(
      async () => {
        const l = forWorkload(await alerts(), 'oom-loop');
        return l.some((a) => a.count >= 2) ? l : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000, what: 'a second OOM kill of oom-loop' },
    );
    expect(new Set(list.map((a) => a.key)).size).toBe(1);
    expect(list.map((a) => a.count)).toEqual(list.map((_, i) => i + 1));
    expect(field(list.at(-1) as Alert, 'Occurrences')).toMatch(/^\d+ in /);
    expect(Number(field(list.at(-1) as Alert, 'Restarts'))).toBeGreaterThanOrEqual(1);
    await kubectl('eu-west', ['-n', ns.name, 'delete', 'deployment', 'oom-loop', '--wait=false']);
  });

  it('a silenced workload gets no alert', async () => {
    const key = forWorkload(await alerts(), 'oom-main')[0]?.silenceKey as string;
    await watch.silences.silence(key, 60_000, 'U_ALICE');
    const pod = await runningPod(ns.name, 'oom-main');
    const before = (await alerts()).length;
    await kubectl('eu-west', [
      '-n',
      ns.name,
      'exec',
      pod,
      '--',
      'wget',
      '-qO-',
      'http://127.0.0.1:8080/control/oom',
    ]);
    await waitFor(async () => (await watch.dedupe.current(key.slice('oom/'.length), 900_000))?.count === 2, {
      timeoutMs: 60_000,
      what: 'the second kill recorded',
    });
    // The alerter has handled the second kill and found it silenced: no alert went out for it.
    await waitFor(() => handled('oom-main', 'silenced') > 0 || undefined, {
      timeoutMs: 60_000,
      what: 'the second kill handled as silenced',
    });
    expect(forWorkload(await alerts(), 'oom-main')).toHaveLength(1);
    expect((await alerts()).length).toBe(before);
  });
});
