// Redis high availability: Ferry on a real Sentinel setup (one primary, two
// replicas, three sentinels; AOF everysec, asynchronous replication). The
// primary is SIGKILLed in the middle of a prod rollout; the sentinels promote
// a replica and Ferry follows. The release must end succeeded with one card in
// Slack and each batch applied once.
//
// The recording runners keep their effects (what a cluster would hold: applied
// batches, pushed images) in a Redis of their own, the way a real cluster
// outlives Ferry's Redis — so a batch re-applied because Ferry's Redis forgot
// it had been applied shows up as a count of 2, not as a lost record.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { StoredMessage } from '../../dev/slack-emulator/types.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import { logger } from '../../src/logging.ts';
import { storeConnection } from '../../src/queue/connection.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { fastConfig, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';
import { TestSentinel } from '../support/sentinel.ts';

const SECRET = 'failover-test-signing-secret';
const BOT = 'xoxb-ferry-failover-test';
const CH = 'C_RELEASES';

let sentinel: TestSentinel;
let cluster: TestRedis;
let clusterRedis: Redis;
let emu: SlackEmulator;
let rt: Runtime;
let bot: RunningBot;
let workers: RunningWorkers;
let reconciler: NodeJS.Timeout;
const prefix = `f${randomUUID().slice(0, 8)}`;

const flat = (m: StoredMessage) => JSON.stringify(m.blocks ?? []);
const cardsOf = (id: string) =>
  emu.channelMessages(CH).filter((m) => m.subtype !== 'thread_broadcast' && flat(m).includes(`"${id} ·`));

beforeAll(async () => {
  [sentinel, cluster] = await Promise.all([TestSentinel.start(), TestRedis.start()]);
  clusterRedis = storeConnection(cluster.url);
  emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: BOT });
  rt = createRuntime({ config: fastConfig(), redisUrl: sentinel.url, prefix, name: 'failover-test' });
  const runners = new RecordingRunners(clusterRedis, { stepMs: 300, replicas: 4 }, prefix);
  workers = startWorkers(jobContext(rt, runners, 100), {
    connection: rt.queue,
    prefix,
    lockDuration: 5000,
    log: logger('failover-worker').child({}, { level: 'error' }),
  });
  // What `ferry worker` does every FERRY_RECONCILE_MS: bring stored releases back in step.
  reconciler = setInterval(() => {
    rt.lifecycle.reconcile().catch(() => {});
  }, 1000);
  bot = await startSlackBot({ runtime: rt, token: BOT, signingSecret: SECRET, apiUrl: emu.apiUrl, port: 0 });
  emu.botEventsUrl = bot.url;
}, 60_000);

afterAll(async () => {
  clearInterval(reconciler);
  await bot?.stop();
  await workers?.close();
  await rt?.close();
  clusterRedis?.disconnect();
  await emu?.close();
  await sentinel?.stop();
  await cluster?.stop();
});

describe('Redis primary killed during a rollout', () => {
  it('the release ends succeeded, with one card and each batch once', async () => {
    await rt.versions.recordPassed('payments', 'v-failover', 'test');
    const r = await rt.lifecycle.request({ app: 'payments', version: 'v-failover', factors: [] }, 'U_ALICE');
    const id = r.releaseId as string;
    await rt.lifecycle.approve(id, 'U_BOB');
    await waitForState(
      rt,
      id,
      'deploying',
      30_000,
      (x) => x.batch?.region === 'eu-west' && x.batch.index === 2,
    );

    const old = await sentinel.killPrimary();
    const promoted = await sentinel.waitForFailover(old);
    expect(promoted).not.toBe(old);

    const done = await waitForState(rt, id, 'succeeded', 120_000);
    expect(done.progress).toEqual({ 'eu-west': 3, 'us-east': 3 });

    const all = await RecordingRunners.counts(clusterRedis, id, prefix);
    // The pull ahead while the release waited for its approval may have synced (and pulled) before the
    // flow did: idempotent, and not what this test is about. Everything else exactly once.
    const {
      'sync:eu-west': syncEu,
      'sync:us-east': syncUs,
      ...counts
    } = Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith('prepull:')));
    for (const n of [syncEu, syncUs]) expect(n === 1 || n === 2, JSON.stringify(all)).toBe(true);
    expect(counts).toEqual({
      build: 1,
      'prewarm:eu-west:1': 1,
      'prewarm:eu-west:2': 1,
      'prewarm:eu-west:4': 1,
      'prewarm:us-east:1': 1,
      'prewarm:us-east:2': 1,
      'prewarm:us-east:4': 1,
      'deploy:eu-west:batch1': 1,
      'deploy:eu-west:batch2': 1,
      'deploy:eu-west:batch3': 1,
      'deploy:us-east:batch1': 1,
      'deploy:us-east:batch2': 1,
      'deploy:us-east:batch3': 1,
      'verify:eu-west': 1,
      'verify:us-east': 1,
    });
    const batches = (await rt.releases.audit(id)).filter((a) => a.event === 'batch').map((a) => a.detail);
    expect(batches).toEqual([
      'eu-west batch 1/3: 1/4 pods',
      'eu-west batch 2/3: 2/4 pods',
      'eu-west batch 3/3: 4/4 pods',
      'us-east batch 1/3: 1/4 pods',
      'us-east batch 2/3: 2/4 pods',
      'us-east batch 3/3: 4/4 pods',
    ]);

    // One card, edited in place to its final state.
    const card = await emu.waitFor(() => {
      const cards = cardsOf(id);
      return cards.length === 1 && flat(cards[0] as StoredMessage).includes('succeeded')
        ? cards[0]
        : undefined;
    }, 30_000);
    expect(card.ts).toBe(done.thread?.ts);
    expect(cardsOf(id)).toHaveLength(1);
  }, 240_000);
});
