// Rollback of an app in an environment that a person asked for
// (`/release rollback`): every region back on the previous (or named)
// recorded image at once, under the app and environment's lock, with an audit
// entry; the outcome is posted in the app's releases channel.
import { formatDuration } from '../src/domain/duration.ts';
import { literal, mention } from '../src/domain/text.ts';
import type { Operation } from '../src/ports.ts';
import type { JobContext } from './context.ts';
import { underLock } from './operation.ts';

export type RollbackOperation = Extract<Operation, { kind: 'rollback' }> & { id: string };

export async function rollbackAppJob(op: RollbackOperation, ctx: JobContext): Promise<string> {
  const runner = ctx.operations?.rollback;
  if (!runner) throw new Error('this worker has no rollback runner');
  const { app, environment } = op.request;
  const deadlineMs = runner.deadlineMs(environment);
  const r = await underLock(
    ctx,
    { id: op.id, kind: 'rollback', app, environments: [environment], actor: op.actor, ttlMs: deadlineMs },
    async () => {
      // Read again under the lock: a release may have deployed since the bot checked.
      const targets = await runner.targets(op.request);
      if (!targets.ok)
        return {
          ok: false,
          text: `Rollback of ${app} in ${environment}: ${targets.reason}`,
          detail: targets.reason,
        };
      const out = await runner.run(op.id, app, environment, targets.targets, deadlineMs);
      const done = out.done
        .map((d) => `${d.region} → ${d.version} (${d.replicas} pods, ${formatDuration(d.ms)})`)
        .join(', ');
      const total = formatDuration(out.ms);
      if (out.failed.length) {
        const failed = out.failed.map((f) => `${f.region}: ${literal(f.reason)}`).join('; ');
        return {
          ok: false,
          text: `Rollback of ${app} in ${environment} by ${mention(op.actor.userId)} failed after ${total}: ${failed}${done ? `. Done: ${done}` : ''}.`,
          detail: `failed: ${out.failed.map((f) => f.region).join(', ')}`,
        };
      }
      return {
        ok: true,
        text: `Rolled back ${app} in ${environment} in ${total}, no build: ${done}.`,
        detail: out.done.map((d) => `${d.region} → ${d.version}`).join(', '),
      };
    },
  );
  return r.ok ? 'rolled back' : `not rolled back: ${r.detail}`;
}
