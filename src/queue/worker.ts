// The worker process's queues: release steps and timers. Each job runs a
// processor from jobs/; this file adds what every job needs — failure
// handling (transient → retry with backoff, otherwise fail the release with
// the reason) and a shutdown that hands unfinished jobs to the next worker.
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { buildJob } from '../../jobs/build.ts';
import { type JobContext, WorkerStopping } from '../../jobs/context.ts';
import { deployJob } from '../../jobs/deploy.ts';
import { expireJob } from '../../jobs/expire.ts';
import { finishJob } from '../../jobs/finish.ts';
import { LockBusy } from '../../jobs/operation.ts';
import { prepareJob } from '../../jobs/prepare.ts';
import { rebuildJob } from '../../jobs/rebuild.ts';
import { rollbackJob } from '../../jobs/rollback.ts';
import { rollbackAppJob } from '../../jobs/rollback-app.ts';
import { syncJob } from '../../jobs/sync.ts';
import { syncImagesJob } from '../../jobs/sync-images.ts';
import { isTransient } from '../domain/errors.ts';
import type { Logger } from '../logging.ts';
import { redactText } from '../logs/redact.ts';
import { metrics } from '../metrics.ts';
import { closeWorker } from './connection.ts';
import { QUEUES } from './names.ts';
import type { QueuedOperation } from './operations.ts';
import { type PrepareData, STEP_ATTEMPTS, type TimerData } from './scheduler.ts';

/** Stalls a job survives before it fails (see WorkerOptions.maxStalledCount). */
export const DEFAULT_MAX_STALLS = 2;
/** BullMQ's failure reason for a job that exceeded maxStalledCount. */
const STALLED = /stalled more than allowable limit/;

type Processor = (data: never, ctx: JobContext, signal: AbortSignal) => Promise<string>;

/** The release queue's job names and their processors (jobs/). */
const STEPS: Record<string, Processor> = {
  build: buildJob,
  sync: syncJob,
  deploy: deployJob,
  finish: finishJob,
  rollback: rollbackJob,
};

export interface WorkerOptions {
  connection: Redis;
  prefix?: string;
  concurrency?: number;
  /** Lock duration: how soon a job of a crashed worker is picked up by another. */
  lockDuration?: number;
  /**
   * How many times a job may stall (its worker crashed, was killed or blocked its event loop past the
   * lock) and still be picked up again. One more stall fails the job, and its release with the reason:
   * a step that takes its worker down every time must not be retried for ever. Default 2.
   */
  maxStalledCount?: number;
  /** Releases built, synced and pulled ahead at once while they wait (jobs/prepare.ts). Default 1: it is background work. */
  prepareConcurrency?: number;
  /** This worker's name (the pod's): BullMQ records it on every job it takes (`processedBy`). */
  name?: string;
  log: Logger;
}

export interface RunningWorkers {
  close(): Promise<void>;
  /** Why the workers are not taking jobs, or undefined while they run (for /healthz). */
  notRunning(): string | undefined;
}

export function startWorkers(ctx: JobContext, opts: WorkerOptions): RunningWorkers {
  const stopping = new AbortController();
  const common = {
    connection: opts.connection,
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    lockDuration: opts.lockDuration ?? 30_000,
    stalledInterval: Math.max(1000, Math.floor((opts.lockDuration ?? 30_000) / 2)),
    maxStalledCount: opts.maxStalledCount ?? DEFAULT_MAX_STALLS,
    ...(opts.name ? { name: opts.name } : {}),
  };

  /** The worker is stopping: not a failure; the job goes back, untouched, for the next worker. */
  const handBack = async (job: Job, token: string | undefined): Promise<never> => {
    await job.moveToDelayed(Date.now() + 500, token);
    throw new DelayedError();
  };

  const runStep = async (job: Job, token: string | undefined): Promise<string> => {
    const releaseId = (job.data as { releaseId: string }).releaseId;
    const log = opts.log.child({ releaseId, job: job.name, attempt: job.attemptsMade + 1 });
    const timer = metrics.stepSeconds.startTimer({ step: job.name });
    try {
      log.info('step started');
      const processor = STEPS[job.name];
      if (!processor) throw new UnrecoverableError(`unknown step ${job.name}`);
      const result = await processor(job.data as never, ctx, stopping.signal);
      log.info({ result }, 'step done');
      timer({ outcome: 'ok' });
      return result;
    } catch (err) {
      timer({ outcome: 'error' });
      if (err instanceof WorkerStopping || stopping.signal.aborted) await handBack(job, token);
      // Error texts carry command output (a build's failing step, a registry's answer): redacted before
      // they are stored as the release's reason or said in its thread.
      const message = redactText((err as Error).message ?? String(err), ctx.config().redaction);
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? STEP_ATTEMPTS);
      if (!(err instanceof UnrecoverableError) && isTransient(err) && !lastTry) {
        log.warn({ err: message }, 'transient failure, will retry');
        await ctx.announcer.announce({
          kind: 'reply',
          releaseId,
          text: `${job.name}: ${message} — retrying (attempt ${job.attemptsMade + 2} of ${job.opts.attempts ?? STEP_ATTEMPTS}).`,
        });
        throw err;
      }
      log.error({ err: message }, 'step failed');
      const failed = await ctx.lifecycle.report(
        releaseId,
        { type: 'fail', reason: `${job.name}: ${message}` },
        `${job.name} failed: ${message}`,
      );
      if (failed.ok && failed.release.plan.gate.onFailure.value === 'rollback' && job.name === 'deploy') {
        await ctx.lifecycle.rollback(releaseId, message);
      }
      throw err instanceof UnrecoverableError ? err : new UnrecoverableError(message);
    }
  };

  const release = new Worker(QUEUES.release, runStep, { ...common, concurrency: opts.concurrency ?? 8 });
  const timers = new Worker(
    QUEUES.timers,
    async (job: Job<TimerData>, token?: string) => {
      if (job.data.kind === 'expire') return expireJob(job.data, ctx);
      const r = await rebuildJob(job.data, ctx);
      if (r.waiting === 0) return `rebuild ${r.batch.id}: every release requested`;
      // Releases still wait for a slot: look again soon, with the batch as it is now.
      await job.updateData({ kind: 'rebuild', batch: r.batch });
      await job.moveToDelayed(Date.now() + Math.max(1000, ctx.pollMs * 4), token);
      throw new DelayedError();
    },
    { ...common, concurrency: 4 },
  );
  // Operations a person asked for (rollback of an app, image sync): each under the app's lock.
  const operations = new Worker(
    QUEUES.ops,
    async (job: Job<QueuedOperation>) => {
      const op = job.data;
      try {
        if (op.kind === 'rollback') return await rollbackAppJob(op, ctx);
        if (op.kind === 'sync') return await syncImagesJob(op, ctx);
        throw new UnrecoverableError(`unknown operation ${op.kind}`);
      } catch (err) {
        const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        if (err instanceof LockBusy && lastTry) {
          const channel = ctx.config().apps[op.request.app]?.channels?.releases ?? op.actor.channel;
          await ctx.announcer.announce({
            kind: 'message',
            channel,
            text: `Gave up on ${op.id}: ${err.message}, for too long. Ask again when it is free.`,
          });
          return 'gave up waiting for the lock';
        }
        throw err;
      }
    },
    { ...common, concurrency: 4 },
  );
  // Pulling ahead while releases wait: background work, a few at a time, never failing a release.
  const prepares = new Worker(
    QUEUES.prepare,
    async (job: Job<PrepareData>, token?: string) => {
      try {
        return await prepareJob(job.data, ctx, stopping.signal);
      } catch (err) {
        if (!stopping.signal.aborted) throw err;
        return handBack(job, token);
      }
    },
    { ...common, concurrency: opts.prepareConcurrency ?? 1 },
  );
  for (const w of [release, timers, operations, prepares]) {
    w.on('error', (err) => opts.log.error({ err: err.message }, 'worker error'));
  }
  // A job that stalled too often is failed by BullMQ without running the processor (so runStep never
  // sees it): fail its release here, with the reason, instead of leaving it in its step.
  release.on('failed', (job, err) => {
    if (!job || !STALLED.test(err.message)) return;
    const releaseId = (job.data as { releaseId?: string }).releaseId;
    if (!releaseId) return;
    const stalls = (opts.maxStalledCount ?? DEFAULT_MAX_STALLS) + 1;
    const reason = `${job.name}: the worker running it stopped ${stalls} times without finishing (crashed, killed or blocked); not started again`;
    opts.log.error({ releaseId, job: job.name, stalls }, 'step stalled too often');
    ctx.lifecycle
      .report(releaseId, { type: 'fail', reason }, `${reason}.`)
      .catch((e: Error) => opts.log.error({ releaseId, err: e.message }, 'could not fail a stalled release'));
  });
  return {
    notRunning() {
      const stopped = [release, timers, operations, prepares]
        .filter((w) => !w.isRunning())
        .map((w) => w.name);
      return stopped.length ? `BullMQ workers not running: ${stopped.join(', ')}` : undefined;
    },
    async close() {
      stopping.abort();
      await Promise.all([release, timers, operations, prepares].map((w) => closeWorker(w)));
    },
  };
}
