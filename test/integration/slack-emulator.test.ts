// The Slack emulator driven by the real @slack/web-api WebClient and the real @slack/bolt App (HTTP and
// Socket Mode). Every assertion is about what a person in the workspace would see.
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import { WebClient, WebClientEvent } from '@slack/web-api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';

const SECRET = 'test-signing-secret';
const BOT = 'xoxb-ferry-test';
const APP = 'xapp-1-A_FERRY-test';

const releaseBlocks = (text: string) => [
  { type: 'section', block_id: 'summary', text: { type: 'mrkdwn', text } },
  {
    type: 'actions',
    block_id: 'decide',
    elements: [
      {
        type: 'button',
        action_id: 'approve',
        style: 'primary',
        text: { type: 'plain_text', text: 'Approve' },
        value: 'rel-1',
      },
      {
        type: 'button',
        action_id: 'reject',
        style: 'danger',
        text: { type: 'plain_text', text: 'Reject' },
        value: 'rel-1',
      },
    ],
  },
];

type PlatformError = { error?: string; errors?: string[] };
function platformError(err: unknown): PlatformError {
  return ((err as { data?: unknown }).data ?? {}) as PlatformError;
}
const noError = (): PlatformError => ({});

describe('Web API through @slack/web-api', () => {
  let emu: SlackEmulator;
  let client: WebClient;

  beforeAll(async () => {
    emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
    client = new WebClient(BOT, {
      slackApiUrl: emu.apiUrl,
      logLevel: LogLevel.ERROR,
      retryConfig: { retries: 3, minTimeout: 50, maxTimeout: 200 },
    });
  });
  afterAll(() => emu.close());
  afterEach(() => emu.clearInjections());

  it('authenticates the bot and rejects bad tokens', async () => {
    const me = await client.auth.test();
    expect(me).toMatchObject({ ok: true, team_id: 'T0FERRY', user_id: 'U_FERRYBOT', bot_id: 'B_FERRY' });
    const stranger = new WebClient('xoxb-wrong', { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    await expect(stranger.auth.test()).rejects.toSatisfy((e) => platformError(e).error === 'invalid_auth');
    const anonymous = new WebClient(undefined, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    await expect(anonymous.auth.test()).rejects.toSatisfy((e) => platformError(e).error === 'not_authed');
  });

  it('posts, threads and edits messages as people see them', async () => {
    const parent = await client.chat.postMessage({
      channel: 'C_RELEASES',
      text: 'Release payments v2 requested',
      blocks: releaseBlocks('*payments* `v2` to _prod_'),
    });
    expect(parent.ok).toBe(true);
    const reply = await client.chat.postMessage({
      channel: 'C_RELEASES',
      thread_ts: parent.ts!,
      text: 'Building image…',
    });
    await client.chat.update({ channel: 'C_RELEASES', ts: parent.ts!, text: 'Release payments v2 building' });

    const top = emu.channelMessages('C_RELEASES');
    expect(top).toHaveLength(1);
    expect(top[0]).toMatchObject({
      ts: parent.ts,
      text: 'Release payments v2 building',
      user: 'U_FERRYBOT',
      reply_count: 1,
      edited: { user: 'U_FERRYBOT' },
    });
    // blocks not given to chat.update are kept, as documented
    expect(top[0]?.blocks?.map((b) => b['block_id'])).toEqual(['summary', 'decide']);
    const thread = emu.thread('C_RELEASES', parent.ts!);
    expect(thread.map((m) => m.text)).toEqual(['Release payments v2 building', 'Building image…']);
    expect(thread[1]).toMatchObject({ ts: reply.ts, thread_ts: parent.ts });

    // by channel name too, and the API reads back the same state
    const named = await client.chat.postMessage({ channel: '#releases', text: 'second' });
    expect(named.channel).toBe('C_RELEASES');
    const history = await client.conversations.history({ channel: 'C_RELEASES' });
    expect(history.messages?.map((m) => m.text)).toEqual(['second', 'Release payments v2 building']);
    const replies = await client.conversations.replies({ channel: 'C_RELEASES', ts: parent.ts! });
    expect(replies.messages).toHaveLength(2);
  });

  it('answers errors the way Slack does', async () => {
    const err = async (p: Promise<unknown>) =>
      platformError(
        await p.then(
          () => ({}),
          (e: unknown) => e,
        ),
      ).error;
    expect(await err(client.chat.postMessage({ channel: 'C_NOPE', text: 'x' }))).toBe('channel_not_found');
    expect(await err(client.chat.postMessage({ channel: 'C_RANDOM', text: 'x' }))).toBe('not_in_channel');
    expect(
      await err(client.chat.postMessage({ channel: 'C_RELEASES', text: 'x', thread_ts: '1.000001' })),
    ).toBe('thread_not_found');
    expect(await err(client.chat.update({ channel: 'C_RELEASES', ts: '1.000001', text: 'x' }))).toBe(
      'message_not_found',
    );
    const human = await emu.postAsUser({ userId: 'U_ALICE', channelId: 'C_GENERAL', text: 'hello' });
    expect(await err(client.chat.update({ channel: 'C_GENERAL', ts: human.ts, text: 'hacked' }))).toBe(
      'cant_update_message',
    );
    expect(emu.message('C_GENERAL', human.ts)?.text).toBe('hello');
    expect(await err(client.chat.postMessage({ channel: 'C_RELEASES', text: '' }))).toBe('no_text');
    expect(await err(client.users.info({ user: 'U_NOBODY' }))).toBe('user_not_found');
    const bob = await client.users.info({ user: 'U_BOB' });
    expect(bob.user).toMatchObject({ id: 'U_BOB', name: 'bob', real_name: 'Bob Approver' });
    const ch = await client.conversations.info({ channel: 'C_PAYMENTS_ALERTS' });
    expect(ch.channel).toMatchObject({ id: 'C_PAYMENTS_ALERTS', name: 'payments-alerts', is_member: true });
  });

  it('rejects Block Kit over the documented limits with invalid_blocks and says why', async () => {
    const before = emu.messages('C_PAYMENTS_ALERTS').length;
    const tryBlocks = async (blocks: unknown[]) => {
      const e = await client.chat
        .postMessage({ channel: 'C_PAYMENTS_ALERTS', text: 'x', blocks: blocks as never })
        .then(noError, platformError);
      return e as { error?: string; errors?: string[] };
    };
    const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });
    const button = (o: Record<string, unknown> = {}) => ({
      type: 'button',
      action_id: 'a',
      text: { type: 'plain_text', text: 'Go' },
      ...o,
    });
    const tooMany = await tryBlocks(Array.from({ length: 51 }, () => section('x')));
    expect(tooMany.error).toBe('invalid_blocks');
    expect(tooMany.errors).toContain('must be less than 51 items [json-pointer:/blocks]');
    expect((await tryBlocks([section('x'.repeat(3001))])).errors).toContain(
      'must be less than 3001 characters [json-pointer:/blocks/0/text/text]',
    );
    const actions = (elements: unknown[]) => [{ type: 'actions', elements }];
    expect((await tryBlocks(actions([button({ value: 'v'.repeat(2001) })]))).errors).toContain(
      'must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]',
    );
    expect(
      (await tryBlocks(actions([button({ text: { type: 'plain_text', text: 'b'.repeat(76) } })]))).errors,
    ).toContain('must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]');
    expect((await tryBlocks(actions([button({ action_id: 'i'.repeat(256) })]))).errors).toContain(
      'must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]',
    );
    expect((await tryBlocks([{ ...section('x'), block_id: 'b'.repeat(256) }])).errors).toContain(
      'must be less than 256 characters [json-pointer:/blocks/0/block_id]',
    );
    expect(
      (await tryBlocks(actions(Array.from({ length: 26 }, (_, i) => button({ action_id: `a${i}` }))))).errors,
    ).toContain('must be less than 26 items [json-pointer:/blocks/0/elements]');
    expect((await tryBlocks([{ type: 'sparkles' }])).errors).toContain(
      'unsupported type: sparkles [json-pointer:/blocks/0/type]',
    );
    // exactly at the limits is fine
    const ok = await client.chat.postMessage({
      channel: 'C_PAYMENTS_ALERTS',
      text: 'at the limit',
      blocks: [
        ...Array.from({ length: 49 }, () => section('y'.repeat(3000))),
        {
          type: 'actions',
          elements: Array.from({ length: 25 }, (_, i) =>
            button({ action_id: `b${i}`, value: 'v'.repeat(2000) }),
          ),
        },
      ] as never,
    });
    expect(ok.ok).toBe(true);
    expect(emu.messages('C_PAYMENTS_ALERTS')).toHaveLength(before + 1);
  });

  it('truncates text over 40,000 characters as documented', async () => {
    const res = await client.chat.postMessage({ channel: 'C_GENERAL', text: 'z'.repeat(40_010) });
    expect(emu.message('C_GENERAL', res.ts!)?.text).toHaveLength(40_000);
  });

  it('shows ephemeral messages only to their recipient', async () => {
    const res = await client.chat.postEphemeral({
      channel: 'C_RELEASES',
      user: 'U_BOB',
      text: 'Only for Bob',
    });
    expect(res.message_ts).toBeTruthy();
    expect(emu.ephemerals('U_BOB').map((e) => e.text)).toContain('Only for Bob');
    expect(emu.ephemerals('U_ALICE').map((e) => e.text)).not.toContain('Only for Bob');
    expect(emu.messages('C_RELEASES').map((m) => m.text)).not.toContain('Only for Bob');
  });

  it('uploads a file into a thread with filesUploadV2 (getUploadURLExternal → POST → completeUploadExternal)', async () => {
    const parent = await client.chat.postMessage({
      channel: 'C_PAYMENTS_ALERTS',
      text: 'OOMKilled payments-7d9f',
    });
    const log = 'line 1\nline 2 OutOfMemoryError\n';
    const up = await client.filesUploadV2({
      channel_id: 'C_PAYMENTS_ALERTS',
      thread_ts: parent.ts!,
      initial_comment: 'Last 2 lines of catalina.out',
      filename: 'catalina.out.log',
      title: 'catalina.out',
      content: log,
    });
    expect(up.ok).toBe(true);
    const methods = emu.calls.map((c) => c.method);
    expect(methods).toEqual(
      expect.arrayContaining(['files.getUploadURLExternal', 'files.completeUploadExternal']),
    );
    const thread = emu.thread('C_PAYMENTS_ALERTS', parent.ts!);
    expect(thread).toHaveLength(2);
    const share = thread[1]!;
    expect(share.text).toBe('Last 2 lines of catalina.out');
    expect(share.files?.[0]).toMatchObject({
      name: 'catalina.out.log',
      title: 'catalina.out',
      size: log.length,
      mimetype: 'text/plain',
    });
    const file = emu.files().find((f) => f.name === 'catalina.out.log')!;
    expect(file.shares['C_PAYMENTS_ALERTS']?.[0]).toMatchObject({ ts: share.ts, thread_ts: parent.ts });
    const download = await fetch(file.url_private_download);
    expect(await download.text()).toBe(log);
  });

  it('makes the client wait out a 429 with Retry-After, then posts exactly once', async () => {
    emu.inject({ method: 'chat.postMessage', status: 429, retryAfter: 1, times: 1 });
    const limited: number[] = [];
    client.on(WebClientEvent.RATE_LIMITED, (sec: number) => limited.push(sec));
    const started = Date.now();
    const res = await client.chat.postMessage({ channel: 'C_CHECKOUT_ALERTS', text: 'after the rate limit' });
    expect(res.ok).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(limited).toEqual([1]);
    const posts = emu.calls.filter(
      (c) => c.method === 'chat.postMessage' && c.args['channel'] === 'C_CHECKOUT_ALERTS',
    );
    expect(posts.map((c) => c.status)).toEqual([429, 200]);
    expect(posts[0]?.response).toEqual({ ok: false, error: 'ratelimited' });
    expect(emu.messages('C_CHECKOUT_ALERTS').map((m) => m.text)).toEqual(['after the rate limit']);
  });

  it('serves 5xx and slow answers, which the client retries', async () => {
    emu.inject({ method: 'chat.postMessage', status: 503, times: 2 });
    emu.inject({ method: 'chat.postMessage', times: 1, delayMs: 300 });
    const started = Date.now();
    await client.chat.postMessage({ channel: 'C_CHECKOUT_ALERTS', text: 'after 503s' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    const posts = emu.calls.filter((c) => c.args['text'] === 'after 503s');
    expect(posts.map((c) => c.status)).toEqual([503, 503, 200]);
    expect(emu.messages('C_CHECKOUT_ALERTS').filter((m) => m.text === 'after 503s')).toHaveLength(1);
  });
});

describe('Bolt over HTTP', () => {
  let emu: SlackEmulator;
  let app: App;
  const retryNums: (number | undefined)[] = [];

  beforeAll(async () => {
    emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
    app = new App({
      token: BOT,
      signingSecret: SECRET,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    app.command('/release', async ({ ack, command, client, context }) => {
      retryNums.push(context.retryNum);
      await ack({ response_type: 'ephemeral', text: `Planning ${command.text}…` });
      await client.chat.postMessage({
        channel: command.channel_id,
        text: `Release ${command.text} requested by <@${command.user_id}>`,
        blocks: releaseBlocks(`*${command.text}* requested by <@${command.user_id}>`),
      });
    });
    app.action('approve', async ({ ack, body, client, respond }) => {
      await ack();
      const b = body as { user: { id: string }; channel?: { id: string }; message?: { ts: string } };
      await client.chat.update({
        channel: b.channel!.id,
        ts: b.message!.ts,
        text: `Approved by <@${b.user.id}>`,
        blocks: [
          {
            type: 'section',
            text: { type: 'mrkdwn', text: `:white_check_mark: Approved by <@${b.user.id}>` },
          },
        ],
      });
      await respond({ response_type: 'ephemeral', replace_original: false, text: 'You approved it.' });
    });
    app.action('reject', async ({ ack, body, client }) => {
      await ack();
      const b = body as { trigger_id: string; channel?: { id: string }; message?: { ts: string } };
      await client.views.open({
        trigger_id: b.trigger_id,
        view: {
          type: 'modal',
          callback_id: 'reject_reason',
          private_metadata: JSON.stringify({ channel: b.channel!.id, ts: b.message!.ts }),
          title: { type: 'plain_text', text: 'Reject release' },
          submit: { type: 'plain_text', text: 'Reject' },
          blocks: [
            {
              type: 'input',
              block_id: 'reason',
              label: { type: 'plain_text', text: 'Reason' },
              element: { type: 'plain_text_input', action_id: 'text' },
            },
          ],
        },
      });
    });
    app.view('reject_reason', async ({ ack, view, client, body }) => {
      const reason = view.state.values['reason']?.['text']?.value ?? '';
      if (reason.length < 3) {
        await ack({ response_action: 'errors', errors: { reason: 'Say why, in a few words.' } });
        return;
      }
      await ack();
      const meta = JSON.parse(view.private_metadata) as { channel: string; ts: string };
      await client.chat.postMessage({
        channel: meta.channel,
        thread_ts: meta.ts,
        text: `Rejected by <@${body.user.id}>: ${reason}`,
      });
    });
    app.command('/slow', async ({ ack }) => {
      await new Promise((r) => setTimeout(r, 400));
      await ack();
    });
    app.command('/confirm', async ({ ack, command, client }) => {
      await ack();
      await client.chat.postEphemeral({
        channel: command.channel_id,
        user: command.user_id,
        text: 'Really roll back?',
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: 'Really roll back *payments*?' } },
          {
            type: 'actions',
            elements: [
              { type: 'button', action_id: 'confirm_rollback', text: { type: 'plain_text', text: 'Yes' } },
            ],
          },
        ],
      });
    });
    app.action('confirm_rollback', async ({ ack, respond }) => {
      await ack();
      await respond({ replace_original: true, text: 'Rolling back payments…' });
    });
    const server = await app.start(0);
    emu.botEventsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;
  });
  afterAll(async () => {
    await app.stop();
    await emu.close();
  });

  it('delivers a signed slash command that Bolt acks; the user sees the reply and the channel the card', async () => {
    const d = await emu.slashCommand({
      userId: 'U_ALICE',
      channelId: 'C_RELEASES',
      command: '/release',
      text: 'payments v2',
    });
    expect(d).toMatchObject({ via: 'http', status: 200, acked: true, kind: 'slash_commands' });
    expect(d.latencyMs).toBeLessThan(3000);
    const fields = new URLSearchParams(d.rawBody);
    expect([...fields.keys()]).toEqual([
      'token',
      'team_id',
      'team_domain',
      'channel_id',
      'channel_name',
      'user_id',
      'user_name',
      'command',
      'text',
      'api_app_id',
      'is_enterprise_install',
      'response_url',
      'trigger_id',
    ]);
    expect(emu.ephemerals('U_ALICE').map((e) => e.text)).toContain('Planning payments v2…');
    expect(emu.ephemerals('U_BOB').map((e) => e.text)).not.toContain('Planning payments v2…');
    const card = await emu.waitFor(() =>
      emu.channelMessages('C_RELEASES').find((m) => m.text.includes('payments v2')),
    );
    expect(card.text).toBe('Release payments v2 requested by <@U_ALICE>');
    expect(card.blocks?.[1]?.['elements']).toHaveLength(2);
  });

  it('passes the Request URL check (url_verification challenge)', async () => {
    expect(await emu.verifyUrl()).toBe(true);
  });

  it('replays a delivery with x-slack-retry-num as Slack retries do', async () => {
    const first = emu.deliveries.find((d) => d.kind === 'slash_commands')!;
    const again = await emu.redeliver(first, { retryNum: 1, reason: 'http_timeout' });
    expect(again.status).toBe(200);
    expect(again.payload['trigger_id']).toBe(first.payload['trigger_id']);
    expect(retryNums).toEqual([undefined, 1]);
  });

  it('sends block_actions built from the stored message; the approval edits the card', async () => {
    const card = emu.channelMessages('C_RELEASES').find((m) => m.text.includes('payments v2'))!;
    const d = await emu.clickButton({
      userId: 'U_BOB',
      channelId: 'C_RELEASES',
      messageTs: card.ts,
      actionId: 'approve',
    });
    expect(d).toMatchObject({ status: 200, payloadType: 'block_actions' });
    const payload = JSON.parse(new URLSearchParams(d.rawBody).get('payload') ?? '{}');
    expect(payload).toMatchObject({
      type: 'block_actions',
      user: { id: 'U_BOB', username: 'bob' },
      channel: { id: 'C_RELEASES', name: 'releases' },
      container: { type: 'message', message_ts: card.ts, channel_id: 'C_RELEASES', is_ephemeral: false },
      message: { ts: card.ts, text: card.text, blocks: card.blocks },
      actions: [
        { action_id: 'approve', block_id: 'decide', value: 'rel-1', style: 'primary', type: 'button' },
      ],
    });
    expect(payload.actions[0].action_ts).toMatch(/^\d+\.\d{6}$/);
    expect(payload.response_url).toContain(emu.apiUrl.replace('/api/', '/actions/'));
    const edited = await emu.waitFor(() => {
      const m = emu.message('C_RELEASES', card.ts);
      return m?.text.startsWith('Approved') ? m : undefined;
    });
    expect(edited).toMatchObject({ text: 'Approved by <@U_BOB>', edited: { user: 'U_FERRYBOT' } });
    expect(edited.blocks).toHaveLength(1);
    await emu.waitFor(() => emu.ephemerals('U_BOB').find((e) => e.text === 'You approved it.'));
    expect(emu.responses.at(-1)).toMatchObject({ kind: 'action', status: 200 });
  });

  it('opens a modal from a button and handles view_submission errors and success', async () => {
    await emu.slashCommand({ userId: 'U_ALICE', channelId: 'C_RELEASES', text: 'checkout v9' });
    const card = await emu.waitFor(() =>
      emu.channelMessages('C_RELEASES').find((m) => m.text.includes('checkout v9')),
    );
    await emu.clickButton({
      userId: 'U_CAROL',
      channelId: 'C_RELEASES',
      messageTs: card.ts,
      actionId: 'reject',
    });
    const modal = await emu.waitFor(() => emu.openView('U_CAROL'));
    expect(modal.title).toEqual({ type: 'plain_text', text: 'Reject release' });
    expect(emu.openView('U_ALICE')).toBeUndefined();

    const bad = await emu.submitView({ userId: 'U_CAROL', viewId: modal.id, values: { reason: 'no' } });
    expect(bad.response).toMatchObject({ response_action: 'errors' });
    expect(emu.openView('U_CAROL')?.errors).toEqual({ reason: 'Say why, in a few words.' });

    await emu.submitView({ userId: 'U_CAROL', viewId: modal.id, values: { reason: 'error budget spent' } });
    expect(emu.openView('U_CAROL')).toBeUndefined();
    const reply = await emu.waitFor(() => emu.thread('C_RELEASES', card.ts)[1]);
    expect(reply.text).toBe('Rejected by <@U_CAROL>: error budget spent');
  });

  it('refuses a trigger_id that is unknown or already used', async () => {
    const client = new WebClient(BOT, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    const view = { type: 'modal' as const, title: { type: 'plain_text' as const, text: 'x' }, blocks: [] };
    const e1 = await client.views.open({ trigger_id: '123.456.abc', view }).then(noError, platformError);
    expect(e1.error).toBe('invalid_trigger_id');
    const used = emu.deliveries.find(
      (d) => (d.payload['actions'] as { action_id: string }[] | undefined)?.[0]?.action_id === 'reject',
    )!;
    const e2 = await client.views
      .open({ trigger_id: String(used.payload['trigger_id']), view })
      .then(noError, platformError);
    expect(e2.error).toBe('exchanged_trigger_id');
  });

  it('lets a response_url be used 5 times in 30 minutes', async () => {
    const d = await emu.slashCommand({
      userId: 'U_DAVE',
      channelId: 'C_GENERAL',
      command: '/slow',
      text: '',
    });
    const url = String(d.payload['response_url']);
    const statuses: number[] = [];
    for (let i = 1; i <= 6; i++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: `update ${i}`, response_type: i === 1 ? 'in_channel' : 'ephemeral' }),
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 404]);
    expect(emu.responses.at(-1)).toMatchObject({ result: 'used_url' });
    expect(emu.channelMessages('C_GENERAL').map((m) => m.text)).toContain('update 1');
    expect(emu.ephemerals('U_DAVE').filter((e) => e.text.startsWith('update '))).toHaveLength(4);
  });

  it('shows Slack’s timeout error when the app acks too late', async () => {
    emu.ackTimeoutMs = 150;
    try {
      const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: 'C_GENERAL', command: '/slow' });
      expect(d).toMatchObject({ acked: false, timedOut: true, error: 'operation_timeout' });
      expect(emu.ephemerals('U_ALICE').at(-1)).toMatchObject({
        from: 'USLACKBOT',
        text: '/slow failed with the error "operation_timeout"',
      });
    } finally {
      emu.ackTimeoutMs = 3000;
    }
  });

  it('sends buttons on an ephemeral message with container.is_ephemeral and replaces it via response_url', async () => {
    await emu.slashCommand({ userId: 'U_CAROL', channelId: 'C_RELEASES', command: '/confirm' });
    const eph = await emu.waitFor(() =>
      emu.ephemerals('U_CAROL').find((e) => e.text === 'Really roll back?'),
    );
    const d = await emu.clickButton({
      userId: 'U_CAROL',
      channelId: 'C_RELEASES',
      messageTs: eph.ts,
      actionId: 'confirm_rollback',
    });
    const payload = JSON.parse(new URLSearchParams(d.rawBody).get('payload') ?? '{}');
    expect(payload.container).toMatchObject({ type: 'message', message_ts: eph.ts, is_ephemeral: true });
    expect(payload.message).toBeUndefined();
    await emu.waitFor(() =>
      emu.ephemerals('U_CAROL').find((e) => e.ts === eph.ts && e.text === 'Rolling back payments…'),
    );
    expect(emu.ephemerals('U_CAROL').find((e) => e.ts === eph.ts)?.blocks).toBeUndefined();
    expect(emu.ephemerals('U_BOB').some((e) => e.text.includes('roll'))).toBe(false);
  });

  it('Bolt rejects a forged signature with 401 and the user sees Slack’s error', async () => {
    const before = emu.channelMessages('C_RELEASES').length;
    const d = await emu.slashCommand({
      userId: 'U_DAVE',
      channelId: 'C_RELEASES',
      text: 'payments v3',
      signingSecret: 'forged',
    });
    expect(d.status).toBe(401);
    expect(emu.ephemerals('U_DAVE').map((e) => [e.from, e.text])).toContainEqual([
      'USLACKBOT',
      '/release failed with the error "http_service_error"',
    ]);
    const stale = await emu.slashCommand({
      userId: 'U_DAVE',
      channelId: 'C_RELEASES',
      text: 'payments v3',
      timestamp: Math.floor(Date.now() / 1000) - 600,
    });
    expect(stale.status).toBe(401);
    expect(emu.channelMessages('C_RELEASES')).toHaveLength(before);
  });
});

describe('Bolt over Socket Mode', () => {
  let emu: SlackEmulator;
  let app: App;

  beforeAll(async () => {
    emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT, appToken: APP });
    app = new App({
      token: BOT,
      appToken: APP,
      socketMode: true,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    app.command('/release', async ({ ack, command }) => {
      await ack(`Got ${command.text}`);
    });
    app.action('approve', async ({ ack, respond }) => {
      await ack();
      await respond({ replace_original: true, text: 'Approved over the socket' });
    });
    app.message('hello ferry', async ({ message, say }) => {
      const m = message as { user: string; ts: string };
      await say({ text: `Hi <@${m.user}>`, thread_ts: m.ts });
    });
    await app.start();
    await emu.waitForSocket();
  });
  afterAll(async () => {
    await app.stop();
    await emu.close();
  });

  it('connects with the app-level token only', async () => {
    const open = emu.calls.filter((c) => c.method === 'apps.connections.open');
    expect(open[0]).toMatchObject({ token: APP, status: 200 });
    expect(String(open[0]?.response['url'])).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/link\/\?ticket=/);
    const bot = new WebClient(BOT, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    const e = await bot.apps.connections.open({}).then(noError, platformError);
    expect(e.error).toBe('not_allowed_token_type');
  });

  it('delivers slash commands and button clicks over the socket', async () => {
    const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: 'C_RELEASES', text: 'payments v2' });
    expect(d).toMatchObject({ via: 'socket', acked: true, response: { text: 'Got payments v2' } });
    expect(JSON.parse(d.rawBody)).toMatchObject({ type: 'slash_commands', accepts_response_payload: true });
    expect(emu.ephemerals('U_ALICE').map((e) => e.text)).toContain('Got payments v2');

    const client = new WebClient(BOT, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    const card = await client.chat.postMessage({
      channel: 'C_RELEASES',
      text: 'card',
      blocks: releaseBlocks('card'),
    });
    const click = await emu.clickButton({
      userId: 'U_BOB',
      channelId: 'C_RELEASES',
      messageTs: card.ts!,
      actionId: 'approve',
    });
    expect(click).toMatchObject({ via: 'socket', acked: true });
    expect(JSON.parse(click.rawBody)).toMatchObject({
      type: 'interactive',
      payload: { type: 'block_actions' },
    });
    await emu.waitFor(() => emu.message('C_RELEASES', card.ts!)?.text === 'Approved over the socket');
  });

  it('delivers a person’s message as an events_api envelope; the bot answers in the thread', async () => {
    const m = await emu.postAsUser({ userId: 'U_DAVE', channelId: 'C_GENERAL', text: 'hello ferry' });
    const reply = await emu.waitFor(() => emu.thread('C_GENERAL', m.ts)[1]);
    expect(reply).toMatchObject({ text: 'Hi <@U_DAVE>', user: 'U_FERRYBOT', thread_ts: m.ts });
    const d = emu.deliveries.find((x) => x.kind === 'events_api')!;
    expect(JSON.parse(d.rawBody)).toMatchObject({
      type: 'events_api',
      retry_attempt: 0,
      payload: { type: 'event_callback', event: { type: 'message', user: 'U_DAVE', text: 'hello ferry' } },
    });
    expect(d.acked).toBe(true);
  });

  it('reconnects after a disconnect (refresh_requested) and keeps delivering', async () => {
    const opened = emu.socketConnectionsOpened;
    emu.socketDisconnect('refresh_requested');
    await emu.waitForSocket({ opened: opened + 1, timeoutMs: 20_000 });
    const d = await emu.slashCommand({ userId: 'U_BOB', channelId: 'C_RELEASES', text: 'after refresh' });
    expect(d).toMatchObject({ via: 'socket', acked: true });
    expect(emu.ephemerals('U_BOB').map((e) => e.text)).toContain('Got after refresh');
  });

  it('reconnects after the socket is dropped; a command sent meanwhile is delivered once it is back', async () => {
    const opened = emu.socketConnectionsOpened;
    emu.socketDrop();
    const d = await emu.slashCommand({
      userId: 'U_CAROL',
      channelId: 'C_RELEASES',
      text: 'during the outage',
    });
    expect(emu.socketConnectionsOpened).toBeGreaterThan(opened);
    expect(d).toMatchObject({ via: 'socket', acked: true });
    expect(emu.ephemerals('U_CAROL').map((e) => e.text)).toContain('Got during the outage');
  });
});
