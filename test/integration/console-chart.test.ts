// A gate's chart as people see it: drawn by Ferry's renderer (vega-lite +
// resvg), sent by the real Slack delivery with files upload v2 into a
// release's thread on the emulator, and shown by the emulator's console in a
// real browser (Chromium via playwright-core). The screenshot of the thread is
// the README's (test-results/screenshots/console-chart.png → docs/).
// The series are made up here: the analysis e2e test (test/e2e/analysis.test.ts)
// checks the figures against a real Prometheus; this one checks the picture
// reaches the person.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import { type ChartPanel, renderChart } from '../../src/analysis/charts.ts';
import { notifierClient } from '../../src/chat/slack/app.ts';
import { type ChatClient, SlackDelivery } from '../../src/chat/slack/delivery.ts';
import type { Release } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { exampleConfig } from '../support/config.ts';
import { REPO_ROOT } from '../support/infra.ts';
import { TestRedis } from '../support/redis.ts';

const TOKEN = 'xoxb-console-chart';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test-results', 'screenshots');

let emu: SlackEmulator;
let server: TestRedis;
let store: Redis;
let browser: Browser;
let thread: { channel: string; ts: string };

beforeAll(async () => {
  [emu, server] = await Promise.all([
    SlackEmulator.start({ signingSecret: 's', botToken: TOKEN }),
    TestRedis.start(),
  ]);
  store = new Redis(server.url);
  // The release's card, as the notifier posts it first.
  const card = emu.callMethod(
    'chat.postMessage',
    { channel: 'C_RELEASES', text: 'r7 payments v2 → prod: deploying' },
    TOKEN,
  );
  thread = { channel: 'C_RELEASES', ts: String(card['ts']) };
  if (existsSync(CHROMIUM))
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await emu?.close();
  store?.disconnect();
  await server?.stop();
});

/** Twelve measurements two seconds apart: the new pods err more and answer slower than the old. */
function panels(t0: number): ChartPanel[] {
  const at = Array.from({ length: 12 }, (_, i) => t0 + i * 2000);
  const wave = (base: number, amp: number) => at.map((_, i) => ({ value: base + amp * Math.sin(i / 2) }));
  return [
    { title: 'error-rate', series: { at, new: wave(0.2, 0.03), old: wave(0.01, 0.005) }, max: 0.1 },
    { title: 'p95-latency', series: { at, new: wave(0.09, 0.01), old: wave(0.05, 0.005) } },
  ];
}

describe.skipIf(!existsSync(CHROMIUM))('a gate chart in the thread, in the console', () => {
  it('is uploaded into the release thread and the console shows the picture itself', async () => {
    const t0 = Date.now() - 30_000;
    const png = await renderChart('payments v2 · eu-west batch 1/2', panels(t0), t0);
    const delivery = new SlackDelivery({
      config: () => exampleConfig(),
      releases: {
        get: async (id) => ({ id, thread }) as unknown as Release,
        patch: async () => undefined,
      },
      store,
      prefix: `chart${Date.now().toString(36)}`,
      client: notifierClient(TOKEN, emu.apiUrl) as unknown as ChatClient,
      log: logger('console-chart-test').child({}, { level: 'silent' }),
    });
    await delivery.deliver(
      {
        kind: 'reply',
        releaseId: 'r7',
        text: 'eu-west batch 1/2 analysis: fail (error-rate 0.21 > 0.1)',
        snippet:
          'error-rate   new 0.21   old 0.01   max 0.1   fail\np95-latency  new 0.09 s old 0.05 s  fail',
        file: {
          name: 'r7-eu-west-batch-1.png',
          text: 'eu-west batch 1/2: new pods (orange) against old (blue), thresholds dashed red',
          bytes: png.toString('base64'),
        },
      },
      (_step, fn) => fn(),
    );
    // Uploaded the Slack way (files upload v2), not as text.
    expect(emu.calls.map((c) => c.method)).toEqual(
      expect.arrayContaining(['files.getUploadURLExternal', 'files.completeUploadExternal']),
    );

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${emu.url}?user=U_ALICE&channel=C_RELEASES`);
    await page.locator('body[data-ready="true"]').waitFor();
    await page.getByTestId('thread-link').first().click();
    const image = page.getByTestId('thread-reply').locator('img');
    await image.waitFor();
    // The browser decoded the PNG the console links to: the picture, at the size it was drawn.
    await expect
      .poll(() =>
        image.evaluate((img) => {
          const el = img as unknown as { complete: boolean; naturalWidth: number };
          return el.complete ? el.naturalWidth : 0;
        }),
      )
      .toBe(pngWidth(png));
    mkdirSync(SHOTS, { recursive: true });
    await page.getByTestId('thread-pane').screenshot({ path: join(SHOTS, 'console-chart.png') });
    await page.close();
  });
});

/** A PNG's width, from its IHDR chunk. */
function pngWidth(png: Buffer): number {
  return png.readUInt32BE(16);
}
