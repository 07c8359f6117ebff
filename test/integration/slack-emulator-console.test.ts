// The emulator's console page driven by a real browser (Chromium via playwright-core) with a real Bolt app
// behind it: what a person types and clicks reaches the bot signed, and the bot's answers show up live.
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';

const SECRET = 'console-signing-secret';
const BOT = 'xoxb-console-test';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SHOTS = process.env['FERRY_CONSOLE_SHOTS'];

describe.skipIf(!existsSync(CHROMIUM))('Slack emulator console', () => {
  let emu: SlackEmulator;
  let app: App;
  let browser: Browser;
  let page: Page;

  const shot = async (name: string) => {
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  };

  beforeAll(async () => {
    emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
    app = new App({
      token: BOT,
      signingSecret: SECRET,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    app.command('/release', async ({ ack, command, client }) => {
      await ack({ text: `Planning *${command.text}* for you…` });
      const posted = await client.chat.postMessage({
        channel: command.channel_id,
        text: `Release ${command.text} awaiting approval`,
        blocks: [
          { type: 'header', text: { type: 'plain_text', text: `Release ${command.text}` } },
          {
            type: 'section',
            block_id: 'card-state',
            text: {
              type: 'mrkdwn',
              text: `:hourglass_flowing_sand: *Awaiting approval* · requested by <@${command.user_id}>`,
            },
            fields: [
              { type: 'mrkdwn', text: '*Env*\nprod' },
              { type: 'mrkdwn', text: '*Regions*\n`eu-1`, `us-1`' },
            ],
          },
          { type: 'divider' },
          {
            type: 'context',
            elements: [{ type: 'mrkdwn', text: 'Plan: _degraded_ · <https://ferry.example/r/1|details>' }],
          },
          {
            type: 'actions',
            block_id: 'decide',
            elements: [
              {
                type: 'button',
                action_id: 'approve',
                style: 'primary',
                text: { type: 'plain_text', text: 'Approve' },
                value: 'r1',
              },
              {
                type: 'button',
                action_id: 'reject',
                style: 'danger',
                text: { type: 'plain_text', text: 'Reject' },
                value: 'r1',
              },
            ],
          },
        ],
      });
      await client.chat.postMessage({
        channel: command.channel_id,
        thread_ts: posted.ts!,
        text: 'Plan:\n```build → sync → deploy (2 batches)```',
      });
      await client.filesUploadV2({
        channel_id: command.channel_id,
        thread_ts: posted.ts!,
        filename: 'plan.txt',
        content: 'factor degraded: batches=2, pause=5m\n',
        initial_comment: 'Full plan attached',
      });
    });
    app.action('approve', async ({ ack, body, client }) => {
      await ack();
      const b = body as { user: { id: string }; channel?: { id: string }; message?: { ts: string } };
      await client.chat.update({
        channel: b.channel!.id,
        ts: b.message!.ts,
        text: 'Approved',
        blocks: [
          {
            type: 'section',
            block_id: 'card-state',
            text: { type: 'mrkdwn', text: `:white_check_mark: *Approved* by <@${b.user.id}>` },
          },
        ],
      });
    });
    app.action('reject', async ({ ack, body, client }) => {
      await ack();
      const b = body as { trigger_id: string };
      await client.views.open({
        trigger_id: b.trigger_id,
        view: {
          type: 'modal',
          callback_id: 'why',
          title: { type: 'plain_text', text: 'Reject release' },
          submit: { type: 'plain_text', text: 'Reject' },
          blocks: [
            {
              type: 'input',
              block_id: 'reason',
              label: { type: 'plain_text', text: 'Reason' },
              element: { type: 'plain_text_input', action_id: 'text', multiline: true },
            },
          ],
        },
      });
    });
    app.view('why', async ({ ack, view }) => {
      const reason = view.state.values['reason']?.['text']?.value ?? '';
      if (reason.length < 3) await ack({ response_action: 'errors', errors: { reason: 'Say why.' } });
      else await ack();
    });
    const server = await app.start(0);
    emu.botEventsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await emu?.close();
  });

  it('runs a slash command typed by the chosen user and shows the card, the ephemeral and the thread', async () => {
    await page.goto(`${emu.url}?user=U_ALICE&channel=C_RELEASES`);
    await page.locator('body[data-ready="true"]').waitFor();
    await expect.poll(() => page.getByTestId('user-picker').inputValue()).toBe('U_ALICE');
    await page.getByTestId('command-input').fill('/release payments v2 degraded');
    await page.getByTestId('command-input').press('Enter');

    const card = page.getByTestId('message').filter({ hasText: 'Release payments v2 degraded' });
    await card.getByTestId('block-card-state').waitFor();
    expect(await card.getByTestId('block-card-state').textContent()).toContain('Awaiting approval');
    expect(await card.locator('b').first().textContent()).toBe('Awaiting approval');
    expect(await card.getByTestId('mention').first().textContent()).toBe('@alice');
    expect(await card.getByTestId('button-approve').getAttribute('class')).toContain('primary');
    expect(await card.getByTestId('button-reject').getAttribute('class')).toContain('danger');
    expect(await card.locator('a', { hasText: 'details' }).getAttribute('href')).toBe(
      'https://ferry.example/r/1',
    );

    const eph = page.getByTestId('ephemeral');
    await eph.waitFor();
    expect(await eph.textContent()).toContain('Only visible to you');
    expect(await eph.textContent()).toContain('Planning payments v2 degraded for you');

    await card.getByTestId('thread-link').filter({ hasText: '2 replies' }).waitFor();
    await card.getByTestId('thread-link').click();
    const replies = page.getByTestId('thread-reply');
    await expect.poll(() => replies.count()).toBe(2);
    expect(await replies.nth(0).locator('pre').textContent()).toBe('build → sync → deploy (2 batches)');
    expect(await replies.nth(1).getByTestId('file-name').textContent()).toContain('plan.txt');
    expect(await replies.nth(1).getByTestId('file-preview').textContent()).toContain('factor degraded');
    await shot('01-card-thread');

    // Bob does not see Alice's ephemeral
    await page.getByTestId('user-picker').selectOption('U_BOB');
    await expect.poll(() => page.getByTestId('ephemeral').count()).toBe(0);
  });

  it('clicks a real button as Bob; the bot edits the card live', async () => {
    const card = page.getByTestId('message').filter({ has: page.getByTestId('button-approve') });
    await card.getByTestId('button-approve').click();
    const state = page.getByTestId('block-card-state');
    await expect.poll(() => state.first().textContent()).toContain('Approved by @bob');
    expect(await page.getByTestId('edited').count()).toBeGreaterThan(0);
    const click = emu.deliveries.find((d) => d.payloadType === 'block_actions');
    expect(click?.payload['user']).toMatchObject({ id: 'U_BOB' });
    await shot('02-approved');
  });

  it('opens a modal from a button, shows validation errors and closes on success', async () => {
    await page.getByTestId('user-picker').selectOption('U_CAROL');
    await page.getByTestId('command-input').fill('/release checkout v9');
    await page.getByTestId('command-input').press('Enter');
    const card = page.getByTestId('message').filter({ hasText: 'Release checkout v9' });
    await card.getByTestId('button-reject').click();
    const modal = page.getByTestId('modal');
    await modal.waitFor();
    expect(await page.getByTestId('modal-title').textContent()).toBe('Reject release');
    await page.getByTestId('input-reason').fill('no');
    await page.getByTestId('modal-submit').click();
    await page.getByTestId('modal-error-reason').waitFor();
    expect(await page.getByTestId('modal-error-reason').textContent()).toBe('Say why.');
    expect(await page.getByTestId('input-reason').inputValue()).toBe('no');
    await shot('03-modal-error');
    await page.getByTestId('input-reason').fill('error budget spent');
    await page.getByTestId('modal-submit').click();
    await modal.waitFor({ state: 'hidden' });
    const submitted = emu.deliveries.filter((d) => d.payloadType === 'view_submission').at(-1);
    expect(JSON.stringify(submitted?.payload)).toContain('error budget spent');
  });

  it('shows Slack’s error when the bot is down', async () => {
    const url = emu.botEventsUrl;
    emu.botEventsUrl = 'http://127.0.0.1:9/slack/events';
    try {
      await page.getByTestId('command-input').fill('/release payments v3');
      await page.getByTestId('command-input').press('Enter');
      const err = page.getByTestId('ephemeral').filter({ hasText: 'failed with the error' });
      await err.waitFor();
      expect(await err.textContent()).toContain('/release failed with the error "dispatch_failed"');
      expect(await err.getByTestId('message-author').textContent()).toBe('Slackbot');
    } finally {
      emu.botEventsUrl = url;
    }
  });
});
