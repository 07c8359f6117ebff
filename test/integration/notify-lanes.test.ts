// The notifier keeps order per thread, not globally: a 429 in one channel
// holds that channel only (real Redis + BullMQ, the Slack emulator).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import { type Notifier, startNotifier } from '../../src/chat/notifier.ts';
import { notifierClient } from '../../src/chat/slack/app.ts';
import { type ChatClient, SlackDelivery } from '../../src/chat/slack/delivery.ts';
import type { Release } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { QueueAnnouncer } from '../../src/queue/announcer.ts';
import { LaneGate, type LaneMessage, laneOf } from '../../src/queue/lane-order.ts';
import type { Rate } from '../../src/queue/lanes.ts';
import { exampleConfig } from '../support/config.ts';
import { TestRedis } from '../support/redis.ts';

const TOKEN = 'xoxb-lanes';
let server: TestRedis;
let store: Redis;
let conn: Redis;
let emu: SlackEmulator;
let announcer: QueueAnnouncer;
let notifier: Notifier;
let replica: Notifier;
let prefix: string;
const threads = new Map<string, { channel: string; ts: string }>();

beforeAll(async () => {
  server = await TestRedis.start();
  store = new Redis(server.url);
  conn = new Redis(server.url, { maxRetriesPerRequest: null });
  emu = await SlackEmulator.start({ signingSecret: 's', botToken: TOKEN, rateLimits: true });
  for (const id of ['C_A', 'C_B']) emu.addChannel({ id, name: id.toLowerCase() });
  for (const [rid, channel] of [
    ['ra', 'C_A'],
    ['rb', 'C_B'],
  ] as const) {
    const r = emu.callMethod('chat.postMessage', { channel, text: rid }, TOKEN);
    threads.set(rid, { channel, ts: String(r['ts']) });
  }
  prefix = `lanes${Date.now().toString(36)}`;
  announcer = new QueueAnnouncer(conn, prefix);
  notifier = startBotNotifier();
});

/**
 * One bot replica's notifier (its own process state: lanes, pacing), on the shared queue unless `on`
 * names another announcer's.
 */
function startBotNotifier(
  on: { announcer: QueueAnnouncer; prefix: string } = { announcer, prefix },
  tuning: { concurrency?: number; rates?: { postMessage: Rate } } = {},
): Notifier {
  const quiet = logger('lanes-test').child({}, { level: 'silent' });
  return startNotifier({
    store,
    connection: conn,
    queue: on.announcer.queue,
    prefix: on.prefix,
    log: quiet,
    laneStallMs: 1500,
    ...(tuning.concurrency ? { concurrency: tuning.concurrency } : {}),
    delivery: new SlackDelivery({
      config: () => exampleConfig(),
      releases: {
        get: async (id) => ({ id, thread: threads.get(id) }) as unknown as Release,
        patch: async () => undefined,
      },
      store,
      prefix: on.prefix,
      client: notifierClient(TOKEN, emu.apiUrl) as unknown as ChatClient,
      log: quiet,
      ...(tuning.rates ? { rates: tuning.rates } : {}),
    }),
  });
}

afterAll(async () => {
  await replica?.close();
  await notifier?.close();
  await emu?.close();
  store?.disconnect();
  conn?.disconnect();
  await server?.stop();
});

const replies = (rid: string) => {
  const t = threads.get(rid) as { channel: string; ts: string };
  return emu
    .thread(t.channel, t.ts)
    .slice(1)
    .map((m) => m.text);
};

describe('notify lanes', () => {
  it('a 429 in one channel holds that channel only; each thread keeps its order', async () => {
    emu.inject({ method: 'chat.postMessage', status: 429, retryAfter: 4, times: 1 });
    await announcer.announce({ kind: 'reply', releaseId: 'ra', text: 'a1' });
    await announcer.announce({ kind: 'reply', releaseId: 'ra', text: 'a2' });
    await emu.waitFor(() => emu.calls.find((c) => c.status === 429 && c.args['channel'] === 'C_A'));
    await announcer.announce({ kind: 'reply', releaseId: 'rb', text: 'b1' });
    await announcer.announce({ kind: 'reply', releaseId: 'rb', text: 'b2' });
    // C_B goes out while C_A still waits out its Retry-After
    await emu.waitFor(() => replies('rb').length === 2 || undefined, 3500);
    expect(replies('rb')).toEqual(['b1', 'b2']);
    expect(replies('ra')).toEqual([]);
    // then C_A, in order
    await emu.waitFor(() => replies('ra').length === 2 || undefined, 15_000);
    expect(replies('ra')).toEqual(['a1', 'a2']);
  });

  it('paces chat.postMessage to about one a second per channel, so Slack never answers 429', async () => {
    const before = emu.calls.length;
    for (let k = 0; k < 4; k++) await announcer.announce({ kind: 'reply', releaseId: 'rb', text: `p${k}` });
    await emu.waitFor(() => replies('rb').filter((t) => t.startsWith('p')).length === 4 || undefined, 15_000);
    const posts = emu.calls.slice(before).filter((c) => c.method === 'chat.postMessage');
    expect(posts.every((c) => c.status === 200)).toBe(true);
    const times = posts.map((c) => c.time);
    for (let i = 1; i < times.length; i++)
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(900);
    expect(emu.rateLimits?.limited['chat.postMessage'] ?? 0).toBe(0);
  });

  it('with two bot replicas on the queue, every thread still keeps its order', async () => {
    replica ??= startBotNotifier();
    const sent = { first: 0, second: 0 };
    const ids = Array.from({ length: 8 }, (_, i) => `rr${i}`);
    // Only this test's jobs: the previous test's last reply can complete after its message was seen.
    const ours = (job: { data: LaneMessage }) => ids.some((rid) => laneOf(job.data) === `release:${rid}`);
    notifier.worker.on('completed', (job) => ours(job) && sent.first++);
    replica.worker.on('completed', (job) => ours(job) && sent.second++);
    for (const [i, rid] of ids.entries()) {
      const channel = `C_R${i}`;
      emu.addChannel({ id: channel, name: channel.toLowerCase() });
      const r = emu.callMethod('chat.postMessage', { channel, text: rid }, TOKEN);
      threads.set(rid, { channel, ts: String(r['ts']) });
    }
    // Interleaved as several releases would announce: the replicas take alternate jobs.
    for (let k = 0; k < 4; k++)
      for (const rid of ids) await announcer.announce({ kind: 'reply', releaseId: rid, text: `${rid}-${k}` });
    await emu.waitFor(() => ids.every((rid) => replies(rid).length === 4) || undefined, 30_000);
    for (const rid of ids) expect(replies(rid)).toEqual([0, 1, 2, 3].map((k) => `${rid}-${k}`));
    // Both replicas sent some of them: the order held across processes, not inside one. (A job completes
    // just after its message is seen: settling its place comes between.)
    await emu.waitFor(() => sent.first + sent.second >= 32 || undefined, 10_000);
    expect(sent.first + sent.second).toBe(32);
    expect(Math.min(sent.first, sent.second)).toBeGreaterThan(0);
  });

  it('a lane whose place went missing (its announcer died) goes on after the stall', async () => {
    const rid = 'rb';
    // The place is taken and never queued, as when the process dies between the two.
    await new LaneGate(conn, { prefix }).next(laneOf({ kind: 'reply', releaseId: rid, text: '' }));
    await announcer.announce({ kind: 'reply', releaseId: rid, text: 'after-gap' });
    await emu.waitFor(() => replies(rid).includes('after-gap') || undefined, 15_000);
    expect(replies(rid).at(-1)).toBe('after-gap');
  });

  it('a message held longer than the stall (a 429) still goes before the next one of its thread on the other replica', async () => {
    replica ??= startBotNotifier();
    const rid = 'rs';
    emu.addChannel({ id: 'C_SLOW', name: 'c_slow' });
    const parent = emu.callMethod('chat.postMessage', { channel: 'C_SLOW', text: rid }, TOKEN);
    threads.set(rid, { channel: 'C_SLOW', ts: String(parent['ts']) });
    emu.inject({ method: 'chat.postMessage', status: 429, retryAfter: 3, times: 1 });
    await announcer.announce({ kind: 'reply', releaseId: rid, text: 'slow-1' });
    await announcer.announce({ kind: 'reply', releaseId: rid, text: 'slow-2' });
    await emu.waitFor(() => replies(rid).includes('slow-2') || undefined, 20_000);
    // 3 s in its bucket, twice the lane's 1.5 s stall: its successor waited all the same.
    expect(replies(rid)).toEqual(['slow-1', 'slow-2']);
    expect(emu.calls.some((c) => c.status === 429)).toBe(true);
  });
});

describe('a message whose paced turn is far off', () => {
  it('frees its slot until then: another channel goes first, and the far-off ones still go at the pace, in order', async () => {
    // Two slots, and a channel that takes one post every 3 s: three threads there reserve turns 0, 3 and 6 s
    // away. Before, the two waiting for theirs held both slots, and the other channel's reply waited with them.
    const pre = `${prefix}far`;
    const farAnnouncer = new QueueAnnouncer(conn, pre);
    const slow = startBotNotifier(
      { announcer: farAnnouncer, prefix: pre },
      { concurrency: 2, rates: { postMessage: { count: 1, perMs: 3000, burst: 1 } } },
    );
    try {
      emu.addChannel({ id: 'C_FAR', name: 'c_far' });
      emu.addChannel({ id: 'C_NEAR', name: 'c_near' });
      for (const [rid, channel] of [
        ['far1', 'C_FAR'],
        ['far2', 'C_FAR'],
        ['far3', 'C_FAR'],
        ['near', 'C_NEAR'],
      ] as const) {
        const r = emu.callMethod('chat.postMessage', { channel, text: rid }, TOKEN);
        threads.set(rid, { channel, ts: String(r['ts']) });
      }
      for (const rid of ['far1', 'far2', 'far3']) {
        await farAnnouncer.announce({ kind: 'reply', releaseId: rid, text: `${rid}-a` });
        await farAnnouncer.announce({ kind: 'reply', releaseId: rid, text: `${rid}-b` });
      }
      await emu.waitFor(() => replies('far1').length === 1 || undefined, 5000);
      await farAnnouncer.announce({ kind: 'reply', releaseId: 'near', text: 'near-1' });
      await emu.waitFor(() => replies('near').length === 1 || undefined, 10_000);
      await emu.waitFor(
        () => ['far1', 'far2', 'far3'].every((rid) => replies(rid).length === 2) || undefined,
        30_000,
      );
      for (const rid of ['far1', 'far2', 'far3']) expect(replies(rid)).toEqual([`${rid}-a`, `${rid}-b`]);
      const times = emu.calls
        .filter(
          (c) => c.method === 'chat.postMessage' && c.args['channel'] === 'C_FAR' && c.args['thread_ts'],
        )
        .map((c) => c.time);
      expect(times).toHaveLength(6);
      // The far channel at its pace (a timer may fire a millisecond early)...
      for (let i = 1; i < times.length; i++)
        expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(2800);
      // ...and the other channel's reply did not wait for a slot: it went before the far channel's second turn.
      const near = emu.calls.find((c) => c.method === 'chat.postMessage' && c.args['channel'] === 'C_NEAR');
      expect(near?.time).toBeLessThan(times[1] as number);
      expect(emu.rateLimits?.limited['chat.postMessage'] ?? 0).toBe(0);
    } finally {
      await slow.close();
      await farAnnouncer.close();
    }
  }, 60_000);
});

describe('what a person waits for', () => {
  it('goes ahead of the replies already queued: an answer to them is sent first', async () => {
    const pre = `${prefix}first`;
    const queued = new QueueAnnouncer(conn, pre);
    emu.addChannel({ id: 'C_BUSY', name: 'c_busy' });
    const parent = emu.callMethod('chat.postMessage', { channel: 'C_BUSY', text: 'busy' }, TOKEN);
    threads.set('busy', { channel: 'C_BUSY', ts: String(parent['ts']) });
    // Queued while no notifier runs: five progress replies, then a person's answer.
    for (let k = 0; k < 5; k++)
      await queued.announce({ kind: 'reply', releaseId: 'busy', text: `progress ${k}` });
    await queued.announce({ kind: 'ephemeral', channel: 'C_BUSY', user: 'U_WAITING', text: 'your answer' });
    const before = emu.calls.length;
    const one = startBotNotifier({ announcer: queued, prefix: pre }, { concurrency: 1 });
    try {
      await emu.waitFor(() => replies('busy').length === 5 || undefined, 20_000);
      const sent = emu.calls
        .slice(before)
        .filter((c) => c.method === 'chat.postEphemeral' || c.args['channel'] === 'C_BUSY')
        .map((c) => (c.method === 'chat.postEphemeral' ? 'answer' : String(c.args['text'])));
      expect(sent).toEqual(['answer', ...[0, 1, 2, 3, 4].map((k) => `progress ${k}`)]);
    } finally {
      await one.close();
      await queued.close();
    }
  }, 40_000);
});
