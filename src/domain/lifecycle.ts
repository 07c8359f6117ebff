// The release lifecycle as a service: what happens when a person asks for a
// release, approves, rejects, pauses, resumes, aborts or promotes, and when a
// worker reports progress. It checks policy, applies the transition through
// the repository (stored atomically, with the audit entry), then announces.

import { countApprovals } from './approvals.ts';
import type { FerryConfig } from './config.ts';
import { formatDuration } from './duration.ts';
import {
  approvalRequirements,
  describeRequirements,
  type Plan,
  type PlanRequest,
  planRelease,
  RULES,
} from './plan.ts';
import { approvalDeadline, approverGroups, may, mayApprove, mayReject, mayRequest } from './policy.ts';
import type { Announcer, CommitResult, ReleaseRepository, VersionLookup, WorkScheduler } from './ports.ts';
import { hasEnded, oneLine, type Release, type ReleaseEvent } from './release.ts';
import { literal, mention } from './text.ts';

export interface Reply {
  ok: boolean;
  text: string;
  releaseId?: string;
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export function insideWindow(
  windows: FerryConfig['environments'][string]['releaseWindows'],
  now: Date,
): boolean {
  if (windows.length === 0) return true;
  const day = DAYS[now.getUTCDay()] as (typeof DAYS)[number];
  const hm = `${String(now.getUTCHours()).padStart(2, '0')}:${String(now.getUTCMinutes()).padStart(2, '0')}`;
  return windows.some((w) => (w.days as string[]).includes(day) && hm >= w.from && hm < w.to);
}

export interface LifecycleDeps {
  config: () => FerryConfig;
  releases: ReleaseRepository;
  versions: VersionLookup;
  scheduler: WorkScheduler;
  announcer: Announcer;
  now?: () => number;
}

export class Lifecycle {
  private readonly deps: LifecycleDeps;

  constructor(deps: LifecycleDeps) {
    this.deps = deps;
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  private get config(): FerryConfig {
    return this.deps.config();
  }

  /** A new release from a parsed command. Nothing is stored when it is refused. */
  async request(cmd: PlanRequest, userId: string, channel?: string): Promise<Reply> {
    const config = this.config;
    const planned = planRelease(cmd, config);
    if (!planned.ok) return { ok: false, text: planned.error.message };
    const plan = planned.plan;
    const allowed = mayRequest(config, userId, plan.app, plan.environment, plan.factors);
    if (!allowed.ok) return { ok: false, text: allowed.reason };
    const blocked = await this.preconditions(plan);
    if (blocked) return { ok: false, text: blocked };
    if (plan.whenBusy.value === 'refuse') {
      const holder = await this.deps.releases.lockHolder(plan.app, plan.environment);
      const current = holder ? await this.deps.releases.get(holder) : undefined;
      if (current && !hasEnded(current)) {
        return {
          ok: false,
          text: `${plan.app} is already being released to ${plan.environment}: ${oneLine(current)}. Try again when it ends.`,
        };
      }
    }
    const now = this.now();
    const release: Release = {
      id: await this.deps.releases.nextId(),
      app: plan.app,
      version: plan.version,
      environment: plan.environment,
      regions: plan.regions.value,
      factors: plan.factors,
      plan,
      requestedBy: userId,
      requestedAt: now,
      state: 'requested',
      stateSince: now,
      approvals: [],
      rev: 1,
      ...(channel ? { requestChannel: channel } : {}),
    };
    await this.deps.releases.create(release, userId);
    // The card is announced with the release's first move (in line, waiting for approval, starting),
    // not before it: the card goes out at once, and one posted while still "requested" would show no
    // Approve button until an edit came through chat.update's 50 a minute.
    const lock = await this.deps.releases.acquire(release);
    if (!lock.acquired) {
      const r = await this.deps.releases.apply(
        release.id,
        { type: 'enqueue', position: lock.position },
        'ferry',
      );
      if (r.ok) {
        await this.announceTransition(
          r,
          `Waiting in line behind ${lock.holder} (position ${lock.position}).`,
        );
        await this.deps.scheduler.schedulePrepare?.(r.release);
      } else await this.deps.announcer.announce({ kind: 'card', releaseId: release.id });
      return {
        ok: true,
        releaseId: release.id,
        text: `${release.id}: ${release.app} ${release.version} → ${release.environment} is number ${lock.position} in line behind ${lock.holder}; it starts when that release ends.`,
      };
    }
    const started = await this.start(release.id);
    return { ok: true, releaseId: release.id, text: started };
  }

  /**
   * The promotion rule and release windows, checked when a release is
   * requested. A refusal names the rule it enforces and how to satisfy it,
   * never the factor words that would get around it.
   */
  private async preconditions(plan: Plan): Promise<string | undefined> {
    const env = this.config.environments[plan.environment];
    if (plan.promotionRule.value.applies && plan.promotionRule.value.requiresPassed) {
      const need = plan.promotionRule.value.requiresPassed;
      const record = await this.deps.versions.get(plan.app, plan.version);
      if (!record?.passed[need]) {
        return `${plan.app} ${plan.version} has not succeeded in ${need} yet, and ${plan.environment} takes only versions that have (${RULES.promotionRule}). Release it to ${need} first (\`/release ${plan.app} ${plan.version} to ${need}\`).`;
      }
    }
    if (env && !plan.releaseWindowBypass.value && !insideWindow(env.releaseWindows, new Date(this.now()))) {
      const windows = env.releaseWindows.map((w) => `${w.days.join(',')} ${w.from}–${w.to} UTC`).join('; ');
      return `${plan.environment} takes releases only in its windows (${RULES.releaseWindow}: ${windows}). Request it again inside a window.`;
    }
    return undefined;
  }

  /** Moves a release that holds its lock into approval (or straight to work). */
  async start(id: string): Promise<string> {
    const r = await this.deps.releases.apply(id, { type: 'start' }, 'ferry');
    if (!r.ok) {
      // It did not move (another process moved it first, or it ended): its card shows where it is.
      await this.deps.announcer.announce({ kind: 'card', releaseId: id });
      return r.reason;
    }
    const rel = r.release;
    if (rel.state === 'awaiting-approval') {
      const at = approvalDeadline(rel);
      await this.deps.scheduler.scheduleExpiry(rel, at);
      const need = describeRequirements(approvalRequirements(rel.plan));
      await this.announceTransition(
        r,
        `Waiting for ${need} (expires in ${formatDuration(at - this.now())}).`,
      );
      await this.deps.scheduler.schedulePrepare?.(rel);
      return `${rel.id}: ${rel.app} ${rel.version} → ${rel.environment} waits for ${need}.`;
    }
    await this.announceTransition(r, 'No approval needed: starting.');
    await this.deps.scheduler.startFlow(rel);
    return `${rel.id}: ${rel.app} ${rel.version} → ${rel.environment} is starting.`;
  }

  async approve(id: string, userId: string): Promise<Reply> {
    const rel = await this.deps.releases.get(id);
    if (!rel) return { ok: false, text: `There is no release ${id}. See \`/release status\`.` };
    if (rel.state !== 'awaiting-approval')
      return { ok: false, text: `${id} is not waiting for approval (it is ${rel.state}).` };
    const config = this.config;
    const allowed = mayApprove(config, rel, userId);
    if (!allowed.ok) return { ok: false, text: allowed.reason };
    // The store checks the approval again on the release as stored, on every
    // attempt: two clicks by one person at once still count once.
    const r = await this.deps.releases.apply(
      id,
      { type: 'approve', by: userId, groups: approverGroups(config, rel, userId) },
      undefined,
      undefined,
      (current) => mayApprove(config, current, userId),
    );
    if (!r.ok) return { ok: false, text: r.reason };
    const missing = countApprovals(r.release.plan, r.release.approvals).missing;
    const need = describeRequirements(
      missing.map((m) => ({ ...m.requirement, required: { ...m.requirement.required, value: m.count } })),
    );
    if (r.release.state === 'approved') {
      await this.announceTransition(r, `Approved by ${mention(userId)}.`);
      await this.deps.scheduler.startFlow(r.release);
      return { ok: true, releaseId: id, text: `You approved ${id}; it is starting.` };
    }
    await this.announceTransition(r, `Approved by ${mention(userId)}; still needed: ${need}.`);
    return { ok: true, releaseId: id, text: `You approved ${id}; it still needs ${need}.` };
  }

  async reject(id: string, userId: string, reason: string): Promise<Reply> {
    const rel = await this.deps.releases.get(id);
    if (!rel) return { ok: false, text: `There is no release ${id}.` };
    const config = this.config;
    // The requester may always withdraw their own release.
    const allowed = mayReject(config, rel, userId);
    if (!allowed.ok) return { ok: false, text: allowed.reason };
    const r = await this.deps.releases.apply(
      id,
      { type: 'reject', by: userId, reason },
      undefined,
      undefined,
      (current) => mayReject(config, current, userId),
    );
    if (!r.ok) return { ok: false, text: r.reason };
    await this.announceTransition(r, `Rejected by ${mention(userId)}: ${literal(reason)}`);
    return { ok: true, releaseId: id, text: `You rejected ${id}.` };
  }

  /** pause, resume, abort and promote: people steering a release in flight. */
  async steer(action: 'pause' | 'resume' | 'abort' | 'promote', id: string, userId: string): Promise<Reply> {
    const rel = await this.deps.releases.get(id);
    if (!rel) return { ok: false, text: `There is no release ${id}. See \`/release status\`.` };
    const allowed = may(
      this.config,
      userId,
      action === 'promote' ? 'resume' : action,
      rel.app,
      rel.environment,
    );
    if (!allowed.ok) return { ok: false, text: allowed.reason };
    // `/release resume` at a promotion point promotes: it is what the person means.
    const event: ReleaseEvent =
      action === 'resume' && rel.state === 'deploying' && rel.awaitingPromotion
        ? { type: 'promote', by: userId }
        : { type: action, by: userId };
    const r = await this.deps.releases.apply(id, event);
    if (!r.ok) return { ok: false, text: r.reason };
    const said = {
      pause: 'Paused',
      resume: 'Resumed',
      abort: 'Aborted',
      promote: 'Promoted to the next batch',
    }[event.type as 'pause' | 'resume' | 'abort' | 'promote'];
    await this.announceTransition(r, `${said} by ${mention(userId)}.`);
    if (
      event.type === 'abort' &&
      (rel.state === 'deploying' ||
        rel.state === 'verifying' ||
        rel.state === 'paused' ||
        r.release.state === 'rolling-back')
    ) {
      await this.deps.scheduler.startRollback(r.release, `aborted by ${mention(userId)}`);
    }
    return { ok: true, releaseId: id, text: `${said}: ${oneLine(r.release)}` };
  }

  /** Progress from workers: steps, batches, success, failure. */
  async report(id: string, event: ReleaseEvent, message?: string): Promise<CommitResult> {
    const r = await this.deps.releases.apply(id, event, 'ferry');
    if (r.ok) await this.announceTransition(r, message);
    return r;
  }

  /** Hands a failed release to the rollback job (which records rolling-back → rolled-back). */
  async rollback(id: string, reason: string): Promise<void> {
    const rel = await this.deps.releases.get(id);
    if (rel) await this.deps.scheduler.startRollback(rel, reason);
  }

  async expire(id: string): Promise<void> {
    const rel = await this.deps.releases.get(id);
    if (rel?.state !== 'awaiting-approval') return;
    if (approvalDeadline(rel) > this.now()) return;
    const r = await this.deps.releases.apply(id, { type: 'expire' }, 'ferry');
    if (r.ok)
      await this.announceTransition(
        r,
        `No approval within ${rel.plan.approvals.expiresAfter.value}: expired. Request it again to retry.`,
      );
  }

  /** Stored first, announced second; and the next release in line starts when this one frees the lock. */
  async announceTransition(r: Extract<CommitResult, { ok: true }>, message?: string): Promise<void> {
    await this.deps.announcer.announce({ kind: 'card', releaseId: r.release.id });
    if (message)
      await this.deps.announcer.announce({ kind: 'reply', releaseId: r.release.id, text: message });
    if (r.handedTo) await this.start(r.handedTo);
  }

  /**
   * Crash recovery: brings every stored release back in step with its state.
   * Safe to run at any time and from several processes (all calls idempotent).
   */
  async reconcile(): Promise<string[]> {
    const done: string[] = [];
    for (const rel of await this.deps.releases.active()) {
      if (rel.state === 'requested' || rel.state === 'queued') {
        const holder = await this.deps.releases.lockHolder(rel.app, rel.environment);
        if (holder === rel.id || holder === null) {
          const lock = await this.deps.releases.acquire(rel);
          if (lock.acquired) {
            await this.start(rel.id);
            done.push(`${rel.id}: started`);
          }
        } else {
          const h = await this.deps.releases.get(holder);
          if (!h || hasEnded(h)) {
            const lock = await this.deps.releases.acquire(rel);
            if (lock.acquired) {
              await this.start(rel.id);
              done.push(`${rel.id}: took over a stale lock from ${holder}`);
            }
          }
        }
      } else if (rel.state === 'awaiting-approval') {
        if (approvalDeadline(rel) <= this.now()) await this.expire(rel.id);
        else await this.deps.scheduler.scheduleExpiry(rel, approvalDeadline(rel));
      } else if (rel.state === 'rolling-back') {
        await this.deps.scheduler.startRollback(rel, rel.error ?? 'resumed after a restart');
        done.push(`${rel.id}: rollback resumed`);
      } else if (rel.state !== 'paused' && rel.state !== 'failed') {
        await this.deps.scheduler.startFlow(rel);
        done.push(`${rel.id}: flow ensured`);
      }
    }
    return done;
  }
}
