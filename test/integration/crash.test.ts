// Crash safety: the worker is killed with SIGKILL in every step of a release
// and started again; Redis is killed and restarted (AOF) mid-release. Every
// release must end as it would have without the crash, with each effect
// performed once and every transition in the audit trail.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ReleaseState } from '../../src/domain/release.ts';
import { RecordingRunners } from '../../src/runners/recording.ts';
import { fastConfig, type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let redis: TestRedis;
let h: Harness;
let configFile: string;

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, 'bin/ferry.mjs'), 'worker', '--config', configFile], {
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      FERRY_PREFIX: h.prefix,
      FERRY_RUNNERS: 'recording',
      FERRY_RECORDING_STEP_MS: '400',
      FERRY_LOCK_MS: '2000',
      FERRY_RECONCILE_MS: '1000',
      FERRY_POLL_MS: '100',
      FERRY_OPS_PORT: '0',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
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
  it.each(['building', 'syncing', 'deploying', 'verifying'] as ReleaseState[])(
    'killed while %s: the release still succeeds, each effect once, the audit complete',
    async (step) => {
      h = harness(redis.url, fastConfig());
      let worker = startWorker();
      try {
        const r = await h.rt.lifecycle.request(
          { app: 'payments', version: `c-${step}`, environment: 'test', factors: [] },
          'U_ALICE',
        );
        const id = r.releaseId as string;
        await waitForState(h.rt, id, step, 30_000);
        await kill(worker);
        worker = startWorker();
        await waitForState(h.rt, id, 'succeeded', 60_000);
        expect(await RecordingRunners.counts(h.rt.store, id, h.prefix)).toEqual({
          build: 1,
          'sync:eu-west': 1,
          'deploy:eu-west:batch1': 1,
          'verify:eu-west': 1,
        });
        expect((await h.rt.releases.audit(id)).map((a) => a.to)).toEqual(CLEAN_RUN);
      } finally {
        await kill(worker);
        await h.close();
      }
    },
    90_000,
  );

  it('killed between batches of a prod rollout: picks up at the next batch, never re-applies one', async () => {
    h = harness(redis.url, fastConfig());
    let worker = startWorker();
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
      worker = startWorker();
      await waitForState(
        h.rt,
        id,
        'deploying',
        30_000,
        (x) => x.batch?.region === 'us-east' && x.batch.index === 1,
      );
      await kill(worker);
      worker = startWorker();
      const done = await waitForState(h.rt, id, 'succeeded', 60_000);
      expect(done.progress).toEqual({ 'eu-west': 3, 'us-east': 3 });
      const counts = await RecordingRunners.counts(h.rt.store, id, h.prefix);
      expect(Object.keys(counts).sort()).toEqual([
        'build',
        'deploy:eu-west:batch1',
        'deploy:eu-west:batch2',
        'deploy:eu-west:batch3',
        'deploy:us-east:batch1',
        'deploy:us-east:batch2',
        'deploy:us-east:batch3',
        'sync:eu-west',
        'sync:us-east',
        'verify:eu-west',
        'verify:us-east',
      ]);
      expect(Object.values(counts).every((n) => n === 1)).toBe(true);
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
  }, 120_000);
});

describe('Redis restarted mid-release', () => {
  it('loses nothing: the release finishes and the audit trail is whole', async () => {
    h = harness(redis.url, fastConfig());
    const worker = startWorker();
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
      expect(Object.values(await RecordingRunners.counts(h.rt.store, id, h.prefix))).toEqual([1, 1, 1, 1]);
    } finally {
      await kill(worker);
      await h.close();
    }
  }, 120_000);
});
