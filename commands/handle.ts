// The handler of every command: parse errors and refusals come back as
// replies; nothing is stored or queued for them.

import { countApprovals } from '../src/domain/approvals.ts';
import { formatDuration } from '../src/domain/duration.ts';
import { approvalRequirements, explainPlan, planRelease } from '../src/domain/plan.ts';
import { type AuditEntry, hasEnded, oneLine, type Release } from '../src/domain/release.ts';
import { literal } from '../src/domain/text.ts';
import { type Actor, type CommandReply, type CommandServices, ephemeral } from './handler.ts';
import { COMMANDS, type Command, parseCommand, usageLines } from './index.ts';

export async function handleText(
  text: string,
  actor: Actor,
  services: CommandServices,
): Promise<CommandReply> {
  const parsed = parseCommand(text, { config: services.config() });
  if (!parsed.ok) return ephemeral(false, parsed.error.message);
  return handleCommand(parsed.command, actor, services);
}

const when = (at: number) => new Date(at).toISOString().replace('T', ' ').slice(0, 16);

function auditLine(a: AuditEntry): string {
  const who = a.actor === 'ferry' ? 'Ferry' : `<@${a.actor}>`;
  return `${when(a.at)}  ${a.releaseId}  ${a.from ?? '—'} → ${a.to}  by ${who}${a.detail ? ` — ${literal(a.detail)}` : ''}`;
}

export async function handleCommand(cmd: Command, actor: Actor, s: CommandServices): Promise<CommandReply> {
  const config = s.config();
  switch (cmd.kind) {
    case 'release': {
      const r = await s.lifecycle.request(cmd, actor.userId, actor.channel);
      return ephemeral(r.ok, r.text, r.releaseId);
    }
    case 'plan': {
      const p = planRelease(cmd, config);
      if (!p.ok) return ephemeral(false, p.error.message);
      return ephemeral(true, `Plan (nothing started):\n\`\`\`\n${explainPlan(p.plan).join('\n')}\n\`\`\``);
    }
    case 'approve': {
      const r = await s.lifecycle.approve(cmd.releaseId, actor.userId);
      return ephemeral(r.ok, r.text, cmd.releaseId);
    }
    case 'reject': {
      const r = await s.lifecycle.reject(cmd.releaseId, actor.userId, cmd.reason);
      return ephemeral(r.ok, r.text, cmd.releaseId);
    }
    case 'pause':
    case 'resume':
    case 'abort': {
      const r = await s.lifecycle.steer(cmd.kind, cmd.releaseId, actor.userId);
      return ephemeral(r.ok, r.text, cmd.releaseId);
    }
    case 'status': {
      if (cmd.releaseId) {
        const r = await s.releases.get(cmd.releaseId);
        if (!r) return ephemeral(false, `There is no release ${cmd.releaseId}.`);
        return ephemeral(true, describeRelease(r));
      }
      const active = (await s.releases.active()).filter((r) => !cmd.app || r.app === cmd.app);
      const locks = await lockLines(s, active, cmd.app);
      if (active.length === 0 && locks.length === 0)
        return ephemeral(
          true,
          cmd.app ? `No release of ${cmd.app} is in flight.` : 'No release is in flight.',
        );
      const inFlight = active.filter((r) => r.state !== 'queued' && r.state !== 'requested');
      const waiting = active.filter((r) => r.state === 'queued' || r.state === 'requested');
      const lines = ['*In flight*', ...inFlight.map((r) => `• ${oneLine(r)}`)];
      if (locks.length) lines.push('*Locks*', ...locks);
      if (waiting.length) {
        lines.push('*In line*');
        for (const r of waiting) {
          const line = await s.releases.waiting(r.app, r.environment);
          lines.push(`• ${oneLine(r)} — position ${line.indexOf(r.id) + 1}`);
        }
      }
      return ephemeral(true, lines.join('\n'));
    }
    case 'history': {
      const releases = (await s.releases.byApp(cmd.app, 20)).filter(
        (r) => !cmd.environment || r.environment === cmd.environment,
      );
      if (releases.length === 0)
        return ephemeral(
          true,
          `${cmd.app} has no releases${cmd.environment ? ` to ${cmd.environment}` : ''} yet.`,
        );
      const lines: string[] = [];
      for (const r of releases) {
        lines.push(`*${oneLine(r)}*`);
        for (const a of await s.releases.audit(r.id)) lines.push(auditLine(a));
      }
      return ephemeral(true, lines.join('\n'));
    }
    case 'versions': {
      const versions = await s.versions.list(cmd.app);
      if (versions.length === 0) return ephemeral(true, `${cmd.app} has no built versions yet.`);
      const lines: string[] = [];
      for (const v of versions) {
        lines.push(
          `*${literal(v.version)}* (ref ${literal(v.ref)}${v.commit ? `, commit ${literal(v.commit.slice(0, 10))}` : ''}${v.rebuildOf ? `, rebuild of ${literal(v.rebuildOf)} on stack ${v.stack?.stackName}` : ''})`,
        );
        for (const [env, img] of Object.entries(v.images)) {
          const passed = v.passed[env] ? `passed ${when(v.passed[env] as number)}` : 'not passed';
          // Full digests: a person compares them with the registry's.
          const on = img.stack ? `; stack ${img.stack.name}@${img.stack.digest}` : '; stack not recorded';
          const base = img.base ? `; base ${img.base.name}@${img.base.digest}` : '';
          lines.push(`  ${env}: ${img.digest.slice(0, 19)}… ${passed}${on}${base}`);
        }
      }
      const envs = Object.keys(config.environments);
      for (const env of envs) {
        for (const region of config.environments[env]?.regions ?? []) {
          const d = (await s.versions.deploys(cmd.app, env, region, 1))[0];
          if (d) lines.push(`deployed in ${env}/${region}: ${d.version} (${d.releaseId}, ${when(d.at)})`);
        }
      }
      return ephemeral(true, lines.join('\n'));
    }
    case 'rollback':
      return s.rollbacks
        ? s.rollbacks.request(cmd, actor)
        : ephemeral(false, 'Rollback is not set up in this installation.');
    case 'logs':
      return s.logs ? s.logs.read(cmd, actor) : ephemeral(false, 'Logs are not set up in this installation.');
    case 'sync':
      return s.syncs
        ? s.syncs.request(cmd, actor)
        : ephemeral(false, 'Image sync is not set up in this installation.');
    case 'adopt':
      return s.adoptions
        ? s.adoptions.request(cmd, actor)
        : ephemeral(false, 'Adoption is not set up in this installation.');
    case 'rebuild':
      return s.rebuilds
        ? s.rebuilds.request(cmd, actor)
        : ephemeral(false, 'Stack rebuilds are not set up in this installation.');
    case 'help':
      return ephemeral(true, helpText(cmd.topic, s));
  }
}

/**
 * Who holds each app and environment's lock, since when, and what frees it:
 * a lock is held from the start of a release until it ends, and by a release
 * that failed after changing a region until a person rolls it back or aborts it.
 */
async function lockLines(s: CommandServices, active: Release[], app?: string): Promise<string[]> {
  const config = s.config();
  const pairs = new Map<string, [string, string]>();
  for (const a of Object.keys(config.apps))
    for (const e of Object.keys(config.environments)) pairs.set(`${a}\u0000${e}`, [a, e]);
  for (const r of active) pairs.set(`${r.app}\u0000${r.environment}`, [r.app, r.environment]);
  const lines: string[] = [];
  for (const [a, e] of pairs.values()) {
    if (app && a !== app) continue;
    const lock = await s.releases.lockInfo(a, e);
    if (!lock) continue;
    const holder = await s.releases.get(lock.holder);
    const since =
      lock.since !== undefined
        ? ` since ${when(lock.since)} (${formatDuration(Date.now() - lock.since)})`
        : '';
    let line = `• ${a} → ${e}: held by ${lock.holder}`;
    if (!holder)
      line += `${since}, which no longer exists; the next release of ${a} to ${e} takes the lock over`;
    else if (hasEnded(holder))
      line += `${since}, which has ended (${holder.state}); the next release of ${a} to ${e} takes the lock over`;
    else {
      line += ` (${holder.state}, requested by <@${holder.requestedBy}>)${since}`;
      if (holder.state === 'failed')
        line += ` — it changed ${a} in ${e} before failing; roll it back or \`/release abort ${holder.id}\` to free it`;
      else if (holder.state === 'paused')
        line += ` — \`/release resume ${holder.id}\` or \`/release abort ${holder.id}\``;
    }
    lines.push(line);
  }
  return lines;
}

export function describeRelease(r: Release): string {
  const p = r.plan;
  const lines = [
    `*${oneLine(r)}*`,
    `requested by <@${r.requestedBy}> at ${when(r.requestedAt)}; ${r.state} for ${formatDuration(Date.now() - r.stateSince)}`,
    `regions: ${r.regions.join(' → ')}; batches: ${p.batches.value.map((b) => b.size).join(', ')}`,
  ];
  const requirements = approvalRequirements(p);
  const counted = countApprovals(p, r.approvals).counted;
  requirements.forEach((q, i) => {
    if (q.required.value === 0) return;
    const by = counted[i] ?? [];
    const at = (id: string) => r.approvals.find((a) => a.by === id)?.at ?? 0;
    lines.push(
      `approvals${q.factor ? ` for ${q.factor}` : ''}: ${by.length}/${q.required.value} from ${q.group.value}${by.length ? ` (${by.map((id) => `<@${id}> ${when(at(id))}`).join(', ')})` : ''}`,
    );
  });
  if (r.rejection) lines.push(`rejected by <@${r.rejection.by}>: ${literal(r.rejection.reason)}`);
  if (r.error) lines.push(`error: ${literal(r.error)}`);
  return lines.join('\n');
}

function helpText(topic: string | undefined, s: CommandServices): string {
  const config = s.config();
  if (topic === 'factors') {
    return Object.entries(config.factors)
      .map(
        ([name, f]) =>
          `*${name}* — ${f.description}${f.excludes.length ? ` (not with ${f.excludes.join(', ')})` : ''}`,
      )
      .join('\n');
  }
  if (topic) {
    const spec = Object.values(COMMANDS).find((c) => c.name === topic);
    if (spec) return `\`${literal(spec.usage)}\`\n${spec.summary}`;
  }
  return [
    '*Ferry* plans, approves, builds, syncs and rolls out releases. Commands:',
    ...usageLines(),
    `Apps: ${Object.keys(config.apps).join(', ')}. Factors: ${Object.keys(config.factors).join(', ')} (\`/release help factors\`).`,
  ].join('\n');
}
