// Notify throughput against Slack's limits: 1,000 threads × 10 replies
// through the real notifier (BullMQ on a real redis-server) into the Slack
// emulator with Slack's rate limits enforced (chat.postMessage ~1/s per
// channel). The threads are spread over BENCH_NOTIFY_CHANNELS channels; a
// probe thread in a channel of its own sends 10 replies within its limit
// while the others are saturated, and one 429 (Retry-After 20 s) is injected
// part-way: its channel waits, the others must not.
//
//   node bench/notify.ts   → bench/results/notify.{json,md}
//
// Env: BENCH_NOTIFY_THREADS [1000], BENCH_NOTIFY_PER_THREAD [10],
// BENCH_NOTIFY_CHANNELS [100].
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { SlackEmulator } from '../dev/slack-emulator/index.ts';
import { startNotifier } from '../src/chat/notifier.ts';
import { notifierClient } from '../src/chat/slack/app.ts';
import { type ChatClient, SlackDelivery } from '../src/chat/slack/delivery.ts';
import type { Release } from '../src/domain/release.ts';
import { logger } from '../src/logging.ts';
import { QueueAnnouncer } from '../src/queue/announcer.ts';
import { exampleConfig } from '../test/support/config.ts';
import { TestRedis } from '../test/support/redis.ts';

const root = path.resolve(import.meta.dirname, '..');
const THREADS = Number(process.env.BENCH_NOTIFY_THREADS ?? 1000);
const PER = Number(process.env.BENCH_NOTIFY_PER_THREAD ?? 10);
const CHANNELS = Number(process.env.BENCH_NOTIFY_CHANNELS ?? 100);
const TOKEN = 'xoxb-bench';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length
    ? (s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number)
    : Number.NaN;
}

const t0 = Date.now();
const loadStart = os.loadavg();
const server = await TestRedis.start();
const store = new Redis(server.url);
const conn = new Redis(server.url, { maxRetriesPerRequest: null });
const prefix = `notify${Date.now().toString(36)}`;
const emu = await SlackEmulator.start({ signingSecret: 's', botToken: TOKEN, rateLimits: true });
const channels = Array.from({ length: CHANNELS }, (_, i) => `C_N${String(i).padStart(3, '0')}`);
for (const id of [...channels, 'C_PROBE']) emu.addChannel({ id, name: id.toLowerCase() });

// 1,000 thread parents (as the cards would be), posted straight into the emulator's state
const threads = new Map<string, { channel: string; ts: string }>();
for (let i = 0; i < THREADS; i++) {
  const channel = channels[i % CHANNELS] as string;
  const r = emu.callMethod('chat.postMessage', { channel, text: `release r${i}` }, TOKEN);
  threads.set(`r${i}`, { channel, ts: String(r['ts']) });
}
const probe = emu.callMethod('chat.postMessage', { channel: 'C_PROBE', text: 'probe' }, TOKEN);
threads.set('probe', { channel: 'C_PROBE', ts: String(probe['ts']) });

const announcer = new QueueAnnouncer(conn, prefix);
const notifier = startNotifier({
  store,
  connection: conn,
  queue: announcer.queue,
  prefix,
  log: logger('bench-notify').child({}, { level: 'warn' }),
  delivery: new SlackDelivery({
    config: () => exampleConfig(),
    releases: {
      get: async (id) => ({ id, thread: threads.get(id) }) as unknown as Release,
      patch: async () => undefined,
    },
    store,
    prefix,
    client: notifierClient(TOKEN, emu.apiUrl) as unknown as ChatClient,
    log: logger('bench-notify').child({}, { level: 'warn' }),
  }),
});

const announced = new Map<string, number>();
const arrived = new Map<string, number>();
const order = new Map<string, string[]>();
emu.onChange((e) => {
  if (e.type !== 'message' || !e.thread_ts) return;
  const m = emu.message(e.channel, e.ts);
  const text = m?.text ?? '';
  const [rid] = text.split(' ');
  if (!rid) return;
  arrived.set(text, performance.now());
  order.set(rid, [...(order.get(rid) ?? []), text]);
});

const total = THREADS * PER + PER;
const started = performance.now();
// the probe: one reply a 1.2 s, under its channel's limit
const probeLoop = (async () => {
  for (let k = 0; k < PER; k++) {
    const text = `probe ${k}`;
    announced.set(text, performance.now());
    await announcer.announce({ kind: 'reply', releaseId: 'probe', text });
    await sleep(1200);
  }
})();
let injectedAt = 0;
const injectLoop = (async () => {
  await sleep(10_000);
  injectedAt = emu.calls.length;
  emu.inject({ method: 'chat.postMessage', status: 429, retryAfter: 20, times: 1 });
})();
// the load: round-robin over the threads, k-th reply of every thread before the (k+1)-th
for (let k = 0; k < PER; k++) {
  for (let i = 0; i < THREADS; i++) {
    const text = `r${i} ${k}`;
    announced.set(text, performance.now());
    await announcer.announce({ kind: 'reply', releaseId: `r${i}`, text });
  }
}
const announceMs = performance.now() - started;
await Promise.all([probeLoop, injectLoop]);
const until = Date.now() + 30 * 60_000;
while (arrived.size < total && Date.now() < until) await sleep(500);
const wall = performance.now() - started;
await notifier.close();

const victimCall = emu.calls.slice(injectedAt).find((c) => c.status === 429 && c.injected === 'ratelimited');
const victim = String(victimCall?.args['channel'] ?? '');
const lat = (filter: (t: string) => boolean) =>
  [...announced].filter(([t]) => filter(t) && arrived.has(t)).map(([t, a]) => (arrived.get(t) as number) - a);
const probeLat = lat((t) => t.startsWith('probe '));
const outOfOrder = [...order].filter(([rid, texts]) => {
  const ks = texts.map((t) => Number(t.split(' ')[1]));
  return ks.some((k, i) => i > 0 && k < (ks[i - 1] as number)) || (rid !== 'probe' && ks.length !== PER);
}).length;
const lastArrival = (ch: string) =>
  Math.max(
    ...[...threads]
      .filter(([, t]) => t.channel === ch)
      .flatMap(([rid]) => Array.from({ length: PER }, (_, k) => arrived.get(`${rid} ${k}`) ?? 0)),
  ) - started;
const otherChannelsDone = Math.max(...channels.filter((c) => c !== victim).map(lastArrival));
const limitPerSec = CHANNELS * 1 + 1;
const result = {
  when: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model,
    loadavgAtStart: loadStart.map((x) => Math.round(x * 10) / 10),
  },
  threads: THREADS,
  perThread: PER,
  channels: CHANNELS,
  messages: total,
  delivered: arrived.size,
  announceMs: Math.round(announceMs),
  wallMs: Math.round(wall),
  throughputPerSec: Math.round((arrived.size / (wall / 1000)) * 10) / 10,
  limitPerSec,
  threadsOutOfOrderOrIncomplete: outOfOrder,
  emulator429s: emu.rateLimits?.limited ?? {},
  injected429: {
    channel: victim,
    retryAfterS: 20,
    victimLastMs: victim ? Math.round(lastArrival(victim)) : null,
    othersLastMs: Math.round(otherChannelsDone),
  },
  probe: { n: probeLat.length, p50: Math.round(pct(probeLat, 50)), max: Math.round(Math.max(...probeLat)) },
  allReplies: {
    p50: Math.round(
      pct(
        lat(() => true),
        50,
      ),
    ),
    p99: Math.round(
      pct(
        lat(() => true),
        99,
      ),
    ),
  },
  seconds: Math.round((Date.now() - t0) / 1000),
};
await emu.close();
store.disconnect();
conn.disconnect();
await server.stop();
mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
writeFileSync(path.join(root, 'bench', 'results', 'notify.json'), `${JSON.stringify(result, null, 2)}\n`);
const md = [
  '# Notify: per-thread lanes against Slack’s rate limits',
  '',
  `Run ${result.when} on ${result.machine.cpus} × ${result.machine.model} (load ${result.machine.loadavgAtStart.join(' / ')} at the start; shared machine).`,
  '',
  `${THREADS} threads × ${PER} replies over ${CHANNELS} channels (+ a probe thread in a channel of its own), through the real notifier (BullMQ, redis-server) into the Slack emulator with Slack's limits enforced (chat.postMessage ~1/s per channel, burst 3). One 429 with Retry-After 20 s injected after 10 s.`,
  '',
  '| measure | figure |',
  '| --- | ---: |',
  `| delivered | ${result.delivered} / ${total} in ${Math.round(wall / 1000)} s |`,
  `| throughput | ${result.throughputPerSec} msg/s against a limit of ${limitPerSec} msg/s (${Math.round((result.throughputPerSec / limitPerSec) * 100)}%) |`,
  `| threads out of order or incomplete | ${outOfOrder} |`,
  `| 429s answered by the emulator's limiter | ${JSON.stringify(result.emulator429s)} |`,
  `| injected 429 (20 s) on ${victim}: its last reply / other channels' last reply | ${result.injected429.victimLastMs} ms / ${result.injected429.othersLastMs} ms |`,
  `| probe thread (own channel, within its limit): worst head-of-line delay | ${result.probe.max} ms (p50 ${result.probe.p50}) |`,
  '',
  'Reproduce: `node bench/notify.ts`.',
  '',
].join('\n');
writeFileSync(path.join(root, 'bench', 'results', 'notify.md'), md);
process.stdout.write(md);
process.exit(0);
