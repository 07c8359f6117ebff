// What every job processor gets: the lifecycle, the stores and the step
// runners. Processors are plain async functions of (data, context), so tests
// can run them with the real stores and runners of their choice.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FerryConfig } from '../src/domain/config.ts';
import type { Lifecycle } from '../src/domain/lifecycle.ts';
import type {
  Announcer,
  BuiltImage,
  OperationLocks,
  ReleaseRepository,
  StepIO,
  StepRunners,
} from '../src/domain/ports.ts';
import { type Release, TERMINAL } from '../src/domain/release.ts';
import type { VersionRepository } from '../src/domain/version.ts';
import type { OperationRunners } from '../src/ports.ts';

export interface JobContext {
  config: () => FerryConfig;
  lifecycle: Lifecycle;
  releases: ReleaseRepository;
  versions: VersionRepository;
  runners: StepRunners;
  announcer: Announcer;
  /** How often a waiting job looks at the stored state again. */
  pollMs: number;
  /** The app and environment locks of operations (rollback, sync) outside a release. */
  locks?: OperationLocks;
  /** The work of those operations; a worker without clusters or registries has none. */
  operations?: OperationRunners;
}

/** What a step should do given the release's stored state. */
export type Go = { go: true; release: Release } | { go: false; why: string };

export async function shouldRun(ctx: JobContext, releaseId: string): Promise<Go> {
  const release = await ctx.releases.get(releaseId);
  if (!release) return { go: false, why: `release ${releaseId} is gone` };
  if (TERMINAL.has(release.state) || release.state === 'failed' || release.state === 'rolling-back') {
    return { go: false, why: `release is ${release.state}` };
  }
  return { go: true, release };
}

/** Thrown when the worker shuts down mid-job: the job goes back to the queue, untouched, for the next worker. */
export class WorkerStopping extends Error {
  constructor() {
    super('worker stopping');
  }
}

/** Waits while a person has the release paused; returns the release once it may go on, or why it must stop. */
export async function waitWhilePaused(ctx: JobContext, releaseId: string, signal?: AbortSignal): Promise<Go> {
  for (;;) {
    const g = await shouldRun(ctx, releaseId);
    if (!g.go || g.release.state !== 'paused') return g;
    if (signal?.aborted) throw new WorkerStopping();
    await sleep(ctx.pollMs);
  }
}

export function stepIO(
  ctx: Pick<JobContext, 'announcer' | 'releases'>,
  releaseId: string,
  signal: AbortSignal,
): StepIO {
  return {
    signal,
    async say(text, extra) {
      if (extra?.once && !(await ctx.releases.once(`${releaseId}:said:${extra.once}`, 7 * 86_400))) return;
      await ctx.announcer.announce({
        kind: 'reply',
        releaseId,
        text,
        ...(extra?.snippet ? { snippet: extra.snippet } : {}),
        ...(extra?.file ? { file: extra.file } : {}),
      });
    },
  };
}

export async function builtImage(ctx: JobContext, release: Release): Promise<BuiltImage> {
  const rec = await ctx.versions.get(release.app, release.version);
  const img = rec?.images[release.environment];
  if (!img)
    throw new Error(
      `no image recorded for ${release.app} ${release.version} in ${release.environment}; the build step has not finished`,
    );
  return { image: img.image, digest: img.digest, cached: true };
}
