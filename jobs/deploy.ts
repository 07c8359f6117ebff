// Deploy job: one region's rollout (or several at once when the plan says
// parallel), batch by batch. Kubernetes moves the pods; this job decides the
// pace: apply a batch, watch the gate, wait for a person where the plan asks,
// and stop for pause, abort or a failing gate. Progress is stored after each
// gate, so a restarted job re-applies the batch in flight (idempotent) and
// goes on from there — never a second rollout, never a half-applied batch.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import { afterVerdict } from '../src/domain/analysis.ts';
import { durationMs, formatDuration } from '../src/domain/duration.ts';
import { podsAfterBatch } from '../src/domain/plan.ts';
import type { BuiltImage, RegionRollout } from '../src/domain/ports.ts';
import type { Release } from '../src/domain/release.ts';
import { literal } from '../src/domain/text.ts';
import type { StepData } from '../src/queue/scheduler.ts';
import {
  builtImage,
  type JobContext,
  shouldRun,
  stepIO,
  WorkerStopping,
  waitWhilePaused,
} from './context.ts';

class Stop extends Error {}

/** Waits between polls; ends early, without throwing, when the job is cancelled (checked next). */
async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await sleepFor(ms, undefined, { signal }).catch(() => {});
}

/** Between batches: stop for abort/failure, wait while paused. */
async function checkpoint(ctx: JobContext, id: string, signal: AbortSignal): Promise<Release> {
  const g = await waitWhilePaused(ctx, id, signal);
  if (!g.go) throw new Stop(g.why);
  return g.release;
}

async function waitForPromotion(ctx: JobContext, id: string, signal: AbortSignal): Promise<void> {
  for (;;) {
    const g = await shouldRun(ctx, id);
    if (!g.go) throw new Stop(g.why);
    if (g.release.state === 'deploying' && !g.release.awaitingPromotion) return;
    if (signal.aborted) throw new WorkerStopping();
    await sleep(ctx.pollMs, signal);
  }
}

async function rolloutRegion(
  ctx: JobContext,
  releaseId: string,
  region: string,
  image: BuiltImage,
  signal: AbortSignal,
): Promise<void> {
  const io = stepIO(ctx, releaseId, signal);
  let release = await checkpoint(ctx, releaseId, signal);
  const rollout: RegionRollout = await ctx.runners.rollout(release, region, image, io);
  const { replicas } = await rollout.prepare();
  const batches = release.plan.batches.value;
  const started = Date.now();
  const done = release.progress?.[region] ?? 0;
  // Each of these is said once per region and point: a step taken over from a dead worker says it
  // resumes, and a second takeover at the same point (a worker and then the Redis primary lost) does
  // not say it again.
  const saidOnce = (what: string) => ctx.releases.once(`${releaseId}:${region}:${what}`, 7 * 86_400);
  if (done === 0 && (await saidOnce('rollout-start')))
    await io.say(
      `${region}: rolling out to ${replicas} pods in ${batches.length} batch${batches.length === 1 ? '' : 'es'}.`,
    );
  else if (await saidOnce(`resume-after-${done}`))
    await io.say(
      done === 0
        ? `${region}: resuming; batch 1/${batches.length} starts again.`
        : `${region}: resuming after batch ${done}/${batches.length}.`,
    );
  // Pre-rollout webhooks: a no stops the release before any pod changes (nothing to roll back).
  const pre = ctx.runners.judge
    ? await ctx.runners.judge.beforeRollout(release, region, io)
    : { ok: true as const };
  if (!pre.ok) {
    const reason = `${region}: ${pre.reason}`;
    await ctx.lifecycle.report(
      releaseId,
      { type: 'fail', reason },
      `${literal(reason)}. Nothing was changed.`,
    );
    throw new UnrecoverableError(reason);
  }
  for (let i = done; i < batches.length; i++) {
    release = await checkpoint(ctx, releaseId, signal);
    const batch = batches[i] as (typeof batches)[number];
    const pods = podsAfterBatch(batch.size, replicas);
    if (!release.plan.skip.prewarm.value && rollout.prewarm) await rollout.prewarm(pods);
    const deadlineMs = durationMs(release.plan.gate.progressDeadline.value);
    const maxRestarts = release.plan.gate.maxRestarts.value;
    const placed = await rollout.applyBatch(pods, i + 1, { deadlineMs, maxRestarts });
    await ctx.lifecycle.report(releaseId, {
      type: 'batch',
      region,
      index: i + 1,
      total: batches.length,
      pods,
      replicas,
    });
    // New pods that never became Ready fail the batch like a failing gate.
    let gate = placed.ok
      ? await rollout.gate(pods, durationMs(batch.pause), maxRestarts, deadlineMs)
      : placed;
    // Ready is not enough: the batch's metrics and confirm-promotion webhooks judge it too.
    if (gate.ok && ctx.runners.judge) {
      const judged = await ctx.runners.judge.judgeBatch(
        release,
        region,
        { index: i + 1, total: batches.length, pods, replicas },
        io,
      );
      const next = afterVerdict(judged.verdict, release.plan.gate.onFailure.value);
      if (next === 'rollback') gate = { ok: false, reason: judged.reason };
      else if (next === 'hold') {
        // Failed under a wait-for-a-person plan (degraded), or could not judge at all: a person decides.
        await ctx.releases.patch(releaseId, (r) => ({ ...r, awaitingPromotion: true, hold: judged.reason }));
        await ctx.announcer.announce({ kind: 'card', releaseId });
        await io.say(
          `${region} batch ${i + 1}/${batches.length}: ${literal(judged.reason)}. ${
            judged.verdict === 'inconclusive'
              ? 'Ferry could not judge this batch, so it does not go on by itself.'
              : `Stopped here as the plan says (${release.plan.gate.onFailure.source}).`
          } Waiting for a person: Continue, or Roll back.`,
        );
        await waitForPromotion(ctx, releaseId, signal);
        await io.say(`${region} batch ${i + 1}/${batches.length}: continued by a person.`);
      }
    }
    if (!gate.ok) {
      const reason = `${region} batch ${i + 1}/${batches.length}: ${gate.reason}`;
      if (release.plan.gate.onFailure.value === 'rollback') {
        await io.say(`${literal(reason)}. Rolling ${region} back.`);
        const t0 = Date.now();
        await rollout.rollback();
        await ctx.lifecycle.report(releaseId, { type: 'fail', reason });
        await ctx.lifecycle.report(releaseId, { type: 'rollback-start', by: 'ferry', reason });
        await ctx.lifecycle.report(
          releaseId,
          { type: 'rolled-back' },
          `${region} rolled back in ${formatDuration(Date.now() - t0)}.`,
        );
      } else {
        await ctx.lifecycle.report(
          releaseId,
          { type: 'fail', reason },
          `${literal(reason)}. Stopped here as the plan says (${release.plan.gate.onFailure.source}); roll back with \`/release rollback ${release.app} to ${release.environment}\` or the button.`,
        );
      }
      throw new UnrecoverableError(reason);
    }
    await ctx.releases.patch(releaseId, (r) => ({ ...r, progress: { ...r.progress, [region]: i + 1 } }));
    if (batch.manualPromotion && i + 1 < batches.length) {
      await ctx.releases.patch(releaseId, (r) => ({ ...r, awaitingPromotion: true }));
      await ctx.announcer.announce({ kind: 'card', releaseId });
      await io.say(
        `${region}: batch ${i + 1}/${batches.length} is healthy. Waiting for a person to promote the next batch.`,
      );
      await waitForPromotion(ctx, releaseId, signal);
    }
  }
  if (ctx.runners.judge) await ctx.runners.judge.afterRollout(release, region, io);
  await ctx.versions.recordDeploy({
    app: release.app,
    environment: release.environment,
    region,
    version: release.version,
    digest: image.digest,
    image: image.image,
    releaseId,
    at: Date.now(),
  });
  await io.say(
    `${region}: all ${replicas} pods on ${release.version} (${formatDuration(Date.now() - started)}).`,
  );
}

export async function deployJob(data: StepData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const g = await waitWhilePaused(ctx, data.releaseId, signal);
  if (!g.go) return `skipped: ${g.why}`;
  const release = g.release;
  await ctx.lifecycle.report(release.id, { type: 'step', to: 'deploying' });
  const image = await builtImage(ctx, release);
  const regions = data.regions ?? release.regions;
  try {
    if (regions.length > 1) {
      const results = await Promise.allSettled(
        regions.map((r) => rolloutRegion(ctx, release.id, r, image, signal)),
      );
      const failed = results.flatMap((r, i) =>
        r.status === 'rejected' ? [`${regions[i]}: ${(r.reason as Error).message}`] : [],
      );
      if (failed.length) throw new UnrecoverableError(failed.join('; '));
    } else {
      await rolloutRegion(ctx, release.id, regions[0] as string, image, signal);
    }
  } catch (err) {
    if (err instanceof Stop) return `stopped: ${err.message}`;
    if (err instanceof UnrecoverableError) {
      const later = release.regions.slice(release.regions.indexOf(regions[regions.length - 1] as string) + 1);
      if (later.length && !release.plan.continueOnRegionFailure.value) {
        await stepIO(ctx, release.id, signal).say(
          `Not starting ${later.join(', ')}: ${regions.join(', ')} failed.`,
        );
      }
    }
    throw err;
  }
  return `deployed to ${regions.join(', ')}`;
}
