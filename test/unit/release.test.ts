import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countApprovals } from '../../src/domain/approvals.ts';
import { planRelease } from '../../src/domain/plan.ts';
import {
  hasEnded,
  type Release,
  type ReleaseEvent,
  type ReleaseState,
  STATES,
  TERMINAL,
  transition,
} from '../../src/domain/release.ts';
import { exampleConfig } from '../support/config.ts';

const planned = planRelease({ app: 'payments', version: 'v2', factors: [] }, exampleConfig());
if (!planned.ok) throw new Error('plan');
const base: Release = {
  id: 'r1',
  app: 'payments',
  version: 'v2',
  environment: 'prod',
  regions: ['eu-west', 'us-east'],
  factors: [],
  plan: planned.plan,
  requestedBy: 'U_ALICE',
  requestedAt: 0,
  state: 'requested',
  stateSince: 0,
  approvals: [],
  rev: 1,
};
const at = (state: ReleaseState, patch: Partial<Release> = {}): Release => ({ ...base, state, ...patch });

const events: ReleaseEvent[] = [
  { type: 'enqueue', position: 1 },
  { type: 'start' },
  { type: 'approve', by: 'U_BOB', groups: ['approvers'] },
  { type: 'reject', by: 'U_BOB', reason: 'no' },
  { type: 'expire' },
  { type: 'step', to: 'building' },
  { type: 'step', to: 'syncing' },
  { type: 'step', to: 'deploying' },
  { type: 'step', to: 'verifying' },
  { type: 'batch', region: 'eu-west', index: 1, total: 3, pods: 1, replicas: 4 },
  { type: 'succeed' },
  { type: 'fail', reason: 'x' },
  { type: 'pause', by: 'U_DAVE' },
  { type: 'resume', by: 'U_DAVE' },
  { type: 'promote', by: 'U_DAVE' },
  { type: 'abort', by: 'U_DAVE' },
  { type: 'rollback-start', by: 'U_DAVE', reason: 'x' },
  { type: 'rolled-back' },
];

describe('the release state machine', () => {
  it('walks the happy path of the design', () => {
    let r = at('requested');
    const path: ReleaseState[] = [];
    for (const e of [
      { type: 'start' },
      { type: 'approve', by: 'U_BOB', groups: ['approvers'] },
      { type: 'step', to: 'building' },
      { type: 'step', to: 'syncing' },
      { type: 'step', to: 'deploying' },
      { type: 'batch', region: 'eu-west', index: 1, total: 1, pods: 4, replicas: 4 },
      { type: 'step', to: 'verifying' },
      { type: 'succeed' },
    ] as ReleaseEvent[]) {
      const t = transition(r, e, 1);
      if (!t.ok) throw new Error(t.reason);
      r = t.release;
      path.push(r.state);
    }
    expect(path).toEqual([
      'awaiting-approval',
      'approved',
      'building',
      'syncing',
      'deploying',
      'deploying',
      'verifying',
      'succeeded',
    ]);
  });

  it('refuses illegal transitions with a reason, and never throws', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STATES),
        fc.constantFrom(...events),
        fc.boolean(),
        (state, event, deployed) => {
          const r = at(state, deployed ? { progress: { 'eu-west': 1 } } : {});
          const t = transition(r, event, 5);
          if (!t.ok) {
            expect(t.reason).toMatch(/^r1 /);
            return;
          }
          expect(TERMINAL.has(state)).toBe(false);
          expect(t.audit).toMatchObject({ releaseId: 'r1', from: state, to: t.release.state, at: 5 });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('ends nothing-deployed failures but keeps a failed rollout for a person', () => {
    expect(hasEnded(at('failed'))).toBe(true);
    expect(transition(at('failed'), { type: 'rollback-start', by: 'U_DAVE', reason: 'x' }, 1)).toMatchObject({
      ok: false,
    });
    const midRollout = at('failed', { progress: { 'eu-west': 2 } });
    expect(hasEnded(midRollout)).toBe(false);
    expect(transition(midRollout, { type: 'rollback-start', by: 'U_DAVE', reason: 'x' }, 1)).toMatchObject({
      ok: true,
      release: { state: 'rolling-back' },
    });
  });

  it('aborting a failed release that changed a region rolls it back before freeing the lock', () => {
    const midRollout = at('failed', { progress: { 'eu-west': 2 } });
    expect(transition(midRollout, { type: 'abort', by: 'U_DAVE' }, 1)).toMatchObject({
      ok: true,
      release: { state: 'rolling-back' },
    });
    // A release that has not touched anything simply ends.
    expect(transition(at('paused'), { type: 'abort', by: 'U_DAVE' }, 1)).toMatchObject({
      ok: true,
      release: { state: 'aborted' },
    });
  });

  it('pauses from a working state and resumes to it', () => {
    const paused = transition(at('syncing'), { type: 'pause', by: 'U_DAVE' }, 1);
    if (!paused.ok) throw new Error(paused.reason);
    expect(paused.release).toMatchObject({ state: 'paused', pausedFrom: 'syncing' });
    const resumed = transition(paused.release, { type: 'resume', by: 'U_DAVE' }, 2);
    expect(resumed).toMatchObject({ ok: true, release: { state: 'syncing' } });
    expect(transition(at('awaiting-approval'), { type: 'pause', by: 'U_DAVE' }, 1)).toMatchObject({
      ok: false,
    });
  });

  it('does not audit a retried step or a re-applied batch twice', () => {
    expect(transition(at('building'), { type: 'step', to: 'building' }, 1)).toMatchObject({ ok: false });
    const r = at('deploying', { batch: { region: 'eu-west', index: 2, total: 3, pods: 2, replicas: 4 } });
    expect(
      transition(r, { type: 'batch', region: 'eu-west', index: 2, total: 3, pods: 2, replicas: 4 }, 1),
    ).toMatchObject({ ok: false });
    expect(
      transition(r, { type: 'batch', region: 'eu-west', index: 3, total: 3, pods: 4, replicas: 4 }, 1),
    ).toMatchObject({ ok: true });
  });
});

describe('approvals in the state machine', () => {
  const emergency = planRelease({ app: 'payments', version: 'v2', factors: ['emergency'] }, exampleConfig());
  if (!emergency.ok) throw new Error('plan');
  const waiting = (plan = base.plan): Release => ({ ...base, plan, state: 'awaiting-approval' });
  const approve = (r: Release, by: string, groups: string[]) =>
    transition(r, { type: 'approve', by, groups }, 7);

  it('counts a person once, never the requester, never someone outside the groups', () => {
    const r = waiting(emergency.plan);
    const once = approve(r, 'U_CAROL', ['approvers', 'emergency-approvers']);
    if (!once.ok) throw new Error(once.reason);
    expect(once.release.state).toBe('awaiting-approval');
    expect(approve(once.release, 'U_CAROL', ['approvers', 'emergency-approvers'])).toEqual({
      ok: false,
      reason: 'r1: you already approved it.',
    });
    expect(approve(r, 'U_ALICE', ['approvers'])).toMatchObject({ ok: false, reason: /you requested it/ });
    expect(approve(r, 'U_DAVE', ['payments-devs'])).toMatchObject({
      ok: false,
      reason: /you are in none of those groups/,
    });
  });

  it('moves an approval to the requirement only it can fill, so one person in two groups does not block', () => {
    // carol (approvers + emergency) first, then bob (approvers only): carol counts for emergency.
    const first = approve(waiting(emergency.plan), 'U_CAROL', ['approvers', 'emergency-approvers']);
    if (!first.ok) throw new Error(first.reason);
    const second = approve(first.release, 'U_BOB', ['approvers']);
    if (!second.ok) throw new Error(second.reason);
    expect(second.release.state).toBe('approved');
    expect(countApprovals(emergency.plan, second.release.approvals).counted).toEqual([
      ['U_BOB'],
      ['U_CAROL'],
    ]);
  });

  it('refuses an approval that cannot count toward what is still missing', () => {
    // bob fills the environment requirement; another approver-only person would add nothing.
    const first = approve(waiting(emergency.plan), 'U_BOB', ['approvers']);
    if (!first.ok) throw new Error(first.reason);
    expect(approve(first.release, 'U_OTHER', ['approvers'])).toMatchObject({
      ok: false,
      reason: /would not count; it still needs 1 approval from emergency-approvers/,
    });
  });
});
