// Releases of apps whose code is on a remote git server over HTTPS with a
// token (lighttpd + git-http-backend, started here), through the worker and
// the lifecycle (sync and rollout recorded): the app's `git` settings in the
// config reach the build; a wrong token fails the release at checkout within
// seconds, and no message of the release holds the token.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { buildRunner, repositoryOf } from '../../src/runners/real.ts';
import { createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import {
  buildBusyboxBase,
  makeAppRepo,
  startRegistry,
  type TestRegistry,
  tempDir,
} from '../support/build-fixtures.ts';
import { type HttpsGitServer, publishBare, startHttpsGitServer } from '../support/git-servers.ts';
import { fastConfig, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

const GOOD_ENV = 'FERRY_RG_PAYMENTS_TOKEN';
const WRONG_ENV = 'FERRY_RG_LEDGER_TOKEN';
let token: string;
let wrong: string;
let work: string;
let registry: TestRegistry;
let https: HttpsGitServer;
let redis: TestRedis;
let rt: Runtime;
let workers: RunningWorkers;

beforeAll(async () => {
  work = await tempDir('release-git');
  registry = await startRegistry();
  redis = await TestRedis.start();
  const base = `${registry.host}/fixture/base:1`;
  await buildBusyboxBase({ image: base, marker: 'base 1', storeDir: join(work, 'fixture-store') });
  const source = await makeAppRepo(join(work, 'source'), base);
  await publishBare(source.dir, join(work, 'srv'), 'payments');
  token = `tok-${randomBytes(12).toString('hex')}`;
  wrong = `wrong-${randomBytes(12).toString('hex')}`;
  process.env[GOOD_ENV] = token;
  process.env[WRONG_ENV] = wrong;
  https = await startHttpsGitServer({
    dir: join(work, 'https'),
    projectRoot: join(work, 'srv'),
    username: 'ferry',
    token,
  });
  const config: FerryConfig = fastConfig((c) => {
    c.primaryRegistry = { url: registry.url, insecure: true, pullThrough: false };
    const payments = c.apps.payments as FerryConfig['apps'][string];
    payments.repo = https.url('payments');
    payments.git = { username: 'ferry', tokenEnv: GOOD_ENV, caFile: https.caFile };
    const ledger = c.apps.ledger as FerryConfig['apps'][string];
    ledger.repo = https.url('payments');
    ledger.git = { username: 'ferry', tokenEnv: WRONG_ENV, caFile: https.caFile };
    c.build = { ...c.build, cacheDir: join(work, 'cache') };
  });
  rt = createRuntime({ config, redisUrl: redis.url, prefix: 'rg', name: 'release-git' });
  const recorded = new RecordingRunners(rt.store, { stepMs: 10, replicas: 2 }, 'rg');
  workers = startWorkers(
    jobContext(
      rt,
      {
        build: buildRunner(config),
        sync: recorded.sync.bind(recorded),
        rollout: recorded.rollout.bind(recorded),
        verify: recorded.verify.bind(recorded),
      },
      100,
    ),
    { connection: rt.queue, prefix: 'rg', log: logger('release-git').child({}, { level: 'silent' }) },
  );
});

afterAll(async () => {
  delete process.env[GOOD_ENV];
  delete process.env[WRONG_ENV];
  await workers?.close();
  await rt?.close();
  await redis?.stop();
  await https?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function replies(releaseId: string): Promise<Extract<Outbound, { kind: 'reply' }>[]> {
  const jobs = await rt.announcer.queue.getJobs(
    ['waiting', 'completed', 'prioritized', 'delayed'],
    0,
    -1,
    true,
  );
  return jobs
    .map((j) => j.data as Outbound)
    .filter(
      (m): m is Extract<Outbound, { kind: 'reply' }> => m.kind === 'reply' && m.releaseId === releaseId,
    );
}

describe('a release of an app on a remote git server', () => {
  it('builds from the HTTPS repository with the token named in the config', async () => {
    const r = await rt.lifecycle.request(
      { app: 'payments', version: 'v2', environment: 'test', factors: [] },
      'U_ALICE',
    );
    const done = await waitForState(rt, r.releaseId as string, 'succeeded', 240_000);
    const record = await rt.versions.get('payments', 'v2');
    expect(record?.images.test?.image).toBe(`${registry.host}/${repositoryOf('payments')}:v2-test`);
    const said = await replies(done.id);
    expect(said.some((m) => m.text.startsWith('Built `'))).toBe(true);
    for (const m of said) expect(JSON.stringify(m)).not.toContain(token);
  });

  it('a wrong token fails the release at checkout within seconds, and no message holds it', async () => {
    const t0 = Date.now();
    const r = await rt.lifecycle.request(
      { app: 'ledger', version: 'v2', environment: 'test', factors: [] },
      'U_ALICE',
    );
    const failed = await waitForState(rt, r.releaseId as string, 'failed', 60_000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(failed.error).toContain(
      `failed at checkout: git: authentication failed for ${https.url('payments')} — check the token in $${WRONG_ENV}`,
    );
    expect(failed.error).not.toContain(wrong);
    await expect
      .poll(async () => (await replies(failed.id)).some((m) => m.text.startsWith('build failed: ')))
      .toBe(true);
    for (const m of await replies(failed.id)) expect(JSON.stringify(m)).not.toContain(wrong);
    // Nothing after the build ran.
    expect(Object.keys(await RecordingRunners.counts(rt.store, failed.id, 'rg'))).toEqual([]);
  });
});
