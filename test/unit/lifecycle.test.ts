// The release lifecycle as people meet it, on in-memory ports: no Redis, no
// queue, no chat. Each test reads like a conversation in the releases channel.
import { beforeEach, describe, expect, it } from 'vitest';
import type { FerryConfig } from '../../src/domain/config.ts';
import { Lifecycle } from '../../src/domain/lifecycle.ts';
import { mayApprove } from '../../src/domain/policy.ts';
import { exampleConfig } from '../support/config.ts';
import {
  MemoryReleases,
  MemoryVersions,
  RecordingAnnouncer,
  RecordingScheduler,
} from '../support/memory-ports.ts';

/** A Wednesday, 10:00 UTC: inside any working-hours release window. */
const NOW = Date.UTC(2026, 11, 2, 10, 0, 0);

let config: FerryConfig;
let releases: MemoryReleases;
let versions: MemoryVersions;
let scheduler: RecordingScheduler;
let announcer: RecordingAnnouncer;
let lifecycle: Lifecycle;

beforeEach(() => {
  config = exampleConfig();
  releases = new MemoryReleases();
  versions = new MemoryVersions();
  scheduler = new RecordingScheduler();
  announcer = new RecordingAnnouncer();
  lifecycle = new Lifecycle({
    config: () => config,
    releases,
    versions,
    scheduler,
    announcer,
    now: () => NOW,
  });
});

const toProd = (version: string) => ({ app: 'payments', version, environment: 'prod', factors: [] });

async function requested(version: string, by = 'U_ALICE'): Promise<string> {
  versions.passed('payments', version, 'test');
  const reply = await lifecycle.request(toProd(version), by, 'C_RELEASES');
  expect(reply.ok, reply.text).toBe(true);
  return reply.releaseId as string;
}

describe('Lifecycle on in-memory ports', () => {
  it('announces the card once the release has moved, so the first post already shows the Approve button', async () => {
    const statesAtCard: string[] = [];
    const announce = announcer.announce.bind(announcer);
    announcer.announce = async (m) => {
      if (m.kind === 'card') statesAtCard.push((await releases.get(m.releaseId))?.state ?? 'missing');
      await announce(m);
    };
    await requested('v2');
    // The card is queued ahead of everything and posted in milliseconds: it must not catch "requested".
    expect(statesAtCard[0]).toBe('awaiting-approval');
    expect(statesAtCard).not.toContain('requested');
  });

  it('a prod release waits for an approver (pulling ahead meanwhile), then its flow starts once', async () => {
    const id = await requested('v2');
    expect((await releases.get(id))?.state).toBe('awaiting-approval');
    expect(scheduler.calls.map((c) => c.call)).toEqual(['scheduleExpiry', 'schedulePrepare']);
    expect(announcer.sent[0]).toEqual({ kind: 'card', releaseId: id });

    const approved = await lifecycle.approve(id, 'U_BOB');
    expect(approved.ok, approved.text).toBe(true);
    expect((await releases.get(id))?.state).toBe('approved');
    expect(scheduler.calls.filter((c) => c.call === 'startFlow').map((c) => c.id)).toEqual([id]);
    // The thread names the approver by id, in the domain's neutral mention token.
    expect(announcer.replies(id).some((t) => t.includes('<@U_BOB>'))).toBe(true);
  });

  it('the requester cannot approve their own prod release, and the refusal is typed', async () => {
    const id = await requested('v2');
    const release = (await releases.get(id)) as NonNullable<Awaited<ReturnType<typeof releases.get>>>;
    // alice is not an approver at all; carol is, and asks for it herself.
    const decision = mayApprove(config, release, 'U_ALICE');
    expect(decision.ok).toBe(false);
    expect(decision.ok ? undefined : decision.refusal).toBe('not-an-approver');

    const own = await requested('v3', 'U_CAROL');
    const ownRelease = (await releases.get(own)) as typeof release;
    const self = mayApprove(config, ownRelease, 'U_CAROL');
    expect(self.ok ? undefined : self.refusal).toBe('own-release');
    const reply = await lifecycle.approve(own, 'U_CAROL');
    expect(reply.ok).toBe(false);
    expect((await releases.get(own))?.state).not.toBe('approved');
  });

  it('a second release of the same app and environment waits in line and starts when the first ends', async () => {
    const first = await requested('v2');
    const second = await requested('v3');
    expect((await releases.get(second))?.state).toBe('queued');
    expect(await releases.waiting('payments', 'prod')).toEqual([second]);

    const rejected = await lifecycle.reject(first, 'U_BOB', 'not <today>');
    expect(rejected.ok, rejected.text).toBe(true);
    // The lock went to the next in line, which now waits for its own approval.
    expect(await releases.lockHolder('payments', 'prod')).toBe(second);
    expect((await releases.get(second))?.state).toBe('awaiting-approval');
    // The person's reason reaches the thread escaped: it cannot ping or link.
    expect(announcer.replies(first).join('\n')).toContain('not &lt;today&gt;');
  });

  it('a version that has not passed test is refused for prod, and nothing is stored or queued', async () => {
    const reply = await lifecycle.request(toProd('v9'), 'U_ALICE', 'C_RELEASES');
    expect(reply.ok).toBe(false);
    expect(reply.text).toContain('has not succeeded in test');
    expect(releases.releases.size).toBe(0);
    expect(scheduler.calls).toEqual([]);
    expect(announcer.sent).toEqual([]);
  });

  it('abort of a deploying release asks the workers to roll it back, naming who aborted', async () => {
    const id = await requested('v2');
    await lifecycle.approve(id, 'U_BOB');
    await lifecycle.report(id, { type: 'step', to: 'building' });
    await lifecycle.report(id, { type: 'step', to: 'syncing' });
    await lifecycle.report(id, { type: 'step', to: 'deploying' });
    await lifecycle.report(id, {
      type: 'batch',
      region: 'eu-west',
      index: 1,
      total: 3,
      pods: 1,
      replicas: 4,
    });
    const reply = await lifecycle.steer('abort', id, 'U_DAVE');
    expect(reply.ok, reply.text).toBe(true);
    const rollback = scheduler.calls.find((c) => c.call === 'startRollback');
    expect(rollback).toMatchObject({ id, detail: 'aborted by <@U_DAVE>' });
  });
});
