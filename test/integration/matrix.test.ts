// The Matrix adapter against a real Synapse (infra/lib/synapse.sh, or a
// private one for the restart test) and a real Redis, with the recording
// runners doing the release work quickly:
// - a 429 from Synapse's rate limiter is waited out for as long as it says;
// - a card someone redacted is posted anew instead of edited into nothing;
// - after the bot and Synapse restart, the bot catches up from its sync token
//   and answers every command exactly once — also when its stored token is
//   older than what it handled;
// - one Ferry on two platforms: a release asked for in Slack (the emulator)
//   is approved by a ✅ in Matrix, and both cards and both threads follow it;
// - a Ferry whose config names no Slack channel: charts go into the card's and
//   the alert's threads as m.image uploads; an alert's ↩️ rolls back only for
//   those who may (the others are told, in a room marked m.direct), and its 📜
//   asks for the logs, which land in the alert's thread.
import { Method } from 'matrix-js-sdk';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../../commands/index.ts';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { RunningMatrixBot } from '../../src/chat/matrix/bot.ts';
import type { MatrixChat, MatrixEvent } from '../../src/chat/matrix/client.ts';
import { MatrixDelivery } from '../../src/chat/matrix/delivery.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startMatrixChatBot, startSlackBot } from '../../src/cli/bot.ts';
import { slackAndMatrix, slackDelivery } from '../../src/cli/chat-platforms.ts';
import { appsWithoutPlace, type FerryConfig } from '../../src/domain/config.ts';
import { platformIdOf } from '../../src/domain/people.ts';
import { logger } from '../../src/logging.ts';
import { jobId, QUEUES } from '../../src/queue/names.ts';
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
    // Only this run's users are on Matrix (the example's own Matrix ids are the shared server's).
    for (const [name, entry] of Object.entries(c.people)) {
      const slack = platformIdOf(entry, 'slack');
      if (slack) c.people[name] = slack;
    }
    for (const [name, matrix] of Object.entries(users)) {
      const slack = c.people[name] && platformIdOf(c.people[name], 'slack');
      c.people[name] = { ...(slack ? { slack } : {}), matrix };
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
    expect(waits.length).toBeGreaterThanOrEqual(1);
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
    // (three at once: one may go, the others are over the limit however slow this machine is)
    const sent = await Promise.allSettled(
      [1, 2, 3].map((i) => impatient.sendMessage(room, { body: `now ${i}` })),
    );
    const refused = sent.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ httpStatus: 429 });
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
      startMatrixChatBot({
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

describe('one Ferry on Slack and Matrix', () => {
  const TOKEN = 'xoxb-matrix-mirror';
  const SECRET = 'matrix-mirror-secret';
  let h: Harness;
  let emulator: SlackEmulator;
  let slack: RunningBot;
  let matrix: RunningMatrixBot;
  let people: Record<string, Awaited<ReturnType<typeof newUser>>>;
  let room: string;
  let suffix: string;

  beforeAll(async () => {
    suffix = uniqueName('m').slice(2);
    const botPassword = 'bot-password';
    const { registerUser } = await import('../support/synapse.ts');
    const botId = await registerUser(info.url, info.registrationSecret, `ferry-${suffix}`, botPassword);
    people = {};
    for (const name of ['alice', 'bob', 'carol', 'dave'])
      people[name] = await newUser(info.url, info.registrationSecret, `${name}-${suffix}`);
    const config = matrixConfig(
      info.serverName,
      Object.fromEntries(Object.entries(people).map(([n, u]) => [n, u.userId])),
      suffix,
    );
    h = harness(redis.url, config);
    h.startWorkers();
    emulator = await SlackEmulator.start({
      signingSecret: SECRET,
      botToken: TOKEN,
      users: Object.entries(config.people).flatMap(([name, e]) => {
        const id = platformIdOf(e, 'slack');
        return id ? [{ id, name, realName: name }] : [];
      }),
      channels: [
        { id: 'C_RELEASES', name: 'releases' },
        { id: 'C_PAY_ALERTS', name: 'payments-alerts' },
      ],
    });
    slack = await startSlackBot({
      runtime: h.rt,
      token: TOKEN,
      signingSecret: SECRET,
      apiUrl: emulator.apiUrl,
      port: 0,
      notifier: false,
    });
    emulator.botEventsUrl = slack.url as string;
    matrix = await startMatrixChatBot({
      runtime: h.rt,
      homeserverUrl: info.url,
      userId: botId,
      password: botPassword,
      createRooms: true,
      log: quiet,
      delivery: (m) => slackAndMatrix(h.rt, slackDelivery(h.rt, TOKEN, emulator.apiUrl), m),
    });
    room = matrix.rooms.get(`#releases-${suffix}:${info.serverName}`) as string;
    for (const u of Object.values(people)) await u.client.join(room);
  }, 600_000);

  afterAll(async () => {
    await matrix?.stop();
    await slack?.stop();
    await h?.close();
    await emulator?.close();
  });

  const user = (name: string) => people[name] as Awaited<ReturnType<typeof newUser>>;

  /** The text of a Matrix card as a member reads it now: its latest edit, or the original. */
  async function cardText(reader: MatrixChat, at: { room: string; event: string }): Promise<string> {
    const edits = await reader.relations(at.room, at.event, 'm.replace', 500);
    const last = edits.at(-1);
    if (last) return String((last.content['m.new_content'] as { body: string }).body);
    return String((await reader.event(at.room, at.event)).content.body);
  }

  /** What Ferry said to a person in their direct room with it (joined on first use). */
  async function directMessages(name: string): Promise<string[]> {
    const u = user(name);
    const dm = await h.rt.store.get(`${h.prefix}:matrix:dm:${u.userId}`);
    if (!dm) return [];
    await u.client.join(dm);
    return bodies(await u.client.messages(dm));
  }

  it('a release asked for in Slack is approved with a ✅ in Matrix, not by a forged one; both cards and threads follow it', async () => {
    await emulator.slashCommand({ userId: 'U_ALICE', channelId: 'C_RELEASES', text: 'payments v2' });
    const id = await waitFor(
      async () => (await h.rt.releases.active()).find((r) => r.app === 'payments')?.id,
      {
        what: 'the release',
      },
    );
    const card = await waitFor(() => matrix.delivery.cardOf(id), {
      timeoutMs: 60_000,
      what: 'the Matrix card',
    });
    expect(card.room).toBe(room);
    const carol = user('carol').client;
    await waitFor(async () => (await cardText(carol, card)).includes('awaiting-approval'), {
      timeoutMs: 60_000,
      what: 'the card waiting for approval',
    });

    // dave is no approver. He calls himself "bob" and claims bob's id in the reaction's content: the
    // homeserver says who sent it, and Ferry asks the domain about dave.
    const dave = user('dave');
    await dave.client.request(
      Method.Put,
      `/profile/${encodeURIComponent(dave.userId)}/displayname`,
      undefined,
      {
        displayname: 'bob',
      },
    );
    await dave.client.send(card.room, 'm.reaction', {
      'm.relates_to': { rel_type: 'm.annotation', event_id: card.event, key: '✅' },
      sender: user('bob').userId,
    });
    const refusal = await waitFor(
      async () => (await directMessages('dave')).find((b) => b.includes('approv')),
      {
        timeoutMs: 60_000,
        what: "Ferry's answer to dave",
      },
    );
    expect(refusal).toContain('approvers');
    let rel = await h.rt.releases.get(id);
    expect(rel?.state).toBe('awaiting-approval');
    expect(rel?.approvals).toEqual([]);

    // alice asked for it: her ✅ is refused too.
    await user('alice').client.react(card.room, card.event, '✅');
    await waitFor(async () => (await directMessages('alice')).some((b) => /approv/i.test(b)), {
      timeoutMs: 60_000,
      what: "Ferry's answer to alice",
    });
    expect((await h.rt.releases.get(id))?.approvals).toEqual([]);

    await user('bob').client.react(card.room, card.event, '✅');
    rel = await waitForState(h.rt, id, 'succeeded', 120_000);
    expect(rel.approvals.map((a) => a.by)).toEqual(['U_BOB']);

    // Matrix: the card, edited in place, and its thread with each region's batches.
    await waitFor(async () => (await cardText(carol, card)).includes('succeeded'), {
      timeoutMs: 60_000,
      what: 'the Matrix card to say succeeded',
    });
    const text = await cardText(carol, card);
    expect(text).toContain('Approved by bob');
    // The card shows the release as stored when it is drawn, so it may be ahead of the thread.
    const thread = await waitFor(
      async () => {
        const t = bodies(await carol.relations(card.room, card.event, 'm.thread', 500)).join('\n');
        return t.includes('us-east: all') ? t : undefined;
      },
      { timeoutMs: 60_000, what: 'the Matrix thread' },
    );
    expect(thread).toContain('eu-west: all');
    // Slack: the same release, its own card and thread.
    const slackCard = emulator.message('C_RELEASES', rel.thread?.ts as string);
    expect(JSON.stringify(slackCard?.blocks)).toContain('succeeded');
    const slackThread = await waitFor(
      () => {
        const t = emulator
          .thread('C_RELEASES', rel?.thread?.ts as string)
          .map((m) => m.text)
          .join('\n');
        return t.includes('us-east: all') ? t : undefined;
      },
      { timeoutMs: 60_000, what: 'the Slack thread' },
    );
    expect(slackThread).toContain('eu-west: all');
    expect(slackThread).toContain('us-east: all');
  }, 600_000);

  it('answers !release in a thread for the person, with the same grammar and words as Slack', async () => {
    const alice = user('alice').client;
    const typo = await alice.sendMessage(room, { body: '!release paymnts v2 <b>x</b>' });
    const answer = await waitFor(
      async () =>
        (await alice.relations(room, typo, 'm.thread')).find((e) => e.sender === matrix.client.userId),
      { timeoutMs: 60_000, what: 'the answer to the typo' },
    );
    expect(String(answer.content.body)).toContain(
      'There is no app called "paymnts". Did you mean "payments"?',
    );
    // It mentions alice, and the HTML carries no markup from what she typed.
    expect((answer.content['m.mentions'] as { user_ids: string[] }).user_ids).toEqual([user('alice').userId]);
    expect(String(answer.content.formatted_body)).not.toContain('<b>');
    expect(await h.rt.releases.active()).toEqual([]);

    const ask = await alice.sendMessage(room, { body: '!release payments v3' });
    const id = await waitFor(async () => (await h.rt.releases.active()).find((r) => r.version === 'v3')?.id, {
      what: 'the v3 release',
    });
    await waitFor(
      async () =>
        (await alice.relations(room, ask, 'm.thread')).some((e) => String(e.content.body).includes(id)),
      {
        timeoutMs: 60_000,
        what: 'the answer naming the release',
      },
    );
    // An approver types the command instead of reacting.
    const carol = user('carol').client;
    await carol.sendMessage(room, { body: `!release approve ${id}` });
    const rel = await waitForState(h.rt, id, 'succeeded', 120_000);
    expect(rel.approvals.map((a) => a.by)).toEqual(['U_CAROL']);
  }, 600_000);
});

describe('a Matrix-only Ferry', () => {
  // The config names no Slack channel: the app has rooms alone, and people have Matrix ids alone.
  let h: Harness;
  let matrix: RunningMatrixBot;
  let people: Record<string, Awaited<ReturnType<typeof newUser>>>;
  let config: FerryConfig;
  let releasesRoom: string;
  let alertsRoom: string;
  let releaseId: string;
  const user = (name: string) => people[name] as Awaited<ReturnType<typeof newUser>>;

  beforeAll(async () => {
    const suffix = uniqueName('o').slice(2);
    const botPassword = 'bot-password';
    const { registerUser } = await import('../support/synapse.ts');
    const botId = await registerUser(info.url, info.registrationSecret, `ferry-${suffix}`, botPassword);
    people = {};
    // erin is a checkout developer: she may not roll back payments.
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin'])
      people[name] = await newUser(info.url, info.registrationSecret, `${name}-${suffix}`);
    const inConfig = ['alice', 'bob', 'carol', 'dave', 'erin'];
    config = matrixConfig(
      info.serverName,
      Object.fromEntries(inConfig.map((n) => [n, user(n).userId])),
      suffix,
      (c) => {
        const payments = c.apps.payments as FerryConfig['apps'][string];
        delete payments.channels;
        c.apps = { payments };
        for (const n of inConfig) c.people[n] = { matrix: user(n).userId };
      },
    );
    expect(config.apps.payments?.channels).toBeUndefined();
    expect(appsWithoutPlace(config, ['matrix'])).toEqual([]);
    h = harness(redis.url, config);
    matrix = await startMatrixChatBot({
      runtime: h.rt,
      homeserverUrl: info.url,
      userId: botId,
      password: botPassword,
      createRooms: true,
      log: quiet,
    });
    const rooms = config.apps.payments?.rooms as { releases: string; alerts: string };
    releasesRoom = matrix.rooms.get(rooms.releases) as string;
    alertsRoom = matrix.rooms.get(rooms.alerts) as string;
    for (const u of Object.values(people)) {
      await u.client.join(releasesRoom);
      await u.client.join(alertsRoom);
    }
  }, 600_000);

  afterAll(async () => {
    await matrix?.stop();
    await h?.close();
  });

  /** What Ferry said to a person in their direct room with it (joined on first use). */
  async function directMessages(name: string): Promise<string[]> {
    const u = user(name);
    const dm = await h.rt.store.get(`${h.prefix}:matrix:dm:${u.userId}`);
    if (!dm) return [];
    await u.client.join(dm);
    return bodies(await u.client.messages(dm));
  }

  /** A small real PNG, base64. */
  function png(width: number, height: number): string {
    const image = new PNG({ width, height });
    image.data.fill(0x80);
    return PNG.sync.write(image).toString('base64');
  }

  /** The bytes of an mxc:// upload, as a member downloads them. */
  async function download(reader: MatrixChat, mxc: string): Promise<Buffer> {
    const [server, mediaId] = mxc.replace('mxc://', '').split('/') as [string, string];
    const res = await fetch(`${info.url}/_matrix/client/v1/media/download/${server}/${mediaId}`, {
      headers: { authorization: `Bearer ${reader.sdk.getAccessToken()}` },
    });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  }

  it("answers a command and posts a chart as an m.image in the card's thread", async () => {
    const alice = user('alice').client;
    await alice.sendMessage(releasesRoom, { body: '!release payments v2' });
    releaseId = await waitFor(
      async () => (await h.rt.releases.active()).find((r) => r.app === 'payments')?.id,
      { timeoutMs: 60_000, what: 'the release' },
    );
    const card = await waitFor(() => matrix.delivery.cardOf(releaseId), {
      timeoutMs: 60_000,
      what: 'the card',
    });
    expect(card.room).toBe(releasesRoom);
    // A batch's chart, as the analysis posts it in the release's thread.
    const bytes = png(64, 48);
    await h.rt.announcer.announce({
      kind: 'reply',
      releaseId,
      text: 'eu-west batch 1/3: error rate and latency',
      file: { name: `${releaseId}-eu-west-batch-1.png`, text: 'error rate 0.1%, p95 80 ms', bytes },
    });
    const carol = user('carol').client;
    const image = await waitFor(
      async () =>
        (await carol.relations(card.room, card.event, 'm.thread', 500)).find(
          (e) => e.content.msgtype === 'm.image',
        ),
      { timeoutMs: 60_000, what: "the chart in the card's thread" },
    );
    expect(image.content.body).toBe('error rate 0.1%, p95 80 ms');
    expect(image.content.info).toEqual({
      mimetype: 'image/png',
      size: Buffer.from(bytes, 'base64').length,
      w: 64,
      h: 48,
    });
    expect(await download(carol, String(image.content.url))).toEqual(Buffer.from(bytes, 'base64'));
  }, 300_000);

  it("an alert's reactions: ↩️ rolls back only for those who may, 📜 reads the logs into its thread", async () => {
    const key = `oom-${releaseId}`;
    const chart = png(80, 40);
    await h.rt.announcer.announce({
      kind: 'alert',
      key,
      room: alertsRoom,
      releaseId,
      title: 'OOM kill: payments in prod/eu-west',
      fields: [['Pod', 'payments-7d9-abc']],
      count: 1,
      silenceKey: 'oom/eu-west/payments-prod/payments/app',
      logs: {
        alertKey: key,
        app: 'payments',
        environment: 'prod',
        region: 'eu-west',
        pod: 'payments-7d9-abc',
      },
      chart: {
        name: 'memory-payments-prod-payments-7d9-abc.png',
        text: 'memory of payments-7d9-abc',
        bytes: chart,
      },
    });
    const alert = await waitFor(() => matrix.delivery.alertAt(key), { timeoutMs: 60_000, what: 'the alert' });
    expect(alert.room).toBe(alertsRoom);
    const carol = user('carol').client;
    // Its plain text says what each reaction does.
    const body = String((await carol.event(alert.room, alert.event)).content.body);
    expect(body).toContain(`react 📜 for the logs, ↩️ to roll back ${releaseId}, 🔕 to silence for a while`);
    // The memory chart is in the alert's thread, an image.
    const image = await waitFor(
      async () =>
        (await carol.relations(alert.room, alert.event, 'm.thread')).find(
          (e) => e.content.msgtype === 'm.image',
        ),
      { timeoutMs: 60_000, what: "the chart in the alert's thread" },
    );
    expect(image.content.body).toBe('memory of payments-7d9-abc');
    expect(image.content.info).toMatchObject({ mimetype: 'image/png', w: 80, h: 40 });

    // erin may not roll back: her ↩ (without the variation selector) changes nothing, and she is told.
    await user('erin').client.react(alert.room, alert.event, '↩');
    const refusal = await waitFor(async () => (await directMessages('erin')).find((b) => b.includes('⚠️')), {
      timeoutMs: 60_000,
      what: "Ferry's answer to erin",
    });
    expect(refusal).toContain('You may not roll back payments in prod');
    expect(refusal).not.toContain('only a failed release');
    const { Queue } = await import('bullmq');
    const q = new Queue(QUEUES.release, { connection: h.rt.queue, prefix: h.prefix });
    expect(await q.getJob(jobId(releaseId, 'rollback'))).toBeUndefined();
    const release = h.rt.releases;
    expect((await release.get(releaseId))?.state).toBe('awaiting-approval');
    // The direct room Ferry answered erin in is a direct chat in the bot's account data (m.direct).
    const dm = await h.rt.store.get(`${h.prefix}:matrix:dm:${user('erin').userId}`);
    const direct = await matrix.client.request<Record<string, string[]>>(
      Method.Get,
      `/user/${encodeURIComponent(matrix.client.userId)}/account_data/m.direct`,
    );
    expect(direct[user('erin').userId]).toEqual([dm]);
    // The release fails (as the worker records it): dave, a payments developer, rolls it back from the alert.
    await release.apply(releaseId, { type: 'fail', reason: 'eu-west batch 1/3: 2 restarts' }, 'ferry');
    await user('dave').client.react(alert.room, alert.event, '↩️');
    const job = await waitFor(() => q.getJob(jobId(releaseId, 'rollback')), {
      timeoutMs: 60_000,
      what: 'the rollback job',
    });
    expect(job.data).toMatchObject({ releaseId, reason: expect.stringContaining(user('dave').userId) });
    await q.close();
    expect(await directMessages('dave')).not.toContainEqual(expect.stringContaining('⚠️'));

    // 📜: the Show logs request, answered by the log reader into the alert's thread.
    await user('bob').client.react(alert.room, alert.event, '📜');
    const answer = await waitFor(async () => (await directMessages('bob')).at(-1), {
      timeoutMs: 60_000,
      what: "Ferry's answer to bob's 📜",
    });
    expect(answer).toContain('Logs are not set up');
    // What the log reader posts for an alert (a message for the alert's thread) lands in the thread.
    await h.rt.announcer.announce({
      kind: 'message',
      channel: alertsRoom,
      threadOfAlert: key,
      text: 'Output of payments in prod/eu-west, pod `payments-7d9-abc` (app): last 2 lines.',
      snippet: 'allocating 512 MiB\nkilled',
    });
    const logs = await waitFor(
      async () =>
        bodies(await carol.relations(alert.room, alert.event, 'm.thread')).find((b) =>
          b.includes('Output of payments'),
        ),
      { timeoutMs: 60_000, what: "the logs in the alert's thread" },
    );
    expect(logs).toContain('allocating 512 MiB');
  }, 300_000);
});
