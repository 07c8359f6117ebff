// Alerts and cards people can act on, end to end: the real Bolt app (ferry
// bot) against the Slack emulator, the real watcher on the real eu-west
// cluster, real OOM kills of the sample app. An OOM kill in prod goes to the
// app's alerts channel with Show logs, Roll back (a prod release is in flight)
// and Silence; one in test goes to the owner team's channel (alerts.routes),
// without Roll back. A click on Show logs posts the snippet and the whole text
// as a file in the alert's thread; on the release card, in the release's thread.
// The prod pod is scraped by the local Prometheus: its alert carries the
// memory chart; the test alert says Prometheus did not answer.
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { StoredMessage } from '../../dev/slack-emulator/types.ts';
import { SERIES_COLOURS } from '../../src/analysis/charts.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { planRelease } from '../../src/domain/plan.ts';
import type { BuiltImage } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { KubeLogService } from '../../src/logs/service.ts';
import { startWatch, type WatchHandle } from '../../src/watch/watcher.ts';
import {
  ensureInfra,
  type InfraInfo,
  kubectl,
  kubectlJson,
  loadInfo,
  newNamespace,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';
import { runningPod } from '../support/kube.ts';
import { fastConfig, type Harness, harness } from '../support/lifecycle.ts';
import { METRICS_REPO, metricsImages } from '../support/metrics-images.ts';
import { pixelsOf } from '../support/png.ts';
import { ensurePrometheus } from '../support/prometheus.ts';
import { TestRedis } from '../support/redis.ts';

const SECRET = 'alert-actions-signing-secret';
const BOT = 'xoxb-ferry-alert-actions';
const RELEASES = 'C_RELEASES';
const APP_ALERTS = 'C_PAY_ALERTS';
const TEAM_ALERTS = 'C_PAY_TEAM';

let info: InfraInfo;
let redis: TestRedis;
let ns: TestNamespace;
let config: FerryConfig;
let emu: SlackEmulator;
let h: Harness;
let bot: RunningBot;
let watch: WatchHandle;
let release: Release;
let prometheus: string;
let metricsV1: BuiltImage;

/**
 * A Deployment of payments for an environment; `scraped`: the local Prometheus scrapes its pods, and
 * they run the sample app's build with /metrics (test/support/metrics-images.ts).
 */
function deployment(name: string, environment: string, scraped = false): string {
  const labels = { app: name, 'ferry.dev/app': 'payments', 'ferry.dev/environment': environment };
  const annotations = scraped ? { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' } : {};
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns.name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels, annotations },
        spec: {
          terminationGracePeriodSeconds: 1,
          enableServiceLinks: false,
          containers: [
            {
              name: 'app',
              image: scraped
                ? `${loadInfo().registries.regions['eu-west']}/${METRICS_REPO}@${metricsV1.digest}`
                : `${info.images.sampleApp.image}:v1`,
              resources: { limits: { memory: '48Mi' }, requests: { memory: '16Mi' } },
            },
          ],
        },
      },
    },
  });
}

interface PodJson {
  metadata: { name: string };
  status: {
    phase: string;
    containerStatuses?: {
      ready: boolean;
      lastState?: { terminated?: { reason?: string } };
    }[];
  };
}

/** Kills the pod's main process by memory (the sample app allocates until the limit) and waits for the restart. */
async function oomKill(pod: string): Promise<void> {
  await kubectl('eu-west', [
    '-n',
    ns.name,
    'exec',
    pod,
    '--',
    'wget',
    '-qO-',
    'http://127.0.0.1:8080/control/oom',
  ]).catch(
    () => {}, // the exec dies with the process
  );
  await waitFor(
    async () => {
      const p = await kubectlJson<PodJson>('eu-west', ['-n', ns.name, 'get', 'pod', pod]);
      return p.status.containerStatuses?.[0]?.lastState?.terminated?.reason === 'OOMKilled';
    },
    { timeoutMs: 120_000, what: `OOMKilled in the status of ${pod}` },
  );
}

const flat = (m: StoredMessage | undefined) => JSON.stringify(m?.blocks ?? []);
const buttons = (m: StoredMessage | undefined) =>
  (m?.blocks ?? [])
    .filter((b) => b['type'] === 'actions')
    .flatMap((b) =>
      (b['elements'] as { action_id: string; value: string }[]).map((e) => [e.action_id, e.value]),
    );

/** The alert (top-level message) about a pod in a channel. */
function alertIn(channel: string, pod: string): StoredMessage | undefined {
  return emu.channelMessages(channel).find((m) => m.text.startsWith('OOM kill') && flat(m).includes(pod));
}

/** The thread replies under `ts` that carry a logs snippet, and the files shared into that thread. */
function logsInThread(channel: string, ts: string) {
  const replies = emu.thread(channel, ts).filter((m) => m.ts !== ts && m.text.includes('Output of payments'));
  const files = emu
    .files()
    .filter((f) => f.name.endsWith('.log') && (f.shares[channel] ?? []).some((s) => s.thread_ts === ts));
  return { replies, files };
}

beforeAll(async () => {
  info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  redis = await TestRedis.start();
  ns = await newNamespace('eu-west', 'alert-actions');
  config = fastConfig((c) => {
    const payments = c.apps.payments as FerryConfig['apps'][string];
    payments.namespace = ns.name;
    payments.environments = { prod: { deployment: 'payments' }, test: { deployment: 'payments-test' } };
    c.apps = { payments };
    // prod to the app's channel, the other environments to the owner team's
    c.teams = { 'payments-devs': { alerts: TEAM_ALERTS } };
    c.alerts.routes = [
      { environments: ['prod'], apps: ['*'], to: 'app' },
      { environments: ['*'], apps: ['*'], to: 'team' },
    ];
  });
  emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
  emu.addChannel({ id: APP_ALERTS, name: 'pay-alerts' });
  emu.addChannel({ id: TEAM_ALERTS, name: 'pay-team' });
  emu.addUser({ id: 'U_ERIN', name: 'erin', realName: 'Erin Checkout' });
  h = harness(redis.url, config);
  h.startWorkers();
  bot = await startSlackBot({
    runtime: h.rt,
    token: BOT,
    signingSecret: SECRET,
    apiUrl: emu.apiUrl,
    port: 0,
    services: {
      logs: new KubeLogService({ config: h.rt.config, announcer: h.rt.announcer, releases: h.rt.releases }),
    },
  });
  emu.botEventsUrl = bot.url;

  prometheus = await ensurePrometheus();
  metricsV1 = (await metricsImages(['eu-west'])).v1;
  await kubectl('eu-west', ['apply', '-f', '-'], { input: deployment('payments', 'prod', true) });
  await kubectl('eu-west', ['apply', '-f', '-'], { input: deployment('payments-test', 'test') });

  // a release of payments to prod in flight (deploying), with its card in #releases
  const p = planRelease({ app: 'payments', version: 'v1', environment: 'prod', factors: [] }, config);
  if (!p.ok) throw new Error(p.error.message);
  release = {
    id: 'R-ACT-1',
    app: 'payments',
    version: 'v1',
    environment: 'prod',
    regions: ['eu-west'],
    factors: [],
    plan: p.plan,
    requestedBy: 'U_ALICE',
    requestedAt: Date.now(),
    requestChannel: RELEASES,
    state: 'deploying',
    stateSince: Date.now(),
    approvals: [],
    rev: 1,
  };
  await h.rt.releases.create(release, 'test');
  await h.rt.announcer.announce({ kind: 'card', releaseId: release.id });

  watch = startWatch({
    config: h.rt.config,
    redis: h.rt.store,
    prefix: h.prefix,
    announcer: h.rt.announcer,
    releases: h.rt.releases,
    log: logger('alert-actions-test').child({}, { level: 'warn' }),
    regions: ['eu-west'],
    pollMs: 250,
  });
  await watch.ready;
}, 3_600_000);

afterAll(async () => {
  await watch?.stop();
  await bot?.stop();
  await h?.close();
  await emu?.close();
  await ns?.remove().catch(() => {});
  await redis?.stop();
});

describe('alerts and cards people can act on', () => {
  it('Show logs on a release card posts the snippet and the file in the release thread', async () => {
    const pod = await runningPod(ns.name, 'payments');
    const card = await emu.waitFor(
      () => emu.channelMessages(RELEASES).find((m) => buttons(m).some(([id]) => id === 'logs')),
      30_000,
    );
    const d = await emu.clickButton({
      userId: 'U_ALICE',
      channelId: RELEASES,
      messageTs: card.ts,
      actionId: 'logs',
    });
    expect(d.acked).toBe(true);
    const posted = await emu.waitFor(() => {
      const l = logsInThread(RELEASES, card.ts);
      return l.replies.length && l.files.length ? l : undefined;
    }, 30_000);
    expect(posted.replies).toHaveLength(1);
    expect(posted.replies[0]?.text).toContain(`pod \`${pod}\``);
    expect(flat(posted.replies[0])).toContain('Requested by');
    expect(posted.files).toHaveLength(1);
    expect(posted.files[0]?.name).toBe(`payments-prod-eu-west-${pod}-stdout.log`);
    // the sample app's start-up line is in the whole text
    expect(emu.fileContent(posted.files[0]?.id as string)?.toString()).toMatch(/\S/);
    // a second click later is a fresh read (not swallowed as a double click)
    await emu.clickButton({ userId: 'U_ALICE', channelId: RELEASES, messageTs: card.ts, actionId: 'logs' });
    await emu.waitFor(() => logsInThread(RELEASES, card.ts).replies.length === 2 || undefined, 30_000);
    // erin (checkout's team) may not read payments' logs: refused, nothing posted
    const before = logsInThread(RELEASES, card.ts).replies.length;
    await emu.clickButton({ userId: 'U_ERIN', channelId: RELEASES, messageTs: card.ts, actionId: 'logs' });
    const refusal = await emu.waitFor(
      () =>
        emu.ephemerals('U_ERIN').find((e) => JSON.stringify(e).includes('may not read the logs of payments')),
      15_000,
    );
    expect(refusal).toBeTruthy();
    expect(logsInThread(RELEASES, card.ts).replies).toHaveLength(before);
  });

  it('an OOM kill in prod: the app alerts channel, with Show logs, Roll back and Silence; Show logs answers in the alert thread', async () => {
    const pod = await runningPod(ns.name, 'payments');
    // the real Prometheus has the pod's memory before the kill
    config.metrics = { prometheus, timeout: '5s' };
    await waitFor(
      async () => {
        const q = `count_over_time(process_resident_memory_bytes{namespace="${ns.name}",pod="${pod}"}[5m])`;
        const r = (await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(q)}`).then((x) =>
          x.json(),
        )) as {
          data?: { result?: { value: [number, string] }[] };
        };
        return Number(r.data?.result?.[0]?.value[1] ?? 0) >= 3;
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: `samples of ${pod} in Prometheus` },
    );
    await oomKill(pod);
    const alert = await emu.waitFor(() => alertIn(APP_ALERTS, pod), 120_000);
    expect(alertIn(TEAM_ALERTS, pod)).toBeUndefined();
    expect(flat(alert)).toContain('*Memory limit*\\n48Mi');
    expect(flat(alert)).toMatch(
      /\*Memory history\*\\npeak [\d.]+ MiB in the last 15m \(chart in the thread\)/,
    );
    // the chart: a PNG in the alert's thread, the memory line in the series colour and the limit line
    const chart = await emu.waitFor(
      () =>
        emu
          .files()
          .find(
            (f) =>
              f.name === `memory-payments-prod-${pod}.png` &&
              (f.shares[APP_ALERTS] ?? []).some((s) => s.thread_ts === alert.ts),
          ),
      30_000,
    );
    const png = PNG.sync.read(emu.fileContent(chart.id) as Buffer);
    expect(pixelsOf(png, SERIES_COLOURS.new)).toBeGreaterThan(100);
    expect(pixelsOf(png, SERIES_COLOURS.threshold)).toBeGreaterThan(50);
    expect(buttons(alert).map(([id]) => id)).toEqual(['alert-logs', 'rollback', 'silence']);
    expect(buttons(alert)[1]?.[1]).toBe(release.id);

    // erin may not read payments' logs from an alert either
    await emu.clickButton({
      userId: 'U_ERIN',
      channelId: APP_ALERTS,
      messageTs: alert.ts,
      actionId: 'alert-logs',
    });
    await emu.waitFor(
      () =>
        emu
          .ephemerals('U_ERIN')
          .find(
            (e) =>
              e.channel === APP_ALERTS && JSON.stringify(e).includes('may not read the logs of payments'),
          ),
      15_000,
    );
    expect(logsInThread(APP_ALERTS, alert.ts).replies).toHaveLength(0);
    const card = emu.channelMessages(RELEASES).find((m) => buttons(m).some(([id]) => id === 'logs'));
    const releaseFiles = () => logsInThread(RELEASES, card?.ts as string).files.map((f) => f.id);
    const inReleaseBefore = releaseFiles();
    const d = await emu.clickButton({
      userId: 'U_ALICE',
      channelId: APP_ALERTS,
      messageTs: alert.ts,
      actionId: 'alert-logs',
    });
    expect(d.acked).toBe(true);
    const posted = await emu.waitFor(() => {
      const l = logsInThread(APP_ALERTS, alert.ts);
      return l.replies.length && l.files.length ? l : undefined;
    }, 60_000);
    expect(posted.replies[0]?.text).toContain(`pod \`${pod}\``);
    const text = emu.fileContent(posted.files[0]?.id as string)?.toString() ?? '';
    // the killed container's output, from before the restart
    expect(text).toContain('previous container: OOMKilled');
    expect(text).toContain('allocating memory until the limit is hit');
    // not in the release thread: the alert's button answers in the alert's thread
    expect(releaseFiles()).toEqual(inReleaseBefore);
  });

  it('an OOM kill in test goes to the owner team channel, with Show logs and Silence and no Roll back', async () => {
    const pod = await runningPod(ns.name, 'payments-test');
    // Prometheus configured but not answering (nothing listens on the port): the alert says so and goes out
    config.metrics = { prometheus: 'http://127.0.0.1:9', timeout: '2s' };
    await oomKill(pod);
    const alert = await emu.waitFor(() => alertIn(TEAM_ALERTS, pod), 120_000);
    expect(alertIn(APP_ALERTS, pod)).toBeUndefined();
    expect(alert.text).toContain('in test/eu-west');
    expect(flat(alert)).toContain('*Memory history*\\nnot available: Prometheus did not answer');
    expect(buttons(alert).map(([id]) => id)).toEqual(['alert-logs', 'silence']);
    expect(JSON.parse(buttons(alert)[0]?.[1] as string)).toEqual([
      expect.any(String),
      'payments',
      'test',
      'eu-west',
      pod,
    ]);
  });
});
