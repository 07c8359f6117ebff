// Build job: the environment's image of the version, built once and recorded.
import type { StepData } from '../src/queue/scheduler.ts';
import { type JobContext, stepIO, waitWhilePaused } from './context.ts';

export async function buildJob(data: StepData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const g = await waitWhilePaused(ctx, data.releaseId, signal);
  if (!g.go) return `skipped: ${g.why}`;
  const release = g.release;
  await ctx.lifecycle.report(release.id, { type: 'step', to: 'building' });
  const existing = (await ctx.versions.get(release.app, release.version))?.images[release.environment];
  if (existing) {
    // A version built for an environment is never rebuilt: the recorded digest is the image.
    await stepIO(ctx, release.id, signal).say(
      `Image already built: \`${existing.image}@${existing.digest}\``,
    );
    return existing.digest;
  }
  const built = await ctx.runners.build(release, stepIO(ctx, release.id, signal));
  await ctx.versions.recordImage(
    release.app,
    release.version,
    release.environment,
    { image: built.image, digest: built.digest, builtAt: Date.now(), releaseId: release.id },
    built.commit,
  );
  return built.digest;
}
