// The whole release flow as a person sees it: Chromium drives the chat
// console of the Slack emulator; the real Bolt bot, the worker with the real
// runners (buildah, registry sync, Kubernetes rollouts on both local
// clusters) and a real Redis do the work. Screenshots of the card before and
// after approval are saved under test-results/screenshots/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { startPullRelay } from '../../src/cli/watch.ts';
import { actorIdOf } from '../../src/domain/people.ts';
import { ensureNamespaces } from '../../src/kube/namespaces.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import type { PullRelay } from '../../src/registry/pull-relay.ts';
import { realRunners } from '../../src/runners/real.ts';
import { commandServices, createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { ensureInfra, kubectlJson, REPO_ROOT } from '../support/infra.ts';
import { fastConfig } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';

const SHOTS = join(REPO_ROOT, 'test-results', 'screenshots');
const SECRET = 'console-test-secret';
const TOKEN = 'xoxb-console-test';

let redis: TestRedis;
let rt: Runtime;
let emulator: SlackEmulator;
let bot: Awaited<ReturnType<typeof startSlackBot>>;
let workers: RunningWorkers;
let relay: PullRelay | undefined;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  await ensureInfra(['registries', 'images', 'k8s']);
  mkdirSync(SHOTS, { recursive: true });
  redis = await TestRedis.start();
  const config = fastConfig();
  rt = createRuntime({ config, redisUrl: redis.url, name: 'console-test' });
  await ensureNamespaces(config);
  emulator = await SlackEmulator.start({
    signingSecret: SECRET,
    botToken: TOKEN,
    users: Object.entries(config.people).map(([name, id]) => ({ id: actorIdOf(id), name, realName: name })),
    channels: [
      { id: 'C_RELEASES', name: 'releases' },
      { id: 'C_PAY_ALERTS', name: 'payments-alerts' },
      { id: 'C_CHECKOUT_ALERTS', name: 'checkout-alerts' },
    ],
  });
  const services = await commandServices(rt);
  bot = await startSlackBot({
    runtime: rt,
    token: TOKEN,
    signingSecret: SECRET,
    apiUrl: emulator.apiUrl,
    port: 0,
    services: { operations: services.operations, rollbacks: services.rollbacks, logs: services.logs },
  });
  emulator.botEventsUrl = bot.url as string;
  // What `ferry watch` runs beside the local clusters: the nodes' pre-pull relay (prePull.throttle).
  relay = await startPullRelay(rt, ['eu-west', 'us-east'], { out: () => {}, err: () => {} });
  if (!relay)
    throw new Error('the pre-pull relay did not start (is prePull.throttle in the example config?)');
  workers = startWorkers(jobContext(rt, await realRunners(rt), 250), {
    connection: rt.queue,
    log: logger('console-test-worker').child({}, { level: 'warn' }),
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
});

afterAll(async () => {
  await browser?.close();
  await workers?.close();
  await relay?.close();
  await bot?.stop();
  await emulator?.close();
  await rt?.close();
  await redis?.stop();
});

async function as(user: string): Promise<void> {
  await page.getByTestId('user-picker').selectOption(user);
}

async function type(command: string): Promise<void> {
  await page.getByTestId('command-input').fill(command);
  await page.getByTestId('command-send').click();
}

/** The console re-renders a message when it is edited; take the shot once it holds still. */
async function shot(locator: ReturnType<Page['locator']>, file: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await locator.screenshot({ path: join(SHOTS, file), timeout: 5000 });
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
      await page.waitForTimeout(300);
    }
  }
}

/** The card of a release: the channel message whose header is "<app> <version> → <env>". */
function card(title: string) {
  return page
    .getByTestId('messages')
    .getByTestId('message')
    .filter({ has: page.getByTestId('block-title').getByText(title, { exact: true }) });
}

describe('a release from the chat console', () => {
  it('goes to test, then to prod in both regions after an approver clicks Approve', async () => {
    await page.goto(`${emulator.url}?user=U_ALICE&channel=C_RELEASES`);
    await page.locator('body[data-ready="true"]').waitFor();

    // A typo gets an answer only alice sees, and nothing starts.
    await type('/release paymnts v2 to test');
    await expect
      .poll(() => page.getByTestId('ephemeral').last().textContent(), { timeout: 30_000 })
      .toContain('Did you mean "payments"?');
    expect(await rt.releases.active()).toEqual([]);

    await type('/release payments v2 to test');
    const testCard = card('payments v2 → test');
    await testCard.waitFor({ timeout: 60_000 });
    await expect
      .poll(() => testCard.getByTestId('block-facts').textContent(), { timeout: 420_000, interval: 2000 })
      .toMatch(/succeeded|failed|rolled-back|aborted/);
    expect(await testCard.getByTestId('block-facts').textContent()).toContain('succeeded');
    expect(
      await page
        .getByTestId('messages')
        .getByTestId('message')
        .filter({ hasText: 'payments v2 → test' })
        .count(),
    ).toBe(1);

    await type('/release payments v2');
    const prodCard = card('payments v2 → prod');
    await prodCard.waitFor({ timeout: 60_000 });
    await expect
      .poll(() => prodCard.getByTestId('block-approvals').textContent(), { timeout: 60_000 })
      .toContain('Waiting for 1 approval');
    await shot(prodCard, 'card-before-approval.png');

    // alice asked for it, so her click is refused and changes nothing.
    await prodCard.getByTestId('button-approve').click();
    await expect
      .poll(() => page.getByTestId('ephemeral').last().textContent(), { timeout: 30_000 })
      .toContain('come from group approvers');

    // While it waits for bob, Ferry builds, syncs and pulls its image on both regions' nodes; nothing
    // of prod runs yet.
    const waiting = (await rt.releases.byApp('payments')).find((r) => r.environment === 'prod');
    await expect
      .poll(
        () =>
          emulator
            .thread('C_RELEASES', waiting?.thread?.ts as string)
            .map((m) => m.text)
            .join('\n'),
        { timeout: 300_000, interval: 1000 },
      )
      .toMatch(
        /While waiting: image built, synced and pulled in eu-west \(\d+ nodes?\), us-east \(\d+ nodes?\)/,
      );
    // ...through the nodes' relay, held to its share (its manifest at least: layers the nodes have
    // from an earlier run are not read again).
    expect(relay?.stats.served).toBeGreaterThan(0);
    expect((await rt.releases.get(waiting?.id as string))?.state).toBe('awaiting-approval');
    expect((await rt.versions.get('payments', 'v2'))?.images.prod?.digest).toMatch(/^sha256:/);

    await as('U_BOB');
    await prodCard.getByTestId('button-approve').click();
    await expect
      .poll(() => prodCard.getByTestId('block-approvals').textContent(), { timeout: 60_000 })
      .toContain('Approved by');
    // Batches progress on the card, region by region.
    await expect
      .poll(() => prodCard.textContent(), { timeout: 300_000, interval: 1000 })
      .toMatch(/us-east batch \d\/3/);
    // Wait for the end, whichever it is, then say which.
    await expect
      .poll(() => prodCard.getByTestId('block-facts').textContent(), { timeout: 600_000, interval: 2000 })
      .toMatch(/succeeded|failed|rolled-back|aborted/);
    expect(await prodCard.getByTestId('block-facts').textContent()).toContain('succeeded');
    await page.screenshot({ path: join(SHOTS, 'console-after-approval.png'), fullPage: true });
    await shot(prodCard, 'card-after-approval.png');

    // What the card says is what the clusters run.
    const release = (await rt.releases.byApp('payments')).find((r) => r.environment === 'prod');
    expect(release?.state).toBe('succeeded');
    const digest = (await rt.versions.get('payments', 'v2'))?.images.prod?.digest as string;
    for (const region of ['eu-west', 'us-east'] as const) {
      const pods = await kubectlJson<{
        items: { status: { containerStatuses?: { imageID: string; ready: boolean }[] } }[];
      }>(region, [
        'get',
        'pods',
        '-n',
        'payments',
        '-l',
        // prod's own workload (payments-prod): the test release's pods in eu-west are not prod's
        'ferry.dev/app=payments,ferry.dev/environment=prod',
        '--field-selector=status.phase=Running',
      ]);
      const statuses = pods.items.flatMap((p) => p.status.containerStatuses ?? []);
      expect(statuses.length).toBeGreaterThan(0);
      for (const s of statuses) {
        expect(s.ready).toBe(true);
        expect(s.imageID).toContain(digest);
      }
    }
    // The thread holds the steps, one parent message for the release.
    const thread = emulator.thread('C_RELEASES', release?.thread?.ts as string);
    const texts = thread.map((m) => m.text).join('\n');
    expect(texts).toContain('eu-west: all');
    expect(texts).toContain('us-east: all');
  });
});
