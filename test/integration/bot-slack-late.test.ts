// The bot starts while the Slack API does not answer yet (its network still
// coming up, or Slack down): it waits and says so, instead of dying on an
// unhandled rejection, and serves commands as soon as Slack answers. A token
// Slack refuses is not waited for: the start fails with Slack's answer.
// (The log line it writes while waiting: "the Slack API does not answer; trying again".)
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { fastConfig } from '../support/lifecycle.ts';
import { freePort, TestRedis } from '../support/redis.ts';

const SECRET = 'bot-slack-late-secret';
const BOT = 'xoxb-ferry-slack-late';

let redis: TestRedis;
let rt: Runtime;
let emu: SlackEmulator | undefined;
let bot: RunningBot | undefined;

beforeAll(async () => {
  redis = await TestRedis.start();
  rt = createRuntime({ config: fastConfig(), redisUrl: redis.url, prefix: 'late', name: 'bot' });
});

afterAll(async () => {
  await bot?.stop();
  await rt?.close();
  await emu?.close();
  await redis?.stop();
});

describe('the bot and a Slack API that answers late', () => {
  it('keeps asking until Slack answers, then serves commands', async () => {
    const port = await freePort();
    // Slack's address answers nothing yet: every connection is dropped, and counted.
    let attempts = 0;
    const dead = createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((r) => dead.listen(port, '127.0.0.1', r));
    let settled: 'started' | 'failed' | undefined;
    const starting = startSlackBot({
      runtime: rt,
      token: BOT,
      signingSecret: SECRET,
      apiUrl: `http://127.0.0.1:${port}/api/`,
      port: 0,
    });
    starting.then(
      () => (settled = 'started'),
      () => (settled = 'failed'),
    );
    // It keeps asking: more calls than one Web API call's own retries, and still waiting, not failed.
    const until = Date.now() + 30_000;
    while (attempts < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(attempts).toBeGreaterThanOrEqual(5);
    expect(settled).toBeUndefined();
    await new Promise<void>((r) => dead.close(() => r()));

    emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT, port });
    bot = await starting;
    emu.botEventsUrl = bot.url;
    const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: 'C_RELEASES', text: 'help' });
    expect(d.acked).toBe(true);
    const answer = await emu.waitFor(() => emu?.ephemerals('U_ALICE')[0], 10_000);
    expect(answer.text).toContain('/release');
  });

  it('a token Slack refuses ends the start with Slack’s answer, not a wait', async () => {
    await expect(
      startSlackBot({
        runtime: rt,
        token: 'xoxb-not-the-workspace-token',
        signingSecret: SECRET,
        apiUrl: (emu as SlackEmulator).apiUrl,
        port: 0,
      }),
    ).rejects.toThrow(/invalid_auth|not_authed/);
  });
});
