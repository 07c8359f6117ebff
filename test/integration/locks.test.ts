// The one-release-per-app-and-environment lock on a real Redis: who holds it
// and since when shows in `/release status`; a lock whose holder ended or
// vanished is taken over; a release that failed after changing a region keeps
// it until a person aborts (and so rolls back) or rolls it back.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { handleText } from '../../commands/handle.ts';
import type { CommandServices } from '../../commands/handler.ts';
import { type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

const ALICE = 'U_ALICE'; // payments developer
const BOB = 'U_BOB'; // approver
const DAVE = 'U_DAVE'; // payments developer

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

function services(): CommandServices {
  const rt = h.rt;
  return {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    announcer: rt.announcer,
  };
}

async function status(userId = DAVE): Promise<string> {
  const reply = await handleText('status payments', { userId, channel: 'C_RELEASES' }, services());
  expect(reply.ok).toBe(true);
  return reply.text;
}

describe('a stale lock', () => {
  it('is taken over from a holder that vanished', async () => {
    h = harness(redis.url);
    await h.rt.versions.recordPassed('payments', 'v1', 'test');
    await h.rt.store.set(h.rt.releases.lockKey('payments', 'prod'), 'r999');
    expect(await status()).toContain('held by r999, which no longer exists');
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, ALICE);
    expect(r.text).toContain('waits for 1 approval');
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBe(r.releaseId);
    expect((await h.rt.releases.lockInfo('payments', 'prod'))?.since).toBeGreaterThan(0);
  });

  it('is taken over from a holder that failed before changing anything, when its hand-over was lost', async () => {
    h = harness(redis.url);
    await h.rt.versions.recordPassed('payments', 'v1', 'test');
    const first = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, ALICE);
    const id = first.releaseId as string;
    await h.rt.lifecycle.approve(id, BOB);
    // A build failure: nothing was deployed, so the release has ended...
    await h.rt.releases.apply(id, { type: 'fail', reason: 'build: no space left' }, 'ferry');
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBeNull();
    // ...but a crash left the lock naming it.
    await h.rt.store.set(h.rt.releases.lockKey('payments', 'prod'), id);
    expect(await status()).toContain(`held by ${id}, which has ended (failed)`);
    const next = await h.rt.lifecycle.request({ app: 'payments', version: 'v1', factors: [] }, DAVE);
    expect(next.text).toContain('waits for 1 approval');
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBe(next.releaseId);
  });
});

describe('a release that failed half-way', () => {
  it('keeps the lock, shows who holds it and since when, and frees it when aborted (rolling back first)', async () => {
    h = harness(redis.url);
    // degraded: a failing gate stops and waits for a person instead of rolling back.
    h.startWorkers({ failGate: { 'eu-west': 2 } });
    for (const v of ['v2', 'v3']) await h.rt.versions.recordPassed('payments', v, 'test');
    const before = Date.now();
    const r = await h.rt.lifecycle.request({ app: 'payments', version: 'v2', factors: ['degraded'] }, ALICE);
    const id = r.releaseId as string;
    await h.rt.lifecycle.approve(id, BOB);
    const failed = await waitForState(h.rt, id, 'failed');
    expect(failed.progress).toEqual({ 'eu-west': 1 });

    // It still holds payments → prod: the next release waits in line.
    const lock = await h.rt.releases.lockInfo('payments', 'prod');
    expect(lock?.holder).toBe(id);
    expect(lock?.since).toBeGreaterThanOrEqual(before);
    expect(lock?.since).toBeLessThanOrEqual(failed.stateSince);
    const next = await h.rt.lifecycle.request({ app: 'payments', version: 'v3', factors: [] }, DAVE);
    expect(next.text).toContain(`number 1 in line behind ${id}`);
    const text = await status();
    const since = new Date(lock?.since as number).toISOString().replace('T', ' ').slice(0, 16);
    expect(text).toContain(
      `• payments → prod: held by ${id} (failed, requested by <@${ALICE}>) since ${since}`,
    );
    expect(text).toContain(`\`/release abort ${id}\``);

    // Abort: it rolls back what it changed, and only then lets the next one in.
    const aborted = await handleText(`abort ${id}`, { userId: DAVE, channel: 'C_RELEASES' }, services());
    expect(aborted.ok, aborted.text).toBe(true);
    const end = await waitForState(h.rt, id, 'rolled-back');
    expect((await h.rt.releases.audit(id)).map((a) => a.to).slice(-2)).toEqual([
      'rolling-back',
      'rolled-back',
    ]);
    expect(end.error).toContain('eu-west batch 2/2');
    expect((await RecordingRunners.counts(h.rt.store, id, h.prefix))['rollback:eu-west']).toBe(1);
    expect(await h.rt.releases.lockHolder('payments', 'prod')).toBe(next.releaseId);
    await waitForState(h.rt, next.releaseId as string, 'awaiting-approval');
    expect(await status()).toContain(
      `held by ${next.releaseId} (awaiting-approval, requested by <@${DAVE}>)`,
    );
  });
});
