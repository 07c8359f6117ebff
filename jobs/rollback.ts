// Rollback job: puts every region this release touched back on the image it
// ran before, newest region first. Used by abort and by a failing gate that
// waited for a person.
import { formatDuration } from '../src/domain/duration.ts';
import type { RollbackData } from '../src/queue/scheduler.ts';
import { builtImage, type JobContext, stepIO } from './context.ts';

export async function rollbackJob(data: RollbackData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const release = await ctx.releases.get(data.releaseId);
  if (!release) return 'gone';
  const io = stepIO(ctx, release.id, signal);
  const touched = release.regions
    .filter((r) => (release.progress?.[r] ?? 0) > 0 || release.batch?.region === r)
    .reverse();
  const t0 = Date.now();
  if (touched.length > 0) {
    const image = await builtImage(ctx, release);
    for (const region of touched) {
      const rollout = await ctx.runners.rollout(release, region, image, io);
      await rollout.prepare();
      await rollout.rollback();
      await io.say(`${region}: back on the previous version.`);
    }
  }
  if (release.state === 'failed')
    await ctx.lifecycle.report(release.id, { type: 'rollback-start', by: 'ferry', reason: data.reason });
  const now = await ctx.releases.get(release.id);
  if (now?.state === 'rolling-back') {
    await ctx.lifecycle.report(
      release.id,
      { type: 'rolled-back' },
      `Rolled back ${touched.join(', ') || 'nothing (no region had changed)'} in ${formatDuration(Date.now() - t0)}.`,
    );
  } else if (touched.length) {
    await io.say(`Rolled back ${touched.join(', ')} in ${formatDuration(Date.now() - t0)}.`);
  }
  return 'rolled back';
}
