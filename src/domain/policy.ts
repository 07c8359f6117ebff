// Who may do what. Rules in the config grant actions on apps and
// environments to groups; approvals come from the plan's approval group.
// Every refusal says why and what would make it allowed.

import { countApprovals } from './approvals.ts';
import type { Action, FerryConfig } from './config.ts';
import { durationMs } from './duration.ts';
import { actorIdOf } from './people.ts';
import { approvalRequirements, describeRequirements } from './plan.ts';
import type { Release } from './release.ts';
import { mention } from './text.ts';
import { ownerOfWorkload } from './workload.ts';

/**
 * Why a request is refused, as a value an adapter or a test can branch on;
 * `reason` is the same in words, saying what would make it allowed.
 */
export type Refusal =
  /** The chat user is not in the config's people. */
  | 'unknown-person'
  /** No rule grants the action on this app and environment to the person's groups. */
  | 'not-granted'
  /** A factor asks for a group the person is not in. */
  | 'factor-not-granted'
  /** The person is in none of the groups the release's approvals come from. */
  | 'not-an-approver'
  /** The requester may not approve their own release here. */
  | 'own-release'
  /** The person approved already. */
  | 'already-approved'
  /** The approval would add nothing the release still needs. */
  | 'approval-would-not-count'
  /** The release is in a state in which the action does not apply. */
  | 'wrong-state';

export type Decision = { ok: true } | { ok: false; refusal: Refusal; reason: string };

const allow: Decision = { ok: true };

/** The person's name in the config for a chat user id. */
export function personOf(config: FerryConfig, userId: string): string | undefined {
  for (const [name, entry] of Object.entries(config.people)) if (actorIdOf(entry) === userId) return name;
  return undefined;
}

export function groupsOf(config: FerryConfig, userId: string): string[] {
  const person = personOf(config, userId);
  if (!person) return [];
  return Object.entries(config.groups)
    .filter(([, members]) => members.includes(person))
    .map(([g]) => g);
}

const matches = (patterns: string[], name: string) => patterns.includes('*') || patterns.includes(name);

const VERB: Record<Action, string> = {
  request: 'release',
  pause: 'pause releases of',
  resume: 'resume releases of',
  abort: 'abort releases of',
  rollback: 'roll back',
  logs: 'read the logs of',
  sync: 'sync images of',
  silence: 'silence alerts of',
  adopt: 'adopt the Deployments of',
};

export function may(
  config: FerryConfig,
  userId: string,
  action: Action,
  app: string,
  environment: string,
): Decision {
  const person = personOf(config, userId);
  if (!person) {
    return {
      ok: false,
      refusal: 'unknown-person',
      reason: `You (${mention(userId)}) are not in Ferry's people list; ask the platform team to add you to ferry.yaml.`,
    };
  }
  const groups = groupsOf(config, userId);
  const granted = config.rules.some(
    (r) =>
      r.actions.includes(action) &&
      r.groups.some((g) => groups.includes(g)) &&
      matches(r.apps, app) &&
      matches(r.environments, environment),
  );
  if (granted) return allow;
  const who = config.rules
    .filter((r) => r.actions.includes(action) && matches(r.apps, app) && matches(r.environments, environment))
    .flatMap((r) => r.groups);
  return {
    ok: false,
    refusal: 'not-granted',
    reason: `You may not ${VERB[action]} ${app} in ${environment}.${who.length ? ` Members of ${[...new Set(who)].join(', ')} may.` : ' Nobody may, by the current rules.'}`,
  };
}

export function mayRequest(
  config: FerryConfig,
  userId: string,
  app: string,
  environment: string,
  factors: string[],
): Decision {
  const base = may(config, userId, 'request', app, environment);
  if (!base.ok) return base;
  const groups = groupsOf(config, userId);
  for (const f of factors) {
    const factor = config.factors[f];
    const group = factor?.authority?.request ?? factor?.requestGroup;
    if (group && !groups.includes(group)) {
      return {
        ok: false,
        refusal: 'factor-not-granted',
        reason: `Only members of ${group} may release with "${f}".`,
      };
    }
  }
  return allow;
}

/** The groups among the release's approval requirements that a chat user belongs to (now, in this config). */
export function approverGroups(config: FerryConfig, release: Release, userId: string): string[] {
  const person = personOf(config, userId);
  if (!person) return [];
  const wanted = approvalRequirements(release.plan)
    .filter((r) => r.required.value > 0)
    .map((r) => r.group.value);
  return [...new Set(wanted)].filter((g) => (config.groups[g] ?? []).includes(person));
}

/**
 * Whether this person's approval would count now. The store re-checks it
 * against the release as stored on every commit attempt, so it holds under
 * concurrent approvals too.
 */
export function mayApprove(config: FerryConfig, release: Release, userId: string): Decision {
  const requirements = approvalRequirements(release.plan).filter((r) => r.required.value > 0);
  const groups = approverGroups(config, release, userId);
  if (groups.length === 0) {
    const who = requirements.map(
      (r) =>
        `group ${r.group.value} (${r.group.source}): ${(config.groups[r.group.value] ?? []).join(', ') || 'nobody'}`,
    );
    return {
      ok: false,
      refusal: 'not-an-approver',
      reason: `Approvals for ${release.id} come from ${who.join('; ') || 'nobody'}.`,
    };
  }
  if (userId === release.requestedBy && !release.plan.approvals.allowSelfApproval.value) {
    return {
      ok: false,
      refusal: 'own-release',
      reason: `You requested ${release.id}, and ${release.environment} needs someone else to approve it.`,
    };
  }
  const before = countApprovals(release.plan, release.approvals);
  const still = before.missing.map((m) => ({
    ...m.requirement,
    required: { ...m.requirement.required, value: m.count },
  }));
  if (release.approvals.some((a) => a.by === userId)) {
    return {
      ok: false,
      refusal: 'already-approved',
      reason: `You already approved ${release.id}; it needs ${describeRequirements(still)} more, from someone else.`,
    };
  }
  const after = countApprovals(release.plan, [...release.approvals, { by: userId, groups }]);
  if (after.total === before.total) {
    return {
      ok: false,
      refusal: 'approval-would-not-count',
      reason: `Your approval would not count for ${release.id}: it still needs ${describeRequirements(still)}, and those who approved already fill what your groups (${groups.join(', ')}) can give.`,
    };
  }
  return allow;
}

/** Who may reject: the requester (withdrawing it), or anyone whose approval the release asks for. */
export function mayReject(config: FerryConfig, release: Release, userId: string): Decision {
  if (userId === release.requestedBy || approverGroups(config, release, userId).length > 0) return allow;
  const groups = approvalRequirements(release.plan)
    .filter((r) => r.required.value > 0)
    .map((r) => r.group.value);
  return {
    ok: false,
    refusal: 'not-an-approver',
    reason: `Rejections of ${release.id} come from ${groups.length ? `group ${[...new Set(groups)].join(', ')}` : 'nobody'} or its requester.`,
  };
}

/**
 * Whether a person may be asked for a reason to reject (the Reject button): the
 * rule of the rejection itself, and a state in which a release can be rejected.
 */
export function mayAskToReject(config: FerryConfig, release: Release, userId: string): Decision {
  const allowed = mayReject(config, release, userId);
  if (!allowed.ok) return allowed;
  if (release.state !== 'awaiting-approval' && release.state !== 'queued')
    return {
      ok: false,
      refusal: 'wrong-state',
      reason: `${release.id} is ${release.state}; only a release waiting for approval can be rejected.`,
    };
  return allow;
}

/** Whether a person may roll a failed release back (its card's button). */
export function mayRollBackRelease(config: FerryConfig, release: Release, userId: string): Decision {
  const allowed = may(config, userId, 'rollback', release.app, release.environment);
  if (!allowed.ok) return allowed;
  if (release.state !== 'failed')
    return {
      ok: false,
      refusal: 'wrong-state',
      reason: `${release.id} is ${release.state}; only a failed release is rolled back from its card.`,
    };
  return allow;
}

/**
 * The workload an alert's silence key names (oom/<region>/<namespace>/<owner>/<container>): the app
 * deployed there, when Ferry knows it.
 */
export function appOfSilenceKey(config: FerryConfig, key: string): string | undefined {
  const [, region, namespace = '', owner] = key.split('/');
  return ownerOfWorkload(config, {
    ...(region ? { region } : {}),
    namespace,
    ...(owner ? { owner } : {}),
  })?.app;
}

/**
 * Whether a person may silence an alert: `silence` on the app that owns the workload in some
 * environment; when no app is known to own it, on any app.
 */
export function maySilence(config: FerryConfig, userId: string, key: string): Decision {
  const owning = appOfSilenceKey(config, key);
  const apps = owning ? [owning] : Object.keys(config.apps);
  const envs = Object.keys(config.environments);
  if (apps.some((a) => envs.some((e) => may(config, userId, 'silence', a, e).ok))) return allow;
  return {
    ok: false,
    refusal: 'not-granted',
    reason: owning
      ? `You may not silence alerts of ${owning}.`
      : `You may not silence alerts of ${apps.length > 10 ? `${apps.slice(0, 10).join(', ')} or the ${apps.length - 10} other apps` : apps.join(', ')}.`,
  };
}

/** When a release waiting for approval gives up. */
export function approvalDeadline(release: Release): number {
  return release.stateSince + durationMs(release.plan.approvals.expiresAfter.value);
}
