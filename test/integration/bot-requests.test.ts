// Forged, stale and future-dated requests against the real bot over HTTP,
// sent by the Slack emulator with a correct signature but a shifted
// `x-slack-request-timestamp`. Slack's rule is "within 5 minutes"; Bolt alone
// enforces only the past side, Ferry's receiver both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { StoredMessage } from '../../dev/slack-emulator/types.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';

const SECRET = 'bot-requests-signing-secret';
const BOT = 'xoxb-ferry-bot-requests';
const CH = 'C_RELEASES';
const now = () => Math.floor(Date.now() / 1000);
const HOUR = 3600;

let redis: TestRedis;
let emu: SlackEmulator;
let h: Harness;
let bot: RunningBot;

beforeAll(async () => {
  redis = await TestRedis.start();
  emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
  h = harness(redis.url);
  h.startWorkers();
  bot = await startSlackBot({
    runtime: h.rt,
    token: BOT,
    signingSecret: SECRET,
    apiUrl: emu.apiUrl,
    port: 0,
  });
  emu.botEventsUrl = bot.url;
});
afterAll(async () => {
  await bot?.stop();
  await h?.close();
  await emu?.close();
  await redis?.stop();
});

const flat = (m: StoredMessage) => JSON.stringify(m.blocks ?? []);
const buttons = (m: StoredMessage) =>
  (m.blocks ?? [])
    .filter((b) => b['type'] === 'actions')
    .flatMap((b) => (b['elements'] as { action_id: string }[]).map((e) => e.action_id));

async function card(id: string, actionId: string): Promise<StoredMessage> {
  return emu.waitFor(
    () =>
      emu
        .channelMessages(CH)
        .find(
          (m) =>
            m.subtype !== 'thread_broadcast' && flat(m).includes(`"${id} ·`) && buttons(m).includes(actionId),
        ),
    30_000,
  );
}

/** The newest release of `app`, once there are `expected` of them. */
async function releaseOf(app: string, expected: number): Promise<string> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const rs = await h.rt.releases.byApp(app, 10);
    if (rs.length === expected && rs[0]) return rs[0].id;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${app} does not have ${expected} release(s)`);
}

describe('request timestamps over HTTP', () => {
  it('a slash command stamped an hour ahead or behind gets 401 and starts nothing; ±4 min passes', async () => {
    for (const shift of [HOUR, -HOUR, 6 * 60, -6 * 60]) {
      const d = await emu.slashCommand({
        userId: 'U_ALICE',
        channelId: CH,
        text: 'payments v2 to test',
        timestamp: now() + shift,
      });
      expect({ shift, status: d.status }).toEqual({ shift, status: 401 });
    }
    expect(await h.rt.releases.byApp('payments', 10)).toEqual([]);

    const ahead = await emu.slashCommand({
      userId: 'U_ALICE',
      channelId: CH,
      text: 'payments v2 to test',
      timestamp: now() + 4 * 60,
    });
    expect(ahead.status).toBe(200);
    await releaseOf('payments', 1);
    const behind = await emu.slashCommand({
      userId: 'U_ALICE',
      channelId: CH,
      text: 'payments v4 to test',
      timestamp: now() - 4 * 60,
    });
    expect(behind.status).toBe(200);
    await releaseOf('payments', 2);
  });

  it('a button click stamped an hour ahead or behind gets 401 and approves nothing; ±4 min passes', async () => {
    await h.rt.versions.recordPassed('ledger', 'v1', 'test');
    const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'ledger v1 to prod' });
    expect(d.status).toBe(200);
    const id = await releaseOf('ledger', 1);
    await waitForState(h.rt, id, 'awaiting-approval');
    const c = await card(id, 'approve');
    for (const shift of [HOUR, -HOUR]) {
      const click = await emu.clickButton({
        userId: 'U_BOB',
        channelId: CH,
        messageTs: c.ts,
        actionId: 'approve',
        timestamp: now() + shift,
      });
      expect({ shift, status: click.status }).toEqual({ shift, status: 401 });
    }
    const stored = await h.rt.releases.get(id);
    expect(stored?.state).toBe('awaiting-approval');
    expect(stored?.approvals).toEqual([]);

    const click = await emu.clickButton({
      userId: 'U_BOB',
      channelId: CH,
      messageTs: c.ts,
      actionId: 'approve',
      timestamp: now() + 4 * 60,
    });
    expect(click.status).toBe(200);
    const approved = await waitForState(h.rt, id, [
      'approved',
      'building',
      'syncing',
      'deploying',
      'verifying',
      'succeeded',
    ]);
    expect(approved.approvals.map((a) => a.by)).toEqual(['U_BOB']);
  });

  it('a modal submission stamped an hour ahead or behind gets 401 and rejects nothing; ±4 min passes', async () => {
    await h.rt.versions.recordPassed('payments', 'v3', 'test');
    const before = (await h.rt.releases.byApp('payments', 10)).length;
    const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'payments v3 to prod' });
    expect(d.status).toBe(200);
    const id = await releaseOf('payments', before + 1);
    await waitForState(h.rt, id, 'awaiting-approval');
    const c = await card(id, 'reject');
    // Opening the modal within -4 min: the click itself passes.
    const open = await emu.clickButton({
      userId: 'U_BOB',
      channelId: CH,
      messageTs: c.ts,
      actionId: 'reject',
      timestamp: now() - 4 * 60,
    });
    expect(open.status).toBe(200);
    const modal = await emu.waitFor(() => emu.openView('U_BOB'));
    for (const shift of [HOUR, -HOUR]) {
      const s = await emu.submitView({
        userId: 'U_BOB',
        viewId: modal.id,
        values: { reason: 'not during the sale' },
        timestamp: now() + shift,
      });
      expect({ shift, status: s.status }).toEqual({ shift, status: 401 });
    }
    expect((await h.rt.releases.get(id))?.state).toBe('awaiting-approval');

    const s = await emu.submitView({
      userId: 'U_BOB',
      viewId: modal.id,
      values: { reason: 'not during the sale' },
      timestamp: now() + 4 * 60,
    });
    expect(s.status).toBe(200);
    const rejected = await waitForState(h.rt, id, 'rejected');
    expect(rejected.state).toBe('rejected');
  });

  it('a request signed with another secret gets 401', async () => {
    const d = await emu.slashCommand({
      userId: 'U_ALICE',
      channelId: CH,
      text: 'payments v2 to test',
      signingSecret: 'not-the-secret',
    });
    expect(d.status).toBe(401);
  });
});
