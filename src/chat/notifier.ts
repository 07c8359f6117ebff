// The notify queue consumer: hands each Outbound the domain announced to the
// chat platform's delivery (src/chat/<platform>/delivery.ts).
//
// Order is kept per conversation, not globally: each message goes to a lane
// (the release's thread, a channel, an alert; laneOf) and a lane sends one
// message at a time, in the order they were announced, while other lanes go
// on (src/queue/lanes.ts). The platform paces its own calls (Slack's tiers:
// slack/delivery.ts) and its `classify` sorts each failure: a 429 has already
// held only the bucket it came from, so the message retries in its lane at
// once and waits there; network errors and 5xx retry in the lane with an
// exponential backoff. Undeliverable messages (a channel that does not exist,
// a bot not in the channel) are logged and dropped — retrying them would hold
// up the thread forever.
//
// Within one process, BullMQ hands jobs out in order and they enter their
// lanes in that order. Across bot replicas, each message carries its place in
// its lane (given by the announcer) and waits until the places before it are
// settled, whichever replica holds them (src/queue/lane-order.ts).
//
// Each step of a job (post, store ts, upload) is recorded under the job's id,
// so a job retried after a rate limit in its second call does not post twice.
import { setTimeout as sleep } from 'node:timers/promises';
import { DelayedError, type Job, type Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logging.ts';
import { closeWorker } from '../queue/connection.ts';
import { LaneGate, type LaneMessage, laneOf } from '../queue/lane-order.ts';
import { Lanes } from '../queue/lanes.ts';
import { QUEUES } from '../queue/names.ts';
import { type ChatDelivery, Undeliverable } from './port.ts';

export interface NotifierDeps {
  /** Plain Redis connection for the notifier's bookkeeping (sent steps). */
  store: Redis;
  /** BullMQ connection (maxRetriesPerRequest: null). */
  connection: Redis;
  /** The notify queue (QueueAnnouncer.queue). */
  queue: Queue<LaneMessage>;
  prefix?: string;
  /** The chat platform's outbound client (src/chat/<platform>/delivery.ts). */
  delivery: ChatDelivery;
  log: Logger;
  /** Longest backoff for 5xx / network errors (ms). */
  maxBackoffMs?: number;
  /**
   * Messages in flight at once across lanes (default 256; FERRY_NOTIFY_CONCURRENCY). A message waiting on
   * a paced bucket holds one of these; one waiting for an earlier place of its lane gives it back after
   * TURN_YIELD_MS. More is not faster: at 2,048, before that give-back, a thousand releases at once filled
   * every slot with messages waiting for earlier places still queued behind them (bench/results/scale.md).
   */
  concurrency?: number;
  /** How long a lane may stand still before its next message goes anyway (lane-order.ts; default 20 s). */
  laneStallMs?: number;
}

export { laneOf } from '../queue/lane-order.ts';

/** How long a message waits for its lane's turn while holding a queue slot, before giving it back. */
const TURN_YIELD_MS = 1000;
/** How soon a message that gave its slot back asks for its turn again. */
const TURN_RETRY_MS = 200;

export interface Notifier {
  worker: Worker<LaneMessage>;
  close(): Promise<void>;
}

export function startNotifier(deps: NotifierDeps): Notifier {
  const p = deps.prefix ?? 'ferry';
  const key = (...parts: string[]) => [p, 'slack', ...parts].join(':');
  const maxBackoff = deps.maxBackoffMs ?? 30_000;
  const { delivery, log } = deps;
  const lanes = new Lanes();
  const gate = new LaneGate(deps.store, {
    ...(deps.prefix ? { prefix: deps.prefix } : {}),
    ...(deps.laneStallMs ? { stallMs: deps.laneStallMs } : {}),
    onStall: (lane, seq, settled) =>
      log.warn({ lane, seq, settled }, 'a lane stood still with nobody on it; its next message goes on'),
  });
  let closing = false;

  /** Runs `fn` once per job and step: a retried job skips what it already did. */
  async function step(job: Job, name: string, fn: () => Promise<string>): Promise<string> {
    const k = key('job', String(job.id));
    const done = await deps.store.hget(k, name);
    if (done !== null) return done;
    const v = await fn();
    await deps.store.multi().hset(k, name, v).expire(k, 86_400).exec();
    return v;
  }

  /** Sends one message, retrying in its lane until it is sent or refused for good. */
  async function send(job: Job<LaneMessage>, token: string | undefined, lane: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await delivery.deliver(job.data, (name, fn) => step(job, name, fn));
        return;
      } catch (err) {
        if (err instanceof Undeliverable) {
          log.warn(
            { job: job.id, kind: job.data.kind, error: err.message },
            'message dropped: the chat platform refused it',
          );
          return;
        }
        const f = delivery.classify(err);
        if (f.kind === 'permanent') throw err;
        if (f.kind === 'later') {
          // Its turn on the platform's pace is reserved but far off: the slot goes to other lanes until
          // then, and the lane stays held (its later messages wait for this one, and do not call it stalled).
          await gate.hold(lane, f.afterMs);
          return await handBack(job, token, f.afterMs);
        }
        // A 429 has already held its bucket in the delivery: the next try waits there, other lanes do not.
        const ms = f.kind === 'ratelimited' ? 0 : Math.min(maxBackoff, 250 * 2 ** Math.min(attempt, 10));
        log.info(
          {
            job: job.id,
            kind: job.data.kind,
            lane: laneOf(job.data),
            waitMs: ms,
            why: f.kind === 'ratelimited' ? '429' : f.detail,
          },
          'chat platform busy; the message waits in its lane',
        );
        if (closing) await handBack(job, token, Math.max(ms, 1000));
        if (ms) await sleep(ms);
      }
    }
  }

  /** Shutting down: hands the job back to the queue rather than hold the close. */
  async function handBack(job: Job<LaneMessage>, token: string | undefined, ms = 1000): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  /** One job: its turn in its lane (across replicas), then in this process's lane, then settled. */
  async function handle(job: Job<LaneMessage>, token: string | undefined): Promise<void> {
    const lane = laneOf(job.data);
    const seq = job.data.laneSeq;
    if (seq !== undefined) {
      const turn = await gate.turn(lane, seq, () => closing, {
        yieldAfterMs: TURN_YIELD_MS,
        ...(job.data.laneWait ? { resume: job.data.laneWait } : {}),
      });
      if (turn === 'stopped') await handBack(job, token);
      if (typeof turn === 'object') {
        // Still waiting for an earlier place: give the slot back (that place may need it) and ask again,
        // when that place is due if it is waiting for its turn on the platform's pace.
        await job.updateData({ ...job.data, laneWait: turn.later });
        await handBack(job, token, Math.max(TURN_RETRY_MS, turn.dueInMs ?? 0));
      }
    }
    // While this message is in flight (waiting on a paced bucket, uploading, retrying), other
    // replicas' later messages of the lane see it busy and keep waiting instead of calling it stalled.
    const heartbeat = seq === undefined ? undefined : gate.keepBusy(lane);
    try {
      await lanes.run(lane, () => send(job, token, lane));
    } catch (err) {
      // A message handed back is not settled; one refused for good is, so its lane goes on.
      if (seq !== undefined && !(err instanceof DelayedError)) await gate.settle(lane, seq);
      throw err;
    } finally {
      heartbeat?.stop();
    }
    if (seq !== undefined) await gate.settle(lane, seq);
  }

  const worker = new Worker<LaneMessage>(QUEUES.notify, (job, token) => handle(job, token), {
    connection: deps.connection,
    ...(deps.prefix ? { prefix: deps.prefix } : {}),
    concurrency: deps.concurrency ?? Number(process.env.FERRY_NOTIFY_CONCURRENCY ?? 256),
    // A message is never given up for its worker having stalled (a bot blocked or killed mid-send): each
    // step of it is recorded (step()), so running it again sends nothing twice, and a card dropped here
    // would leave its release without one.
    maxStalledCount: 1_000,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'notify worker error'));
  // Earlier versions pinned the queue to one message at a time across replicas; lanes replace that.
  void deps.queue
    .removeGlobalConcurrency()
    .catch((err: Error) => log.warn({ err: err.message }, 'removeGlobalConcurrency failed'));
  return {
    worker,
    async close() {
      closing = true;
      await closeWorker(worker);
    },
  };
}

/** What a bot process's runtime provides for its notify-queue consumer. */
export interface NotifierRuntime {
  store: Redis;
  queue: Redis;
  announcer: { queue: Queue<LaneMessage> };
  prefix?: string | undefined;
  log: Logger;
}

/** The notify-queue consumer of a bot process, sending through `delivery`. */
export function startRuntimeNotifier(rt: NotifierRuntime, delivery: ChatDelivery): Notifier {
  return startNotifier({
    store: rt.store,
    connection: rt.queue,
    queue: rt.announcer.queue,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    delivery,
    log: rt.log.child({ part: 'notifier' }),
  });
}
