// Who may do what. Rules in the config grant actions on apps and
// environments to groups; approvals come from the plan's approval group.
// Every refusal says why and what would make it allowed.
import type { Action, FerryConfig } from '../config/schema.ts';
import { durationMs } from './duration.ts';
import type { Release } from './release.ts';

export type Decision = { ok: true } | { ok: false; reason: string };

const allow: Decision = { ok: true };

/** The person's name in the config for a chat user id. */
export function personOf(config: FerryConfig, userId: string): string | undefined {
  for (const [name, id] of Object.entries(config.people)) if (id === userId) return name;
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
      reason: `You (<@${userId}>) are not in Ferry's people list; ask the platform team to add you to ferry.yaml.`,
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
    const group = config.factors[f]?.requestGroup;
    if (group && !groups.includes(group)) {
      return { ok: false, reason: `Only members of ${group} may release with "${f}".` };
    }
  }
  return allow;
}

export function mayApprove(config: FerryConfig, release: Release, userId: string): Decision {
  const group = release.plan.approvals.group.value;
  const person = personOf(config, userId);
  const members = config.groups[group] ?? [];
  if (!person || !members.includes(person)) {
    return {
      ok: false,
      reason: `Approvals for ${release.id} come from group ${group} (${release.plan.approvals.group.source}): ${members.join(', ') || 'nobody'}.`,
    };
  }
  if (userId === release.requestedBy && !release.plan.approvals.allowSelfApproval.value) {
    return {
      ok: false,
      reason: `You requested ${release.id}, and ${release.environment} needs someone else to approve it.`,
    };
  }
  if (release.approvals.some((a) => a.by === userId)) {
    const need = release.plan.approvals.required.value - release.approvals.length;
    return { ok: false, reason: `You already approved ${release.id}; it needs ${need} more from ${group}.` };
  }
  return allow;
}

/** When a release waiting for approval gives up. */
export function approvalDeadline(release: Release): number {
  return release.stateSince + durationMs(release.plan.approvals.expiresAfter.value);
}
