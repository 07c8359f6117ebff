// The Matrix adapter against a real Synapse (infra/lib/synapse.sh, or a
// private one for the restart test) and a real Redis, with the recording
// runners doing the release work quickly:
// - a 429 from Synapse's rate limiter is waited out for as long as it says;
// - a card someone redacted is posted anew instead of edited into nothing;
// - after the bot and Synapse restart, the bot catches up from its sync token
//   and answers every command exactly once — also when its stored token is
//   older than what it handled;
// - one Ferry on two platforms: a release asked for in Slack (the emulator)
//   is approved by a ✅ in Matrix, and both cards and both threads follow it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../../commands/index.ts';
import { type RunningMatrixBot, startMatrixBot } from '../../src/chat/matrix/bot.ts';
import type { MatrixChat, MatrixEvent } from '../../src/chat/matrix/client.ts';
import { MatrixDelivery } from '../../src/chat/matrix/delivery.ts';
import type { FerryConfig } from '../../src/config/schema.ts';
import { logger } from '../../src/logging.ts';
import { waitFor } from '../support/infra.ts';
import { fastConfig, type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';
import {
  ensureSynapse,
  newUser,
  overrideRateLimit,
  PrivateSynapse,
  type SynapseInfo,
  uniqueName,
} from '../support/synapse.ts';

/** A release asked for as alice would type it; its id. */
async function requestRelease(h: Harness, text: string): Promise<string> {
  const parsed = parseCommand(text, { config: h.rt.config() });
  if (!parsed.ok || parsed.command.kind !== 'release') throw new Error(`not a release: ${text}`);
  const r = await h.rt.lifecycle.request(parsed.command, 'U_ALICE', 'C_RELEASES');
  if (!r.ok || !r.releaseId) throw new Error(r.text);
  return r.releaseId;
}

const quiet = logger('matrix-test').child({}, { level: 'warn' });

let info: SynapseInfo;
let redis: TestRedis;

beforeAll(async () => {
  info = await ensureSynapse();
  redis = await TestRedis.start();
}, 1_200_000);

afterAll(async () => {
  await redis?.stop();
});

const bodies = (events: MatrixEvent[]) =>
  events.filter((e) => e.type === 'm.room.message').map((e) => String(e.content.body));

/** A config whose people and payments rooms are this run's Matrix users and rooms. */
function matrixConfig(
  server: string,
  users: Record<string, string>,
  suffix: string,
  change?: (c: FerryConfig) => void,
): FerryConfig {
  return fastConfig((c) => {
    for (const [name, matrix] of Object.entries(users)) {
      const slack = c.people[name];
      c.people[name] = { ...(typeof slack === 'string' ? { slack } : {}), matrix };
    }
    (c.apps.payments as FerryConfig['apps'][string]).rooms = {
      releases: `#releases-${suffix}:${server}`,
      alerts: `#payments-alerts-${suffix}:${server}`,
    };
    // Prod without the promotion rule: these tests start at prod.
    delete (c.environments.prod as FerryConfig['environments'][string]).requiresPassed;
    change?.(c);
  });
}

describe('the Matrix client', () => {
  it("waits out Synapse's 429s as long as retry_after_ms says, and every message arrives once, in order", async () => {
    const admin = await newUser(info.url, info.registrationSecret, uniqueName('admin'), true);
    const sender = await newUser(info.url, info.registrationSecret, uniqueName('limited'));
    const room = await sender.client.createRoom({ name: 'rate limit' });
    // One message a second after a burst of one: the second send in a row is refused with a 429.
    await overrideRateLimit(admin.client, sender.userId, 1, 1);
    const waits: number[] = [];
    const limited = new (sender.client.constructor as typeof MatrixChat)({
      baseUrl: info.url,
      userId: sender.userId,
      accessToken: (sender.client.sdk.getAccessToken() as string) ?? '',
      onRateLimited: (ms) => waits.push(ms),
    });
    const started = Date.now();
    for (let i = 1; i <= 4; i++) await limited.sendMessage(room, { body: `message ${i}` });
    const elapsed = Date.now() - started;
    expect(waits.length).toBeGreaterThanOrEqual(2);
    for (const ms of waits) expect(ms).toBeGreaterThan(0);
    // It waited what Synapse asked for, not less.
    expect(elapsed).toBeGreaterThanOrEqual(waits.reduce((a, b) => a + b, 0));
    const seen = bodies(await sender.client.messages(room)).filter((b) => b.startsWith('message '));
    expect(seen).toEqual(['message 1', 'message 2', 'message 3', 'message 4']);
    // With no budget for waiting, the 429 reaches the caller (the notify queue then holds its line).
    const impatient = new (sender.client.constructor as typeof MatrixChat)({
      baseUrl: info.url,
      userId: sender.userId,
      accessToken: sender.client.sdk.getAccessToken() as string,
      maxRateLimitWaitMs: 0,
    });
    await impatient.sendMessage(room, { body: 'one' }).catch(() => undefined);
    await expect(impatient.sendMessage(room, { body: 'two' })).rejects.toMatchObject({ httpStatus: 429 });
  }, 300_000);
});

describe('the Matrix delivery', () => {
  it('posts a new card when the old one was redacted, and edits that one from then on', async () => {
    const suffix = uniqueName('r').slice(2);
    const bot = await newUser(info.url, info.registrationSecret, `ferry-${suffix}`);
    const carol = await newUser(info.url, info.registrationSecret, `carol-${suffix}`);
    const config = matrixConfig(info.serverName, { carol: carol.userId }, suffix);
    const h = harness(redis.url, config);
    const room = await bot.client.createRoom({ alias: `releases-${suffix}`, preset: 'public_chat' });
    await carol.client.join(room);
    const delivery = new MatrixDelivery({
      config: () => config,
      releases: h.rt.releases,
      store: h.rt.store,
      prefix: h.prefix,
      client: bot.client,
      log: quiet,
    });
    const steps = new Map<string, string>();
    const once = async (name: string, fn: () => Promise<string>) => {
      const k = `${name}#${steps.size}`;
      const v = await fn();
      steps.set(k, v);
      return v;
    };
    const id = await requestRelease(h, 'payments v2');
    await delivery.deliver({ kind: 'card', releaseId: id }, once);
    const first = await delivery.cardOf(id);
    expect(first?.room).toBe(room);
    // Someone (a room moderator) redacts the card.
    await bot.client.redact(room, first?.event as string, 'tidying up');
    expect((await h.rt.lifecycle.approve(id, 'U_BOB')).ok).toBe(true);
    await delivery.deliver({ kind: 'card', releaseId: id }, once);
    const second = await delivery.cardOf(id);
    expect(second?.event).toBeDefined();
    expect(second?.event).not.toBe(first?.event);
    // carol, reading the room, sees the new card with the current state; nothing was edited into the redacted one.
    const card = await carol.client.event(room, second?.event as string);
    expect(String(card.content.body)).toContain('Approved by bob');
    expect(await bot.client.relations(room, first?.event as string, 'm.replace')).toEqual([]);
    // The next change edits the new card.
    expect((await h.rt.lifecycle.steer('abort', id, 'U_ALICE')).ok).toBe(true);
    await delivery.deliver({ kind: 'card', releaseId: id }, once);
    expect((await delivery.cardOf(id))?.event).toBe(second?.event);
    const edits = await carol.client.relations(room, second?.event as string, 'm.replace');
    expect(edits.map((e) => String((e.content['m.new_content'] as { body: string }).body))).toEqual([
      expect.stringContaining('aborted'),
    ]);
    await h.close();
  }, 300_000);
});

describe('restarts', () => {
  let synapse: PrivateSynapse;
  afterAll(async () => {
    await synapse?.stop();
  });

  it('after the bot and Synapse restart, every command is answered exactly once', async () => {
    synapse = await PrivateSynapse.start(info);
    const suffix = uniqueName('c').slice(2);
    const botPassword = 'bot-password';
    const { registerUser } = await import('../support/synapse.ts');
    const botId = await registerUser(synapse.url, synapse.secret, `ferry-${suffix}`, botPassword);
    const alice = await newUser(synapse.url, synapse.secret, `alice-${suffix}`);
    const config = matrixConfig(synapse.serverName, { alice: alice.userId }, suffix);
    const h = harness(redis.url, config);
    const start = () =>
      startMatrixBot({
        runtime: h.rt,
        homeserverUrl: synapse.url,
        userId: botId,
        password: botPassword,
        createRooms: true,
        notifier: false,
        log: quiet,
      });
    let bot: RunningMatrixBot = await start();
    const room = bot.rooms.get(`#releases-${suffix}:${synapse.serverName}`) as string;
    await alice.client.join(room);
    const say = (text: string) => alice.client.sendMessage(room, { body: text });
    /** The bot's answers in the thread of each command, by command event. */
    const answers = async (command: string) =>
      (await alice.client.relations(room, command, 'm.thread')).filter((e) => e.sender === botId);
    const answered = (command: string, n = 1) =>
      waitFor(async () => (await answers(command)).length >= n, {
        timeoutMs: 60_000,
        what: `an answer to ${command}`,
      });

    const t0 = Date.now();
    const progress = (what: string) => quiet.warn({ s: Math.round((Date.now() - t0) / 1000) }, what);
    const first = await say('!release status');
    await answered(first);
    progress('first answered');
    const tokenAfterFirst = await bot.client.syncToken();
    expect(tokenAfterFirst).toBeTruthy();

    // The bot stops; a command arrives while it is away; Synapse restarts too.
    await bot.stop();
    const whileAway = await say('!release help');
    await synapse.restart();
    bot = await start();
    await answered(whileAway);
    progress('caught up');

    // Synapse restarts under the running bot: its sync fails, waits, and goes on from its token.
    await synapse.restart();
    const afterRestart = await say('!release status payments');
    await answered(afterRestart);
    progress('answered after a restart under the bot');

    // A bot that died after answering but before storing its token gets the same events again: they are
    // recognised, not answered a second time.
    await bot.stop();
    await h.rt.store.set(`${h.prefix}:matrix:sync:${botId}`, tokenAfterFirst as string);
    bot = await start();
    const marker = await say('!release help factors');
    await answered(marker);
    // The bot handles events in order: the marker's answer means every earlier event was seen again.
    for (const command of [first, whileAway, afterRestart, marker])
      expect(await answers(command)).toHaveLength(1);
    expect(bodies(await answers(whileAway))[0]).toContain('Commands');
    await bot.stop();
    await h.close();
  }, 900_000);
});
