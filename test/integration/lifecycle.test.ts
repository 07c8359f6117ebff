import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';
import { fastConfig, type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

const ALICE = 'U_ALICE'; // payments developer
const BOB = 'U_BOB'; // approver
const CAROL = 'U_CAROL'; // approver, platform, emergency approver
const DAVE = 'U_DAVE'; // payments developer
const ERIN = 'U_ERIN'; // checkout developer
const FRANK = 'U_FRANK'; // platform, emergency approver

let redis: TestRedis;
let h: Harness;

beforeAll(async () => {
  redis = await TestRedis.start();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await h?.close();
});

async function passTest(version: string): Promise<string> {
  const r = await h.rt.lifecycle.request(
    { app: 'payments', version, environment: 'test', factors: [] },
    ALICE,
  );
  expect(r.ok, r.text).toBe(true);
  await waitForState(h.rt, r.releaseId as string, 'succeeded');
  return r.releaseId as string;
}

describe('a release through its lifecycle', () => {
  it('runs a test release with no approval to the end, every step once, every transition audited', async () => {
    h = harness(redis.url);
    h.startWorkers();
    const reply = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v1', environment: 'test', factors: [] },
      ALICE,
    );
    expect(reply).toMatchObject({ ok: true, releaseId: 'r1' });
    const done = await waitForState(h.rt, 'r1', 'succeeded');
    expect(done.progress).toEqual({ 'eu-west': 1 });
    expect(await RecordingRunners.counts(h.rt.store, 'r1', h.prefix)).toEqual({
      build: 1,
      'sync:eu-west': 1,
      // Nothing pulls ahead for a release that never waited; its one batch pre-warms its 4 pods' nodes.
      'prewarm:eu-west:4': 1,
      'deploy:eu-west:batch1': 1,
      'verify:eu-west': 1,
    });
    const audit = await h.rt.releases.audit('r1');
    expect(audit.map((a) => a.to)).toEqual([
      'requested',
      'approved',
      'building',
      'syncing',
      'deploying',
      'deploying',
      'verifying',
      'succeeded',
    ]);
    expect(audit[0]).toMatchObject({ actor: ALICE, from: null, event: 'request' });
    expect(audit.every((a) => a.at > 0 && typeof a.actor === 'string')).toBe(true);
    const global = await h.rt.releases.auditAll();
    expect(global.filter((a) => a.releaseId === 'r1')).toEqual(audit);
    expect((await h.rt.versions.get('payments', 'v1'))?.passed.test).toBeGreaterThan(0);
    // The lock is free again.
    expect(await h.rt.releases.lockHolder('payments', 'test')).toBeNull();

    // `ferry history payments` lists every transition with actor and time.
    const out: string[] = [];
    Object.assign(process.env, { REDIS_URL: redis.url, FERRY_PREFIX: h.prefix });
    try {
      const code = await main(['history', 'payments', '--config', EXAMPLE_CONFIG_PATH], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      });
      expect(code).toBe(0);
    } finally {
      delete process.env.FERRY_PREFIX;
    }
    const lines = out.join('\n').split('\n');
    expect(lines[0]).toBe('*r1 payments v1 → test: succeeded*');
    expect(lines.slice(1)).toHaveLength(8);
    expect(lines[1]).toMatch(
      /^\d{4}-\d\d-\d\d \d\d:\d\d {2}r1 {2}— → requested {2}by @U_ALICE — payments v1 → test$/,
    );
    expect(lines[8]).toMatch(/r1 {2}verifying → succeeded {2}by Ferry$/);
  });

  it('keeps prod for versions that passed test, and needs an approver who is not the requester', async () => {
    h = harness(redis.url);
    h.startWorkers();
    const early = await h.rt.lifecycle.request({ app: 'payments', version: 'v2', factors: [] }, ALICE);
    expect(early.ok).toBe(false);
    expect(early.text).toContain('has not succeeded in test yet');
    expect(early.text).toContain('/release payments v2 to test');
    expect(await h.rt.releases.active()).toEqual([]);

    await passTest('v2');
    // carol is both a requester (platform) and an approver: prod still wants someone else.
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v2', factors: [] }, CAROL);
    expect(r.ok).toBe(true);
    const id = r.releaseId as string;
    await waitForState(h.rt, id, 'awaiting-approval');
    expect((await h.rt.lifecycle.approve(id, CAROL)).text).toBe(
      `You requested ${id}, and prod needs someone else to approve it.`,
    );
    expect((await h.rt.lifecycle.approve(id, ALICE)).text).toContain('come from group approvers');
    expect((await h.rt.lifecycle.approve(id, DAVE)).text).toContain('come from group approvers');
    expect((await h.rt.releases.get(id))?.state).toBe('awaiting-approval');
    const ok = await h.rt.lifecycle.approve(id, BOB);
    expect(ok).toMatchObject({ ok: true });
    const done = await waitForState(h.rt, id, 'succeeded');
    expect(done.approvals.map((a) => a.by)).toEqual([BOB]);
    expect(done.progress).toEqual({ 'eu-west': 3, 'us-east': 3 });
    const counts = await RecordingRunners.counts(h.rt.store, id, h.prefix);
    // One build, whether the pull ahead or the flow got to it first; the sync may run twice (ahead and
    // in the flow), with the same outcome; every batch once.
    const steps = Object.entries(counts).filter(([k]) => !k.startsWith('sync:') && !k.startsWith('prepull:'));
    expect(
      steps.every(([, n]) => n === 1),
      JSON.stringify(counts),
    ).toBe(true);
    expect(counts.build).toBe(1);
    expect(await RecordingRunners.divergent(h.rt.store, id, h.prefix)).toEqual({});
    expect(Object.keys(counts).filter((k) => k.startsWith('deploy:'))).toHaveLength(6);
    expect(Object.keys(counts).filter((k) => k.startsWith('verify:'))).toHaveLength(2);
  });

  it('says nothing twice in the thread when the pull-ahead built and synced before the flow did', async () => {
    h = harness(redis.url);
    h.startWorkers();
    await passTest('v10');
    const replies = async (id: string) =>
      (await h.outbound()).flatMap((m) => (m.kind === 'reply' && m.releaseId === id ? [m.text] : []));
    // The first prod release builds ahead; the second finds the version built for prod.
    for (const built of ['Built (recorded)', 'Image already built']) {
      const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v10', factors: [] }, ALICE);
      expect(r.ok, r.text).toBe(true);
      const id = r.releaseId as string;
      await waitForState(h.rt, id, 'awaiting-approval');
      const until = Date.now() + 20_000;
      while (Date.now() < until && !(await replies(id)).some((t) => t.startsWith('While waiting'))) {
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(await replies(id)).toContainEqual(expect.stringMatching(/^While waiting: image built, synced/));
      expect(await h.rt.lifecycle.approve(id, BOB)).toMatchObject({ ok: true });
      await waitForState(h.rt, id, 'succeeded');
      const said = await replies(id);
      expect(said.filter((t, i) => said.indexOf(t) !== i)).toEqual([]);
      expect(said.filter((t) => t.startsWith(built))).toHaveLength(1);
      expect(said.filter((t) => t.startsWith('Synced'))).toHaveLength(1);
    }
  });

  it('pulls ahead while a prod release waits for approval, and a reject stops the pull at once', async () => {
    h = harness(redis.url);
    // A pull slow enough that only a cancel ends it within the test's wait.
    h.startWorkers({ prepullMs: 60_000 });
    await passTest('v8');
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v8', factors: [] }, ALICE);
    expect(r.ok, r.text).toBe(true);
    const id = r.releaseId as string;
    await waitForState(h.rt, id, 'awaiting-approval');
    // Built and synced ahead, and the first region's nodes pulling, all before anyone approved.
    const until = Date.now() + 20_000;
    let counts: Record<string, number> = {};
    while (Date.now() < until && !Object.keys(counts).some((k) => k.startsWith('prepull:eu-west'))) {
      counts = await RecordingRunners.counts(h.rt.store, id, h.prefix);
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(counts).toMatchObject({ build: 1, 'sync:eu-west': 1, 'sync:us-east': 1, 'prepull:eu-west:4': 1 });
    expect((await h.rt.releases.get(id))?.state).toBe('awaiting-approval');
    expect(await h.rt.versions.get('payments', 'v8')).toMatchObject({ images: { prod: expect.any(Object) } });

    const rejectedAt = Date.now();
    expect(await h.rt.lifecycle.reject(id, BOB, 'not today')).toMatchObject({ ok: true });
    let said: string | undefined;
    while (!said && Date.now() - rejectedAt < 15_000) {
      said = (await h.outbound()).flatMap((m) =>
        m.kind === 'reply' && m.releaseId === id && m.text.startsWith('Pre-pull stopped') ? [m.text] : [],
      )[0];
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(said).toBe('Pre-pull stopped: the release is rejected.');
    // Stopped long before the 60 s pull would have ended, and the next region was never started.
    expect(Date.now() - rejectedAt).toBeLessThan(15_000);
    counts = await RecordingRunners.counts(h.rt.store, id, h.prefix);
    expect(Object.keys(counts).filter((k) => k.startsWith('prepull:'))).toEqual(['prepull:eu-west:4']);
  });

  it('counts N-of-M approvals and refuses a second approval by the same person', async () => {
    h = harness(redis.url);
    await h.rt.versions.recordPassed('payments', 'v3', 'test');
    const r = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v3', factors: ['freeze-exception'] },
      CAROL,
    );
    expect(r.ok, r.text).toBe(true);
    expect(r.text).toContain('waits for 1 approval from approvers and 1 from platform');
    const id = r.releaseId as string;
    // carol requested; bob is in both groups and counts once; frank of platform completes it.
    expect(await h.rt.lifecycle.approve(id, BOB)).toMatchObject({
      ok: true,
      text: `You approved ${id}; it still needs 1 approval from platform.`,
    });
    expect((await h.rt.lifecycle.approve(id, BOB)).text).toContain('already approved');
    expect((await h.rt.releases.get(id))?.state).toBe('awaiting-approval');
    expect(await h.rt.lifecycle.approve(id, FRANK)).toMatchObject({
      ok: true,
      text: expect.stringContaining('starting'),
    });
    const done = await h.rt.releases.get(id);
    expect(done?.state).toBe('approved');
    expect(done?.approvals.map((a) => a.by)).toEqual([BOB, FRANK]);
    // ERIN is not in platform and may not even ask for this factor.
    const refused = await h.rt.lifecycle.request(
      { app: 'checkout', version: 'v3', factors: ['freeze-exception'] },
      ERIN,
    );
    expect(refused).toMatchObject({
      ok: false,
      text: 'Only members of platform may release with "freeze-exception".',
    });
  });

  it('rejects with a reason, and expires an approval nobody gave in time', async () => {
    h = harness(
      redis.url,
      fastConfig((c) => {
        (c.environments.prod as { plan: { approvals?: object } }).plan.approvals = {
          required: 1,
          group: 'approvers',
          expiresAfter: '1s',
        };
      }),
    );
    h.startWorkers();
    await h.rt.versions.recordPassed('payments', 'v4', 'test');
    await h.rt.versions.recordPassed('ledger', 'v4', 'test');
    const a = await h.rt.lifecycle.request({ app: 'payments', version: 'v4', factors: [] }, ALICE);
    expect((await h.rt.lifecycle.reject(a.releaseId as string, ERIN, 'no')).ok).toBe(false);
    expect(
      await h.rt.lifecycle.reject(a.releaseId as string, BOB, 'needs the migration first'),
    ).toMatchObject({ ok: true });
    const rejected = await h.rt.releases.get(a.releaseId as string);
    expect(rejected).toMatchObject({
      state: 'rejected',
      rejection: { by: BOB, reason: 'needs the migration first' },
    });
    const b = await h.rt.lifecycle.request({ app: 'ledger', version: 'v4', factors: [] }, ALICE);
    const expired = await waitForState(h.rt, b.releaseId as string, 'expired', 10_000);
    expect((await h.rt.releases.audit(expired.id)).at(-1)).toMatchObject({
      actor: 'ferry',
      event: 'expire',
      to: 'expired',
    });
    expect((await h.rt.lifecycle.approve(expired.id, BOB)).text).toContain('not waiting for approval');
  });
});

describe('one release per app and environment', () => {
  it('lines up a second release, lets emergency go first, and starts each when the lock frees', async () => {
    h = harness(redis.url);
    for (const v of ['v5', 'v6', 'v7']) await h.rt.versions.recordPassed('payments', v, 'test');
    const first = await h.rt.lifecycle.request({ app: 'payments', version: 'v5', factors: [] }, ALICE);
    const second = await h.rt.lifecycle.request({ app: 'payments', version: 'v6', factors: [] }, DAVE);
    expect(second.text).toContain(`number 1 in line behind ${first.releaseId}`);
    const urgent = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v7', factors: ['emergency'] },
      DAVE,
    );
    expect(urgent.text).toContain('number 1 in line');
    expect(await h.rt.releases.waiting('payments', 'prod')).toEqual([urgent.releaseId, second.releaseId]);
    // A different environment is not blocked.
    const other = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v5', environment: 'test', factors: [] },
      ALICE,
    );
    expect(other.text).toContain('is starting');

    await h.rt.lifecycle.reject(first.releaseId as string, BOB, 'wrong version');
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBe(urgent.releaseId);
    await waitForState(h.rt, urgent.releaseId as string, 'awaiting-approval');
    expect((await h.rt.releases.get(second.releaseId as string))?.state).toBe('queued');
    await h.rt.lifecycle.reject(urgent.releaseId as string, CAROL, 'not needed');
    await waitForState(h.rt, second.releaseId as string, 'awaiting-approval');
  });

  it('refuses instead of queueing when the plan says so', async () => {
    h = harness(
      redis.url,
      fastConfig((c) => {
        (c.environments.prod as { plan: object }).plan = { ...c.environments.prod?.plan, whenBusy: 'refuse' };
      }),
    );
    for (const v of ['v1', 'v2']) await h.rt.versions.recordPassed('payments', v, 'test');
    const first = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, ALICE);
    const second = await h.rt.lifecycle.request({ app: 'payments', version: 'v2', factors: [] }, ALICE);
    expect(second.ok).toBe(false);
    expect(second.text).toContain(`already being released to prod: ${first.releaseId}`);
  });

  it('recovers a lock left by a release whose process died before handing it on', async () => {
    h = harness(redis.url);
    await h.rt.versions.recordPassed('payments', 'v1', 'test');
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, ALICE);
    // Simulate the crash: the release ended but the lock still names it.
    await h.rt.releases.apply(r.releaseId as string, { type: 'reject', by: BOB, reason: 'x' });
    await h.rt.store.set(h.rt.releases.lockKey('payments', 'prod'), r.releaseId as string);
    const next = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, ALICE);
    expect(next.text).toContain('waits for 1 approval');
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBe(next.releaseId);
  });
});

describe('people steering a release', () => {
  it('pauses and resumes only for permitted people, and aborts', async () => {
    h = harness(redis.url);
    h.startWorkers({ stepMs: 400 });
    const r = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v8', environment: 'test', factors: [] },
      ALICE,
    );
    const id = r.releaseId as string;
    await waitForState(h.rt, id, 'building');
    const refused = await h.rt.lifecycle.steer('pause', id, ERIN);
    expect(refused).toMatchObject({ ok: false });
    expect(refused.text).toContain('may not pause releases of payments in test');
    expect(refused.text).toContain('payments-devs');
    expect(await h.rt.lifecycle.steer('pause', id, DAVE)).toMatchObject({ ok: true });
    await new Promise((res) => setTimeout(res, 1500));
    const paused = await h.rt.releases.get(id);
    expect(paused?.state).toBe('paused');
    expect(await h.rt.lifecycle.steer('resume', id, DAVE)).toMatchObject({ ok: true });
    await waitForState(h.rt, id, 'succeeded');

    const r2 = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v9', environment: 'test', factors: [] },
      ALICE,
    );
    await waitForState(h.rt, r2.releaseId as string, ['syncing', 'deploying']);
    expect(await h.rt.lifecycle.steer('abort', r2.releaseId as string, BOB)).toMatchObject({ ok: true });
    await waitForState(h.rt, r2.releaseId as string, 'aborted');
    expect((await h.rt.lifecycle.steer('resume', r2.releaseId as string, BOB)).text).toContain(
      'already aborted',
    );
  });

  it('waits at a manual promotion point until a person promotes', async () => {
    h = harness(redis.url);
    h.startWorkers();
    await h.rt.versions.recordPassed('payments', 'v10', 'test');
    const r = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v10', factors: ['canary'], regions: ['eu-west'] },
      ALICE,
    );
    const id = r.releaseId as string;
    await h.rt.lifecycle.approve(id, BOB);
    const waiting = await waitForState(h.rt, id, 'deploying', 20_000, (x) => x.awaitingPromotion === true);
    expect(waiting.batch).toMatchObject({ region: 'eu-west', index: 1, total: 3, pods: 1, replicas: 4 });
    await new Promise((res) => setTimeout(res, 500));
    expect((await h.rt.releases.get(id))?.batch?.index).toBe(1);
    expect(await h.rt.lifecycle.steer('resume', id, DAVE)).toMatchObject({
      ok: true,
      text: expect.stringContaining('Promoted'),
    });
    const done = await waitForState(h.rt, id, 'succeeded');
    expect(done.batch).toMatchObject({ index: 3, pods: 4 });
  });

  it('fails a region whose gate fails, rolls it back and does not start the regions after it', async () => {
    h = harness(redis.url);
    h.startWorkers({ failGate: { 'eu-west': 2 } });
    await h.rt.versions.recordPassed('payments', 'v11', 'test');
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v11', factors: [] }, ALICE);
    await h.rt.lifecycle.approve(r.releaseId as string, BOB);
    const end = await waitForState(h.rt, r.releaseId as string, 'rolled-back');
    expect(end.error).toContain('eu-west batch 2/3');
    const counts = await RecordingRunners.counts(h.rt.store, r.releaseId as string, h.prefix);
    expect(counts['rollback:eu-west']).toBe(1);
    expect(Object.keys(counts).some((k) => k.includes('us-east') && k.startsWith('deploy'))).toBe(false);
    await expect
      .poll(async () => (await h.outbound()).flatMap((m) => (m.kind === 'reply' ? [m.text] : [])), {
        timeout: 5000,
      })
      .toContain('Not starting us-east: eu-west failed.');
  });
});

describe('the job flow', () => {
  it('creates nothing new when the same release is submitted twice', async () => {
    h = harness(redis.url);
    const r = await h.rt.lifecycle.request(
      { app: 'payments', version: 'v12', environment: 'test', factors: [] },
      ALICE,
    );
    const release = await h.rt.releases.get(r.releaseId as string);
    if (!release) throw new Error('missing');
    const { Queue } = await import('bullmq');
    const q = new Queue('ferry-release', { connection: h.rt.queue, prefix: h.prefix });
    const before = await q.getJobCounts();
    await h.rt.scheduler.startFlow(release);
    await h.rt.scheduler.startFlow(release);
    expect(await q.getJobCounts()).toEqual(before);
    const ids = (await q.getJobs(['waiting', 'waiting-children', 'prioritized'])).map((j) => j.id).sort();
    expect(ids).toEqual([
      `${release.id}.build`,
      `${release.id}.deploy-eu-west`,
      `${release.id}.finish`,
      `${release.id}.sync`,
    ]);
    await q.close();
  });
});
