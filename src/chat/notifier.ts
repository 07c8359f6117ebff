// The notify queue consumer: hands each Outbound the domain announced to the
// chat platform's delivery (src/chat/<platform>/delivery.ts), one at a time
// and in order (concurrency 1, and a global concurrency of 1 so several bot
// replicas still keep the order).
//
// The platform decides nothing here: its client neither retries nor waits out
// a 429 by itself; the delivery's `classify` sorts each failure. On a 429 the queue is
// rate-limited for Retry-After and the job goes back to the head of the wait
// list (Worker.RateLimitError), so every later message waits behind it: a
// storm delays messages but loses none and keeps their order. Network errors
// and 5xx do the same with an exponential backoff. Permanent errors (a channel
// that does not exist, a bot not in the channel) are logged and the message
// dropped — retrying them would hold up every other thread forever.
//
// Each step of a job (post, store ts, upload) is recorded under the job's id,
// so a job retried after a rate limit in its second call does not post twice.
import { type Job, type Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Outbound } from '../domain/ports.ts';
import type { Logger } from '../logging.ts';
import { QUEUES } from '../queue/names.ts';
import { type ChatDelivery, Undeliverable } from './port.ts';

export interface NotifierDeps {
  /** Plain Redis connection for the notifier's bookkeeping (sent steps). */
  store: Redis;
  /** BullMQ connection (maxRetriesPerRequest: null). */
  connection: Redis;
  /** The notify queue (QueueAnnouncer.queue): rate limits are set on it. */
  queue: Queue<Outbound>;
  prefix?: string;
  /** The chat platform's outbound client (src/chat/<platform>/delivery.ts). */
  delivery: ChatDelivery;
  log: Logger;
  /** Longest backoff for 5xx / network errors (ms). */
  maxBackoffMs?: number;
}

export interface Notifier {
  worker: Worker<Outbound>;
  close(): Promise<void>;
}

export function startNotifier(deps: NotifierDeps): Notifier {
  const p = deps.prefix ?? 'ferry';
  const key = (...parts: string[]) => [p, 'slack', ...parts].join(':');
  const backoff = new Map<string, number>();
  const maxBackoff = deps.maxBackoffMs ?? 30_000;
  const { delivery, log } = deps;

  /** Runs `fn` once per job and step: a retried job skips what it already did. */
  async function step(job: Job, name: string, fn: () => Promise<string>): Promise<string> {
    const k = key('job', String(job.id));
    const done = await deps.store.hget(k, name);
    if (done !== null) return done;
    const v = await fn();
    await deps.store.multi().hset(k, name, v).expire(k, 86_400).exec();
    return v;
  }

  async function handle(job: Job<Outbound>): Promise<void> {
    await delivery.deliver(job.data, (name, fn) => step(job, name, fn));
  }

  const worker = new Worker<Outbound>(
    QUEUES.notify,
    async (job) => {
      try {
        await handle(job);
        backoff.delete(String(job.id));
      } catch (err) {
        const f = delivery.classify(err);
        if (err instanceof Undeliverable) {
          log.warn(
            { job: job.id, kind: job.data.kind, error: err.message },
            'message dropped: the chat platform refused it',
          );
          backoff.delete(String(job.id));
          return;
        }
        if (f.kind === 'permanent') throw err;
        let ms: number;
        if (f.kind === 'ratelimited') ms = f.retryAfterMs;
        else {
          const n = (backoff.get(String(job.id)) ?? 0) + 1;
          backoff.set(String(job.id), n);
          ms = Math.min(maxBackoff, 250 * 2 ** Math.min(n, 10));
        }
        log.info(
          { job: job.id, kind: job.data.kind, waitMs: ms, why: f.kind === 'ratelimited' ? '429' : f.detail },
          'Slack busy; message waits at the head of the queue',
        );
        await deps.queue.rateLimit(ms);
        throw Worker.RateLimitError();
      }
    },
    {
      connection: deps.connection,
      ...(deps.prefix ? { prefix: deps.prefix } : {}),
      concurrency: 1,
      // A limiter must be set for queue.rateLimit() to hold the worker; this one never binds in practice.
      limiter: { max: 1000, duration: 1000 },
    },
  );
  worker.on('error', (err) => log.warn({ err: err.message }, 'notify worker error'));
  void deps.queue
    .setGlobalConcurrency(1)
    .catch((err: Error) => log.warn({ err: err.message }, 'setGlobalConcurrency failed'));
  return {
    worker,
    async close() {
      await worker.close();
    },
  };
}
