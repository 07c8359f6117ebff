// Sync job: the image from the primary registry to each region of the release.
import type { StepData } from '../src/queue/scheduler.ts';
import { builtImage, type JobContext, stepIO, waitWhilePaused } from './context.ts';

export async function syncJob(data: StepData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const g = await waitWhilePaused(ctx, data.releaseId, signal);
  if (!g.go) return `skipped: ${g.why}`;
  const release = g.release;
  await ctx.lifecycle.report(release.id, { type: 'step', to: 'syncing' });
  await ctx.runners.sync(release, await builtImage(ctx, release), stepIO(ctx, release.id, signal));
  return 'synced';
}
