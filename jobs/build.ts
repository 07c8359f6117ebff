// Build job: the environment's image of the version, built once and recorded.
import type { BuildPin, StepIO } from '../src/domain/ports.ts';
import type { Release } from '../src/domain/release.ts';
import type { StepData } from '../src/queue/scheduler.ts';
import { type JobContext, stepIO, waitWhilePaused } from './context.ts';

export async function buildJob(data: StepData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const g = await waitWhilePaused(ctx, data.releaseId, signal);
  if (!g.go) return `skipped: ${g.why}`;
  const release = g.release;
  await ctx.lifecycle.report(release.id, { type: 'step', to: 'building' });
  return buildOnce(ctx, release, stepIO(ctx, release.id, signal), signal);
}

/**
 * The environment's image of the release's version: the recorded one, or a
 * new build recorded for every later release. One build at a time per app,
 * version and environment across workers — the release's build step and a
 * pre-pull started while it waited (jobs/prepare.ts) may ask at once, and two
 * builds of one version would record two digests.
 */
export async function buildOnce(
  ctx: JobContext,
  release: Release,
  io: StepIO,
  signal?: AbortSignal,
): Promise<string> {
  return ctx.releases.exclusive(
    `build:${release.app}:${release.version}:${release.environment}`,
    async () => {
      const existing = (await ctx.versions.get(release.app, release.version))?.images[release.environment];
      if (existing) {
        // A version built for an environment is never rebuilt: the recorded digest is the image.
        // Said once per release: its pull-ahead and its build step both get here.
        await io.say(`Image already built: \`${existing.image}@${existing.digest}\``, { once: 'built' });
        return existing.digest;
      }
      // The version's record fixes the code and the stack for every environment:
      // a stack rebuild pins both before its release; an ordinary version pins
      // the stack at its first build, so prod is built on the stack test passed with.
      const record = await ctx.versions.get(release.app, release.version);
      const pin: BuildPin = {
        // A rebuild builds the exact commit of the version it rebuilds.
        ref: record?.rebuildOf && record.commit ? record.commit : (record?.ref ?? release.version),
        ...(record?.stack ? { stack: record.stack } : {}),
      };
      const built = await ctx.runners.build(release, io, pin);
      if (built.pinnedStack && !record?.stack)
        await ctx.versions.pin(release.app, release.version, {
          ref: record?.ref ?? release.version,
          stack: built.pinnedStack,
        });
      await ctx.versions.recordImage(
        release.app,
        release.version,
        release.environment,
        {
          image: built.image,
          digest: built.digest,
          builtAt: Date.now(),
          releaseId: release.id,
          ...(built.stack ? { stack: built.stack } : {}),
          ...(built.base ? { base: built.base } : {}),
        },
        built.commit,
      );
      return built.digest;
    },
    signal,
  );
}
