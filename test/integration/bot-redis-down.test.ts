// Redis goes away under the running bot (a real redis-server, stopped and
// started again). Every command and click is answered within Slack's 3 s with
// "Ferry's store is unreachable; nothing was started", nothing is stored for
// it, and once Redis is back the same command works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { fastConfig } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';

const SECRET = 'bot-redis-down-secret';
const BOT = 'xoxb-ferry-redis-down';
const CH = 'C_RELEASES';
const UNREACHABLE = "Ferry's store is unreachable; nothing was started.";

let redis: TestRedis;
let emu: SlackEmulator;
let rt: Runtime;
let bot: RunningBot;
let redisDown = false;

beforeAll(async () => {
  redis = await TestRedis.start();
  emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
  rt = createRuntime({
    config: fastConfig(),
    redisUrl: redis.url,
    prefix: 'down',
    name: 'bot',
    failFast: true,
  });
  bot = await startSlackBot({ runtime: rt, token: BOT, signingSecret: SECRET, apiUrl: emu.apiUrl, port: 0 });
  emu.botEventsUrl = bot.url;
});
afterAll(async () => {
  // A failed test may leave Redis stopped; the consumers' shutdown needs it.
  if (redisDown) await redis.up();
  await bot?.stop();
  await rt?.close();
  await emu?.close();
  await redis?.stop();
});

/** The next ephemeral `user` gets after `count` earlier ones, and how long it took from `since`. */
async function nextEphemeral(user: string, count: number, since: number) {
  const e = await emu.waitFor(() => emu.ephemerals(user)[count], 10_000);
  return { text: e.text, ms: performance.now() - since };
}

async function redisReady(): Promise<void> {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (
      await rt.releases.get('none').then(
        () => true,
        () => false,
      )
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the bot did not reconnect to Redis');
}

describe('Redis down under the bot', () => {
  it('a command and a click are answered within 3 s; nothing is stored; after Redis is back the command works', async () => {
    // A card with buttons to click later, while Redis is still there.
    await redisReady();
    await rt.versions.recordPassed('payments', 'v2', 'test');
    const first = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'payments v2 to prod' });
    expect(first.acked).toBe(true);
    const card = await emu.waitFor(
      () => emu.channelMessages(CH).find((m) => JSON.stringify(m.blocks ?? []).includes('"approve"')),
      20_000,
    );
    const stored = await rt.releases.byApp('payments', 10);
    expect(stored).toHaveLength(1);

    await redis.stop();
    redisDown = true;

    const aliceBefore = emu.ephemerals('U_ALICE').length;
    let t0 = performance.now();
    const cmd = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'ledger v1 to test' });
    expect(cmd.acked).toBe(true);
    const answer = await nextEphemeral('U_ALICE', aliceBefore, t0);
    expect(answer.text).toContain(UNREACHABLE);
    expect(answer.ms).toBeLessThan(3000);

    const bobBefore = emu.ephemerals('U_BOB').length;
    t0 = performance.now();
    const click = await emu.clickButton({
      userId: 'U_BOB',
      channelId: CH,
      messageTs: card.ts,
      actionId: 'approve',
    });
    expect(click.acked).toBe(true);
    const clicked = await nextEphemeral('U_BOB', bobBefore, t0);
    expect(clicked.text).toContain(UNREACHABLE);
    expect(clicked.ms).toBeLessThan(3000);

    await redis.up();
    redisDown = false;
    await redisReady();
    // Nothing of the failed command or click was stored.
    expect(await rt.releases.byApp('ledger', 10)).toEqual([]);
    const prod = await rt.releases.get(stored[0]?.id as string);
    expect(prod?.approvals).toEqual([]);
    expect(prod?.state).toBe('awaiting-approval');

    // The same command again works.
    const again = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'ledger v1 to test' });
    expect(again.acked).toBe(true);
    const until = Date.now() + 10_000;
    while ((await rt.releases.byApp('ledger', 10)).length === 0 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    expect(await rt.releases.byApp('ledger', 10)).toHaveLength(1);
  });
});
