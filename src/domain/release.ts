// A release and its lifecycle as a state machine you can read: every state,
// the events that leave it, and where they lead. The store applies these
// transitions atomically and keeps the audit trail; nothing here knows about
// Redis, Slack or Kubernetes.
import { countApprovals } from './approvals.ts';
import { approvalRequirements, describeRequirements, type Plan, totalRequired } from './plan.ts';

export const STATES = [
  'requested',
  'queued',
  'awaiting-approval',
  'approved',
  'building',
  'syncing',
  'deploying',
  'verifying',
  'succeeded',
  'rejected',
  'expired',
  'paused',
  'failed',
  'rolling-back',
  'rolled-back',
  'aborted',
] as const;
export type ReleaseState = (typeof STATES)[number];

/** States a release never leaves. */
export const TERMINAL: ReadonlySet<ReleaseState> = new Set([
  'succeeded',
  'rejected',
  'expired',
  'rolled-back',
  'aborted',
]);

/** States in which the release holds its app+environment lock. */
export function holdsLock(state: ReleaseState): boolean {
  return state !== 'requested' && state !== 'queued' && !TERMINAL.has(state);
}

/** Whether any region has been touched: a batch applied or a gate passed. */
export function deployedAnywhere(r: Pick<Release, 'batch' | 'progress'>): boolean {
  return r.batch !== undefined || Object.values(r.progress ?? {}).some((n) => n > 0);
}

/**
 * A release that will not move again. A release that failed before any
 * region changed (a build or sync failure) has nothing to roll back, so it
 * ends there and frees its app and environment; one that failed mid-rollout
 * keeps the lock and waits for a person to roll back or abort.
 */
export function hasEnded(r: Pick<Release, 'state' | 'batch' | 'progress'>): boolean {
  return TERMINAL.has(r.state) || (r.state === 'failed' && !deployedAnywhere(r));
}

/**
 * States in which pulling a release's image ahead still helps: every one
 * before the deploy step starts (STATES is in lifecycle order), and paused.
 * Ended, failed and rolling-back releases are outside it. The pre-pull job
 * and the node's pull relay both stop on this one rule.
 */
const PULL_AHEAD: ReadonlySet<ReleaseState> = new Set([
  ...STATES.slice(0, STATES.indexOf('deploying')),
  'paused',
]);

/** Why pulling this release's image ahead must stop, or undefined while it may go on. */
export function pullAheadStopReason(r: Pick<Release, 'state'> | undefined): string | undefined {
  if (!r) return 'the release is gone';
  return PULL_AHEAD.has(r.state) ? undefined : `the release is ${r.state}`;
}

/** The steps that run on workers; pausing stops between them, resuming goes back to them. */
export const WORK_STATES: ReadonlySet<ReleaseState> = new Set([
  'approved',
  'building',
  'syncing',
  'deploying',
  'verifying',
]);

export type ReleaseEvent =
  | { type: 'enqueue'; position: number }
  | { type: 'start' }
  /** `groups`: the plan's approval groups the approver is a member of, read from the config when approving. */
  | { type: 'approve'; by: string; groups: string[] }
  | { type: 'reject'; by: string; reason: string }
  | { type: 'expire' }
  | { type: 'step'; to: 'building' | 'syncing' | 'deploying' | 'verifying' }
  | { type: 'batch'; region: string; index: number; total: number; pods: number; replicas: number }
  | { type: 'succeed' }
  | { type: 'fail'; reason: string }
  | { type: 'pause'; by: string }
  | { type: 'resume'; by: string }
  | { type: 'promote'; by: string }
  | { type: 'abort'; by: string }
  | { type: 'rollback-start'; by: string; reason: string }
  | { type: 'rolled-back' };

export interface Approval {
  by: string;
  at: number;
  /** The plan's approval groups the approver was in when approving: what this approval can count toward. */
  groups?: string[];
}

export interface BatchProgress {
  region: string;
  index: number;
  total: number;
  pods: number;
  replicas: number;
}

export interface Release {
  id: string;
  app: string;
  version: string;
  environment: string;
  regions: string[];
  factors: string[];
  plan: Plan;
  requestedBy: string;
  requestedAt: number;
  state: ReleaseState;
  stateSince: number;
  /** The state to go back to on resume. */
  pausedFrom?: ReleaseState;
  approvals: Approval[];
  rejection?: { by: string; reason: string; at: number };
  batch?: BatchProgress;
  /** Batches whose gate passed, by region: where a restarted deploy job picks up. */
  progress?: Record<string, number>;
  /** A manual promotion point reached: the rollout waits for a person. */
  awaitingPromotion?: boolean;
  /** Why the rollout waits for a person when it is not a planned promotion point (analysis failed or inconclusive): Continue or Roll back. */
  hold?: string;
  error?: string;
  /** Where the request was typed, for replies that are not in the thread. */
  requestChannel?: string;
  /** Chat thread of the release, set once the card is posted. */
  thread?: { channel: string; ts: string };
  /** Optimistic-concurrency revision, bumped by every stored transition. */
  rev: number;
}

export interface AuditEntry {
  releaseId: string;
  at: number;
  actor: string;
  from: ReleaseState | null;
  to: ReleaseState;
  event: string;
  detail?: string;
}

export type Transition = { ok: true; release: Release; audit: AuditEntry } | { ok: false; reason: string };

const refuse = (reason: string): Transition => ({ ok: false, reason });

function describe(e: ReleaseEvent): string | undefined {
  switch (e.type) {
    case 'reject':
      return e.reason;
    case 'fail':
      return e.reason;
    case 'rollback-start':
      return e.reason;
    case 'batch':
      return `${e.region} batch ${e.index}/${e.total}: ${e.pods}/${e.replicas} pods`;
    case 'enqueue':
      return `position ${e.position}`;
    default:
      return undefined;
  }
}

function actorOf(e: ReleaseEvent): string | undefined {
  return 'by' in e ? e.by : undefined;
}

/**
 * The one place that decides whether an event may happen in a state, and
 * what the release looks like after it. Permissions are checked before this
 * (policy.ts); this checks only the lifecycle.
 */
export function transition(
  r: Release,
  e: ReleaseEvent,
  now: number,
  actor = actorOf(e) ?? 'ferry',
): Transition {
  const s = r.state;
  const to = (state: ReleaseState, patch: Partial<Release> = {}): Transition => {
    const release: Release = { ...r, ...patch, state, stateSince: state === s ? r.stateSince : now };
    const detail = describe(e);
    return {
      ok: true,
      release,
      audit: {
        releaseId: r.id,
        at: now,
        actor,
        from: s,
        to: state,
        event: e.type,
        ...(detail ? { detail } : {}),
      },
    };
  };
  if (hasEnded(r))
    return refuse(`${r.id} is already ${s}${s === 'failed' ? ' (nothing was deployed)' : ''}.`);
  switch (e.type) {
    case 'enqueue':
      return s === 'requested'
        ? to('queued')
        : refuse(`${r.id} is ${s}; only a new release can wait in line.`);
    case 'start':
      if (s !== 'requested' && s !== 'queued') return refuse(`${r.id} has already started (${s}).`);
      return totalRequired(r.plan) === 0 ? to('approved') : to('awaiting-approval');
    case 'approve': {
      // Checked here, on the release as stored, so that retries and
      // concurrent clicks can never count one person twice.
      if (s !== 'awaiting-approval') return refuse(`${r.id} is not waiting for approval (it is ${s}).`);
      if (e.by === r.requestedBy && !r.plan.approvals.allowSelfApproval.value)
        return refuse(`${r.id}: you requested it, and ${r.environment} needs someone else to approve it.`);
      if (r.approvals.some((a) => a.by === e.by)) return refuse(`${r.id}: you already approved it.`);
      const wanted = new Set(
        approvalRequirements(r.plan)
          .filter((q) => q.required.value > 0)
          .map((q) => q.group.value),
      );
      const groups = e.groups.filter((g) => wanted.has(g));
      const before = countApprovals(r.plan, r.approvals);
      const approvals = [...r.approvals, { by: e.by, at: now, groups }];
      const after = countApprovals(r.plan, approvals);
      if (after.total === before.total) {
        const still = describeRequirements(
          before.missing.map((m) => ({
            ...m.requirement,
            required: { ...m.requirement.required, value: m.count },
          })),
        );
        return refuse(
          groups.length === 0
            ? `${r.id}: approvals come from ${describeRequirements(approvalRequirements(r.plan))}; you are in none of those groups.`
            : `${r.id}: your approval would not count; it still needs ${still}, from people other than those who approved.`,
        );
      }
      return after.missing.length === 0
        ? to('approved', { approvals })
        : to('awaiting-approval', { approvals });
    }
    case 'reject':
      if (s !== 'awaiting-approval' && s !== 'queued')
        return refuse(`${r.id} is ${s}; only a release waiting for approval can be rejected.`);
      return to('rejected', { rejection: { by: e.by, reason: e.reason, at: now } });
    case 'expire':
      return s === 'awaiting-approval'
        ? to('expired')
        : refuse(`${r.id} is ${s}; only a release waiting for approval expires.`);
    case 'step': {
      const order: ReleaseState[] = ['approved', 'building', 'syncing', 'deploying', 'verifying'];
      const from = order.indexOf(s);
      const next = order.indexOf(e.to);
      if (from < 0) return refuse(`${r.id} is ${s}; it cannot move to ${e.to}.`);
      // Steps only move forward; a repeated step (a retried job) is a no-op transition.
      if (next < from) return refuse(`${r.id} is already past ${e.to} (${s}).`);
      // A retried job re-entering its own step changes nothing and adds no audit entry.
      if (next === from) return refuse(`${r.id} is already ${s}.`);
      return to(e.to);
    }
    case 'batch':
      if (s !== 'deploying') return refuse(`${r.id} is ${s}; batches happen while deploying.`);
      // A batch re-applied by a restarted job is the same batch, not a new one.
      if (r.batch?.region === e.region && r.batch.index === e.index)
        return refuse(`${r.id} is already at ${e.region} batch ${e.index}.`);
      return to('deploying', {
        batch: { region: e.region, index: e.index, total: e.total, pods: e.pods, replicas: e.replicas },
        awaitingPromotion: false,
        hold: undefined,
      });
    case 'succeed':
      return s === 'verifying' || s === 'deploying'
        ? to('succeeded', { awaitingPromotion: false })
        : refuse(`${r.id} is ${s}; it cannot succeed yet.`);
    case 'fail':
      return to('failed', { error: e.reason });
    case 'pause':
      if (s === 'paused') return refuse(`${r.id} is already paused.`);
      if (!WORK_STATES.has(s))
        return refuse(
          `${r.id} is ${s}; only a release that is building, syncing or deploying can be paused.`,
        );
      return to('paused', { pausedFrom: s });
    case 'resume':
      if (s === 'paused') return to(r.pausedFrom ?? 'approved', { pausedFrom: undefined });
      return refuse(`${r.id} is ${s}, not paused.`);
    case 'promote':
      if (s !== 'deploying' || !r.awaitingPromotion) return refuse(`${r.id} is not waiting to be promoted.`);
      return to('deploying', { awaitingPromotion: false, hold: undefined });
    case 'abort':
      if (s === 'rolling-back') return refuse(`${r.id} is already rolling back.`);
      // A failed release that changed some region keeps its lock until what
      // it changed is rolled back: the next release must not start from a
      // mixed state. Aborting it rolls back first; rolled-back frees the lock.
      if (s === 'failed' && deployedAnywhere(r)) return to('rolling-back');
      return to('aborted');
    case 'rollback-start':
      if (s === 'rolling-back') return refuse(`${r.id} is already rolling back.`);
      if (s !== 'failed' && s !== 'deploying' && s !== 'verifying' && s !== 'paused') {
        return refuse(`${r.id} is ${s}; there is nothing deployed to roll back.`);
      }
      return to('rolling-back', { error: e.reason });
    case 'rolled-back':
      return s === 'rolling-back' ? to('rolled-back') : refuse(`${r.id} is ${s}, not rolling back.`);
  }
}

/** A release as one line for lists: "r12 payments v2 → prod: deploying (eu-west 2/3)". */
export function oneLine(r: Release): string {
  const batch =
    r.state === 'deploying' && r.batch ? ` (${r.batch.region} batch ${r.batch.index}/${r.batch.total})` : '';
  const factors = r.factors.length ? ` [${r.factors.join(', ')}]` : '';
  return `${r.id} ${r.app} ${r.version} → ${r.environment}${factors}: ${r.state}${batch}`;
}
