// The build step as a release runs it: real buildah and a real registry,
// through the worker and the lifecycle (sync and rollout recorded). A good
// build posts its progress, a snippet and the whole log; a failing build fails
// the release with the failing step and its last lines, and pushes nothing.
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
import { fastConfig, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

let registry: TestRegistry;
let redis: TestRedis;
let rt: Runtime;
let workers: RunningWorkers;

beforeAll(async () => {
  registry = await startRegistry();
  redis = await TestRedis.start();
  const work = await tempDir('release-build');
  const base = `${registry.host}/fixture/base:1`;
  await buildBusyboxBase({ image: base, marker: 'base 1', storeDir: join(work, 'fixture-store') });
  const repo = await makeAppRepo(join(work, 'repo'), base);
  const config: FerryConfig = fastConfig((c) => {
    c.primaryRegistry = { url: registry.url, insecure: true, pullThrough: false };
    (c.apps.payments as FerryConfig['apps'][string]).repo = repo.dir;
    // The fixture base plays the stack: a build resolves the app's stack to a digest first.
    (c.stacks.shell as FerryConfig['stacks'][string]).image = base;
    c.build = { ...c.build, cacheDir: join(work, 'cache') };
  });
  rt = createRuntime({ config, redisUrl: redis.url, prefix: 'rb', name: 'release-build' });
  const recorded = new RecordingRunners(rt.store, { stepMs: 10, replicas: 2 }, 'rb');
  const runners = {
    build: buildRunner(config),
    sync: recorded.sync.bind(recorded),
    rollout: recorded.rollout.bind(recorded),
    verify: recorded.verify.bind(recorded),
  };
  workers = startWorkers(jobContext(rt, runners, 100), {
    connection: rt.queue,
    prefix: 'rb',
    log: logger('release-build').child({}, { level: 'warn' }),
  });
});

afterAll(async () => {
  await workers?.close();
  await rt?.close();
  await redis?.stop();
  await registry?.stop();
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

describe('the build step of a release', () => {
  it('builds the version for the environment, records the digest and posts the log', async () => {
    const r = await rt.lifecycle.request(
      { app: 'payments', version: 'v1', environment: 'test', factors: [] },
      'U_ALICE',
    );
    const done = await waitForState(rt, r.releaseId as string, 'succeeded', 240_000);
    const record = await rt.versions.get('payments', 'v1');
    expect(record?.images.test?.image).toBe(`${registry.host}/${repositoryOf('payments')}:v1-test`);
    expect(record?.images.test?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(record?.commit).toMatch(/^[0-9a-f]{40}$/);
    const built = (await replies(done.id)).find((m) => m.text.startsWith('Built `'));
    expect(built?.text).toContain(record?.images.test?.digest);
    expect(built?.file?.name).toBe('build-payments-v1-test.log');
    expect(built?.file?.text).toMatch(/STEP \d+\/\d+: FROM/);
    expect(built?.snippet?.split('\n').length).toBeLessThanOrEqual(12);
  });

  it('fails the release with the failing step and its last lines, and pushes nothing', async () => {
    const r = await rt.lifecycle.request(
      { app: 'payments', version: 'broken-run', environment: 'test', factors: [] },
      'U_ALICE',
    );
    const failed = await waitForState(rt, r.releaseId as string, 'failed', 240_000);
    expect(failed.error).toMatch(
      /^build: build of payments broken-run for test failed at STEP \d+\/\d+: RUN echo "compiling/,
    );
    const said = await replies(failed.id);
    const report = said.find((m) => m.text.startsWith('Build failed at STEP'));
    expect(report?.snippet).toContain('error: missing symbol');
    expect(report?.file?.text).toContain('error: missing symbol');
    // The build printed a credential: the snippet and the whole log posted to the thread show it redacted.
    for (const text of [report?.snippet, report?.file?.text]) {
      expect(text).toContain('https://ci:[REDACTED]@deps.example.com/repo');
      expect(text).not.toContain('Bu1ld-S3cret');
    }
    expect(JSON.stringify(said)).not.toContain('Bu1ld-S3cret');
    // The failure is stored first and announced after: wait for the message.
    await expect
      .poll(async () =>
        (await replies(failed.id)).some((m) =>
          m.text.startsWith('build failed: build of payments broken-run'),
        ),
      )
      .toBe(true);
    const res = await fetch(`${registry.url}/v2/${repositoryOf('payments')}/manifests/broken-run-test`);
    expect(res.status).toBe(404);
    // Nothing after the build ran.
    expect(Object.keys(await RecordingRunners.counts(rt.store, failed.id, 'rb'))).toEqual([]);
  });

  it('refuses an unknown ref with the tags it knows', async () => {
    const r = await rt.lifecycle.request(
      { app: 'payments', version: 'v99', environment: 'test', factors: [] },
      'U_ALICE',
    );
    const failed = await waitForState(rt, r.releaseId as string, 'failed', 60_000);
    expect(failed.error).toContain('v99');
    expect(failed.error).toContain('v1');
  });
});
