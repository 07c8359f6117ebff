// Crash safety: the worker is killed with SIGKILL in every step of a release
// and started again; Redis is killed and restarted (AOF) mid-release. Every
// release must end as it would have without the crash, with the audit trail
// whole. The recording runners count every execution of an effect, so the
// tests tell apart what Ferry promises (README, "Exactly once, at least
// once"): a step that finished is never run again (exactly once); the step in
// flight when its worker dies runs again (at least once) and must produce the
// same outcome (idempotent). A step whose worker dies again and again fails
// its release with the reason instead of being retried for ever.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ReleaseState } from '../../src/domain/release.ts';
import { jobId, QUEUES } from '../../src/queue/names.ts';
import { fastConfig, type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { NODE, recordingWorkerArgs, started } from '../support/node.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

let redis: TestRedis;
let h: Harness;
let configFile: string;

/**
 * The worker with the recording runners, once it says it is running: it takes seconds to load, and
 * up to STARTUP_MS (120 s) on a busy machine, so each test's time limit is what its release needs plus
 * 120 s per worker it starts.
 */
async function startWorker(env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(NODE, recordingWorkerArgs(configFile), {
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      FERRY_PREFIX: h.prefix,
      RECORDING_STEP_MS: '400',
      FERRY_LOCK_MS: '2000',
      FERRY_RECONCILE_MS: '1000',
      FERRY_POLL_MS: '100',
      FERRY_OPS_PORT: '0',
      FERRY_HEALTH_PORT: 'off',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return started(child, /^ferry worker: running/, (text) => process.stderr.write(text));
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** The transitions a release makes when nothing goes wrong. */
const CLEAN_RUN: ReleaseState[] = [
  'requested',
  'approved',
  'building',
  'syncing',
  'deploying',
  'deploying',
  'verifying',
  'succeeded',
];

/**
 * Every effect in `expected` happened: exactly once, except those in `inFlight` (the steps a kill
 * interrupted), which ran at least once and at most once more per kill — with the same outcome each time.
 */
async function expectEffects(id: string, expected: string[], inFlight: string[], kills = 1): Promise<void> {
  // The pull ahead while a prod release waits is background work that stops once the release deploys:
  // whether it got to pull anything before the approval depends on timing, so it is not counted here
  // (test/integration/lifecycle.test.ts tests it).
  const counts = Object.fromEntries(
    Object.entries(await RecordingRunners.counts(h.rt.store, id, h.prefix)).filter(
      ([k]) => !k.startsWith('prepull:'),
    ),
  );
  expect(Object.keys(counts).sort()).toEqual([...expected].sort());
  for (const [effect, n] of Object.entries(counts)) {
    if (inFlight.includes(effect)) {
      expect(n, effect).toBeGreaterThanOrEqual(1);
      expect(n, effect).toBeLessThanOrEqual(1 + kills);
    } else expect({ effect, n }).toEqual({ effect, n: 1 });
  }
  expect(await RecordingRunners.divergent(h.rt.store, id, h.prefix)).toEqual({});
}

beforeAll(async () => {
  redis = await TestRedis.start();
  const dir = mkdtempSync(join(tmpdir(), 'ferry-crash-'));
  configFile = join(dir, 'ferry.yaml');
  writeFileSync(configFile, stringify(fastConfig()));
});
afterAll(async () => {
  await h?.close();
  await redis.stop();
});

describe('a worker killed at every step', () => {
  const inFlight: Record<string, string> = {
    building: 'build',
    syncing: 'sync:eu-west',
    deploying: 'deploy:eu-west:batch1',
    verifying: 'verify:eu-west',
  };
  it.each(['building', 'syncing', 'deploying', 'verifying'] as ReleaseState[])(
    'killed while %s: the release still succeeds, finished steps once, the step in flight again with the same outcome',
    async (step) => {
      h = harness(redis.url, fastConfig());
      let worker = await startWorker();
      try {
        const r = await h.rt.lifecycle.request(
          { app: 'payments', version: `c-${step}`, environment: 'test', factors: [] },
          'U_ALICE',
        );
        const id = r.releaseId as string;
        await waitForState(h.rt, id, step, 30_000);
        await kill(worker);
        worker = await startWorker();
        await waitForState(h.rt, id, 'succeeded', 60_000);
        await expectEffects(
          id,
          ['build', 'sync:eu-west', 'prewarm:eu-west:4', 'deploy:eu-west:batch1', 'verify:eu-west'],
          // A batch in flight pulls its nodes again before it applies (idempotent).
          step === 'deploying' ? [inFlight[step] as string, 'prewarm:eu-west:4'] : [inFlight[step] as string],
        );
        expect((await h.rt.releases.audit(id)).map((a) => a.to)).toEqual(CLEAN_RUN);
      } finally {
        await kill(worker);
        await h.close();
      }
    },
    330_000,
  );

  it('killed between batches of a prod rollout: picks up at the batch in flight, never re-applies a finished one', async () => {
    h = harness(redis.url, fastConfig());
    let worker = await startWorker();
    try {
      await h.rt.versions.recordPassed('payments', 'c-prod', 'test');
      const r = await h.rt.lifecycle.request({ app: 'payments', version: 'c-prod', factors: [] }, 'U_ALICE');
      const id = r.releaseId as string;
      await h.rt.lifecycle.approve(id, 'U_BOB');
      await waitForState(
        h.rt,
        id,
        'deploying',
        30_000,
        (x) => x.batch?.region === 'eu-west' && x.batch.index === 2,
      );
      await kill(worker);
      worker = await startWorker();
      await waitForState(
        h.rt,
        id,
        'deploying',
        30_000,
        (x) => x.batch?.region === 'us-east' && x.batch.index === 1,
      );
      await kill(worker);
      worker = await startWorker();
      const done = await waitForState(h.rt, id, 'succeeded', 60_000);
      expect(done.progress).toEqual({ 'eu-west': 3, 'us-east': 3 });
      // Killed in eu-west's batch 2 and in us-east's batch 1: those two may be applied again (same pods);
      // every other batch, the build, the syncs and the verifications exactly once.
      await expectEffects(
        id,
        [
          'build',
          'deploy:eu-west:batch1',
          'deploy:eu-west:batch2',
          'deploy:eu-west:batch3',
          'deploy:us-east:batch1',
          'deploy:us-east:batch2',
          'deploy:us-east:batch3',
          'prewarm:eu-west:1',
          'prewarm:eu-west:2',
          'prewarm:eu-west:4',
          'prewarm:us-east:1',
          'prewarm:us-east:2',
          'prewarm:us-east:4',
          'sync:eu-west',
          'sync:us-east',
          'verify:eu-west',
          'verify:us-east',
        ],
        // The batches in flight and the pulls before them; the syncs may also have run ahead, while the
        // release waited for its approval (same outcome: idempotent).
        [
          'deploy:eu-west:batch2',
          'deploy:us-east:batch1',
          'prewarm:eu-west:2',
          'prewarm:us-east:1',
          'sync:eu-west',
          'sync:us-east',
        ],
      );
      const batches = (await h.rt.releases.audit(id)).filter((a) => a.event === 'batch').map((a) => a.detail);
      expect(batches).toEqual([
        'eu-west batch 1/3: 1/4 pods',
        'eu-west batch 2/3: 2/4 pods',
        'eu-west batch 3/3: 4/4 pods',
        'us-east batch 1/3: 1/4 pods',
        'us-east batch 2/3: 2/4 pods',
        'us-east batch 3/3: 4/4 pods',
      ]);
    } finally {
      await kill(worker);
      await h.close();
    }
  }, 480_000);
});

describe('Redis restarted mid-release', () => {
  it('loses nothing: the release finishes and the audit trail is whole', async () => {
    h = harness(redis.url, fastConfig());
    const worker = await startWorker();
    try {
      const r = await h.rt.lifecycle.request(
        { app: 'payments', version: 'c-redis', environment: 'test', factors: [] },
        'U_ALICE',
      );
      const id = r.releaseId as string;
      await waitForState(h.rt, id, 'syncing', 30_000);
      await redis.restart();
      await waitForState(h.rt, id, 'succeeded', 90_000);
      expect((await h.rt.releases.audit(id)).map((a) => a.to)).toEqual(CLEAN_RUN);
      await expectEffects(
        id,
        ['build', 'sync:eu-west', 'prewarm:eu-west:4', 'deploy:eu-west:batch1', 'verify:eu-west'],
        ['sync:eu-west'],
      );
    } finally {
      await kill(worker);
      await h.close();
    }
  }, 240_000);
});

describe('a step whose worker dies every time', () => {
  it('fails its release with the reason after FERRY_MAX_STALLS stalls, instead of retrying for ever', async () => {
    h = harness(redis.url, fastConfig());
    // The build takes two minutes: every worker that picks it up is killed in the middle of it.
    const env = { RECORDING_STEP_MS: '120000', FERRY_MAX_STALLS: '2' };
    const queue = new Queue(QUEUES.release, { connection: h.rt.queue, prefix: h.prefix });
    let worker = await startWorker(env);
    try {
      const r = await h.rt.lifecycle.request(
        { app: 'payments', version: 'c-stall', environment: 'test', factors: [] },
        'U_ALICE',
      );
      const id = r.releaseId as string;
      const build = jobId(id, 'build');
      for (let stalls = 0; stalls <= 2; stalls++) {
        // The job is running again (picked up after `stalls` stalls): kill the worker running it.
        await waitUntil(async () => {
          const job = await queue.getJob(build);
          return (await job?.getState()) === 'active' && job?.stalledCounter === stalls;
        }, `build active after ${stalls} stalls`);
        await kill(worker);
        worker = await startWorker(env);
      }
      const failed = await waitForState(h.rt, id, 'failed', 60_000);
      expect(failed.error).toMatch(/^build: the worker running it stopped 3 times without finishing/);
      const job = await queue.getJob(build);
      expect(await job?.getState()).toBe('failed');
      expect(job?.stalledCounter).toBe(3);
      expect(job?.failedReason).toMatch(/stalled more than allowable limit/);
      // The build never got to its effect, and nothing after it ran.
      expect(await RecordingRunners.counts(h.rt.store, id, h.prefix)).toEqual({});
      // (Whether 'building' was stored depends on how soon each worker was killed.)
      const trail = (await h.rt.releases.audit(id)).map((a) => a.to);
      expect(trail.filter((t) => t !== 'building')).toEqual(['requested', 'approved', 'failed']);
    } finally {
      await kill(worker);
      await queue.close();
      await h.close();
    }
  }, 600_000);
});

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
