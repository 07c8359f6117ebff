// Finish job: every region is on the new version; verify and close the release.

import { literal } from '../src/domain/text.ts';
import type { StepData } from '../src/queue/scheduler.ts';
import { builtImage, type JobContext, stepIO, waitWhilePaused } from './context.ts';

export async function finishJob(data: StepData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const g = await waitWhilePaused(ctx, data.releaseId, signal);
  if (!g.go) return `skipped: ${g.why}`;
  const release = g.release;
  await ctx.lifecycle.report(release.id, { type: 'step', to: 'verifying' });
  const image = await builtImage(ctx, release);
  for (const region of release.regions) {
    const last = (await ctx.versions.deploys(release.app, release.environment, region, 1))[0];
    const check =
      last?.releaseId !== release.id
        ? { ok: false as const, reason: "no record of this release's rollout" }
        : await ctx.runners.verify(release, region, image, stepIO(ctx, release.id, signal));
    if (!check.ok) {
      await ctx.lifecycle.report(
        release.id,
        { type: 'fail', reason: `verify ${region}: ${check.reason}` },
        `Verification failed in ${region}: ${literal(check.reason)}`,
      );
      return 'failed';
    }
  }
  await ctx.versions.recordPassed(release.app, release.version, release.environment);
  const minutes = ((Date.now() - release.requestedAt) / 60_000).toFixed(1);
  await ctx.lifecycle.report(
    release.id,
    { type: 'succeed' },
    `Done: ${release.app} ${release.version} runs in ${release.regions.join(', ')} (${minutes} min from request).`,
  );
  return 'succeeded';
}
