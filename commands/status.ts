// /release status [<app> | <release-id>]

import { z } from 'zod';
import { formatDuration } from '../src/domain/duration.ts';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, checkReleaseId, fail } from '../src/domain/grammar.ts';
import { hasEnded, oneLine, type Release } from '../src/domain/release.ts';
import { mention } from '../src/domain/text.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, type CommandPorts, when } from './command.ts';
import { describeRelease } from './describe.ts';

export const statusSchema = z.strictObject({
  kind: z.literal('status'),
  app: z.string().optional(),
  releaseId: z.string().regex(RELEASE_ID).optional(),
});
export type StatusCommand = z.infer<typeof statusSchema>;

const USAGE = '/release status [<app> | <release-id>]';

const grammar: CommandSpec<StatusCommand> = {
  name: 'status',
  usage: USAGE,
  summary: 'Releases in flight and in line, for everything, one app or one release.',
  schema: statusSchema,
  parse(words, ctx) {
    if (words.length > 1) return fail('usage', 'status takes one app or one release id.', USAGE);
    const word = words[0];
    if (word === undefined) return { ok: true, command: { kind: 'status' } };
    if (RELEASE_ID.test(word.toLowerCase().replace(/^#/, ''))) {
      const id = checkReleaseId(word, USAGE);
      return id.ok ? { ok: true, command: { kind: 'status', releaseId: id.command } } : id;
    }
    const app = checkApp(word, ctx, USAGE);
    return app.ok ? { ok: true, command: { kind: 'status', app: app.command } } : app;
  },
  format: (c) => ['status', c.releaseId ?? c.app].filter(Boolean).join(' '),
};

export const status: CommandModule<StatusCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'it only reads' },
  async handle(cmd, { ports: s }) {
    if (cmd.releaseId) {
      const r = await s.releases.get(cmd.releaseId);
      if (!r) return ephemeral(false, `There is no release ${cmd.releaseId}.`);
      return ephemeral(true, describeRelease(r));
    }
    const active = (await s.releases.active()).filter((r) => !cmd.app || r.app === cmd.app);
    const locks = await lockLines(s, active, cmd.app);
    if (active.length === 0 && locks.length === 0)
      return ephemeral(true, cmd.app ? `No release of ${cmd.app} is in flight.` : 'No release is in flight.');
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
  },
};

/**
 * Who holds each app and environment's lock, since when, and what frees it:
 * a lock is held from the start of a release until it ends, and by a release
 * that failed after changing a region until a person rolls it back or aborts it.
 */
async function lockLines(s: CommandPorts, active: Release[], app?: string): Promise<string[]> {
  const config = s.config();
  const pairs = new Map<string, [string, string]>();
  // With an app named, its environments only: 9,000 apps × environments are not read for one app.
  const apps = app ? [app] : Object.keys(config.apps);
  for (const a of apps) for (const e of Object.keys(config.environments)) pairs.set(`${a}\u0000${e}`, [a, e]);
  for (const r of active) pairs.set(`${r.app}\u0000${r.environment}`, [r.app, r.environment]);
  const wanted = [...pairs.values()].filter(([a]) => !app || a === app);
  const locks = await s.releases.lockInfos(wanted);
  // A lock's holder is almost always in flight, so among `active`; only a stale one is read on its own.
  const holders = new Map<string, Release | undefined>(active.map((r) => [r.id, r]));
  for (const l of locks)
    if (l && !holders.has(l.holder)) holders.set(l.holder, await s.releases.get(l.holder));
  const lines: string[] = [];
  for (const [i, [a, e]] of wanted.entries()) {
    const lock = locks[i];
    if (!lock) continue;
    const holder = holders.get(lock.holder);
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
      line += ` (${holder.state}, requested by ${mention(holder.requestedBy)})${since}`;
      if (holder.state === 'failed')
        line += ` — it changed ${a} in ${e} before failing; roll it back or \`/release abort ${holder.id}\` to free it`;
      else if (holder.state === 'paused')
        line += ` — \`/release resume ${holder.id}\` or \`/release abort ${holder.id}\``;
    }
    lines.push(line);
  }
  return lines;
}
