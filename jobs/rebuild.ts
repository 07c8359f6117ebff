// Rebuild job: requests the next waiting releases of a stack rebuild as
// earlier ones end (the concurrency limit is the batch's). The worker puts
// the job back, delayed, with the batch as updated, while releases still wait.
import type { TimerData } from '../src/queue/scheduler.ts';
import { continueRebuild, type RebuildBatch } from '../src/runners/rebuild-service.ts';
import type { JobContext } from './context.ts';

export async function rebuildJob(
  data: Extract<TimerData, { kind: 'rebuild' }>,
  ctx: JobContext,
): Promise<{ batch: RebuildBatch; waiting: number }> {
  const r = await continueRebuild(data.batch, { lifecycle: ctx.lifecycle, releases: ctx.releases });
  if (r.said.length && data.batch.channel) {
    // The person who typed the command hears about the releases requested on their behalf.
    await ctx.announcer.announce({
      kind: 'ephemeral',
      channel: data.batch.channel,
      user: data.batch.userId,
      text: `Rebuild of stack ${data.batch.stack}: ${r.said.join('\n')}`,
    });
  }
  return { batch: r.batch, waiting: r.waiting };
}
