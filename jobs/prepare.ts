// Prepare job: while a release waits for its approvals or its turn, build its
// image, sync it to its regions and have the nodes that will run it pull it,
// so that once it may start its pods start on warm nodes. It changes nothing
// a person relies on: the image is the one the release's own build step would
// record (one build per version and environment, jobs/build.ts), and the only
// pods it makes are short-lived pull pods, a few nodes at a time.
//
// It never fails the release: what it could not do, the release's own steps
// do later. A reject, an expiry or an abort stops it within one poll, and the
// pull pods it made are deleted; so does the release reaching its deploy
// step, whose batches pre-warm their own nodes.
import { pullAheadStopReason as stopReason } from '../src/domain/release.ts';
import { literal } from '../src/domain/text.ts';
import type { PrepareData } from '../src/queue/scheduler.ts';
import { buildOnce } from './build.ts';
import { builtImage, type JobContext, stepIO } from './context.ts';

export async function prepareJob(data: PrepareData, ctx: JobContext, signal: AbortSignal): Promise<string> {
  const release = await ctx.releases.get(data.releaseId);
  const before = stopReason(release);
  if (!release || before) return `skipped: ${before}`;
  const settings = ctx.config().prePull;
  if (!settings.whileWaiting || release.plan.skip.prewarm.value) return 'skipped: pre-pull is off';

  // Stop as soon as the release no longer waits (or the worker stops).
  const stop = new AbortController();
  let why: string | undefined;
  const onWorkerStop = () => stop.abort(signal.reason);
  signal.addEventListener('abort', onWorkerStop, { once: true });
  const watch = setInterval(() => {
    ctx.releases
      .get(release.id)
      .then((r) => {
        why = stopReason(r);
        if (why) stop.abort(new Error(why));
      })
      .catch(() => {});
  }, ctx.pollMs);
  const io = stepIO(ctx, release.id, stop.signal);
  const t0 = Date.now();
  try {
    await buildOnce(ctx, release, io, stop.signal);
    stop.signal.throwIfAborted();
    const image = await builtImage(ctx, release);
    await ctx.runners.sync(release, image, io);
    const pulled: string[] = [];
    for (const region of release.regions) {
      stop.signal.throwIfAborted();
      const rollout = await ctx.runners.rollout(release, region, image, io);
      if (!rollout.prewarm) continue;
      const { replicas } = await rollout.prepare();
      const nodes = await rollout.prewarm(replicas, {
        nodesAtOnce: settings.nodesAtOnce,
        purpose: 'prepull',
      });
      pulled.push(`${region} (${nodes} node${nodes === 1 ? '' : 's'})`);
    }
    if (pulled.length > 0 && (await ctx.releases.once(`${release.id}:prepull-done`, 7 * 86_400)))
      await io.say(
        `While waiting: image built, synced and pulled in ${pulled.join(', ')} in ${Math.round((Date.now() - t0) / 100) / 10} s. The rollout starts on warm nodes.`,
      );
    return `pulled in ${pulled.join(', ') || 'no region'}`;
  } catch (err) {
    if (signal.aborted) throw err; // the worker is stopping: the job goes back to the queue
    if (why) {
      if (await ctx.releases.once(`${release.id}:prepull-stopped`, 7 * 86_400))
        await stepIO(ctx, release.id, signal).say(`Pre-pull stopped: ${why}.`);
      return `stopped: ${why}`;
    }
    // Not a reason to fail anything: the release's own steps build, sync and pull when it runs.
    const message = err instanceof Error ? err.message : String(err);
    await stepIO(ctx, release.id, signal).say(
      `Could not pull ahead while waiting (${literal(message)}); the release pulls when it runs.`,
    );
    return `failed: ${message}`;
  } finally {
    clearInterval(watch);
    signal.removeEventListener('abort', onWorkerStop);
  }
}
