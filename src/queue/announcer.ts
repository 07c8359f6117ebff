// Outbound messages go through a queue, so a chat outage or rate limit
// delays them but loses none. Each message takes its lane's next place
// (lane-order.ts) as it is queued, and the notifiers (in the bot processes)
// send each lane in that order. Every message is redacted on its way in (build
// logs, log snippets, alert lines, error messages with command output), so no
// secret is stored in the queue or reaches chat.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Announcer, Outbound } from '../domain/ports.ts';
import { type RedactionPattern, redactOutbound } from '../logs/redact.ts';
import { LaneGate, type LaneMessage, laneOf } from './lane-order.ts';
import { QUEUES } from './names.ts';

/** The queue priority of messages nobody is waiting on this second (lower numbers go first; none goes before all). */
const LATER = 10;

/**
 * What a person is waiting for goes ahead of the queue: a new release's card (its lane's first message),
 * an alert's first post, an answer to them. Replies, card edits and repeats follow in their order. A
 * thousand releases in a minute queue some three thousand messages; in one line, a new card waited
 * seconds behind them (bench/scale.ts). Order within a thread is the lanes' to keep, not the queue's.
 */
function awaited(m: Outbound, laneSeq: number): boolean {
  return m.kind === 'ephemeral' || (laneSeq === 1 && (m.kind === 'card' || m.kind === 'alert'));
}

export class QueueAnnouncer implements Announcer {
  readonly queue: Queue<LaneMessage>;

  private readonly patterns: () => readonly RedactionPattern[];
  private readonly lanes: LaneGate;

  /** `patterns`: the config's extra redaction patterns (`redaction:`), read at each message. */
  constructor(connection: Redis, prefix?: string, patterns: () => readonly RedactionPattern[] = () => []) {
    this.queue = new Queue(QUEUES.notify, { connection, ...(prefix ? { prefix } : {}) });
    this.patterns = patterns;
    this.lanes = new LaneGate(connection, prefix ? { prefix } : {});
  }

  async announce(raw: Outbound): Promise<void> {
    const message = redactOutbound(raw, this.patterns());
    const laneSeq = await this.lanes.next(laneOf(message));
    await this.queue.add(
      message.kind,
      { ...message, laneSeq },
      {
        removeOnComplete: 1000,
        removeOnFail: 5000,
        attempts: 1,
        // BullMQ hands out jobs without a priority before any with one.
        ...(awaited(message, laneSeq) ? {} : { priority: LATER }),
      },
    );
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
