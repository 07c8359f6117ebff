// Order per conversation across bot replicas.
//
// Every outbound message belongs to a lane (laneOf: the release's thread, a
// channel, an alert). The announcer gives it the lane's next place (a Redis
// counter, taken when the message is queued); a notifier sends place n only
// once places up to n-1 are settled — sent, or refused for good — whichever
// replica holds them. Within one process the lanes of src/queue/lanes.ts keep
// the order cheaply; this gate is what keeps it when two replicas take a
// thread's messages at once (a card's "post" on one, its first edit on the
// other would otherwise post a second card).
//
// A place can go missing: the announcing process dies between taking the place
// and queueing the message. So the wait is bounded: when the lane has made no
// progress for `stallMs` and no replica says it is still working on it, the next
// message goes on and the stall is logged. A message in flight keeps its
// lane's "busy" marker fresh (waiting on a paced bucket, uploading, retrying
// after a 429), so a slow message is never taken for a missing one.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Outbound } from '../domain/ports.ts';
import { runScript, type StoreScript } from '../store/scripts.ts';

/**
 * A queued message with its place in its lane (absent on messages queued before lanes had places), and
 * where its wait for that place stood if it gave its queue slot back while waiting.
 */
export type LaneMessage = Outbound & { laneSeq?: number; laneWait?: LaneWait };

/** The conversation whose order a message must keep: the release's thread, else its channel. */
export function laneOf(m: Outbound): string {
  switch (m.kind) {
    case 'card':
    case 'reply':
      return `release:${m.releaseId}`;
    case 'message':
      return m.threadOf ? `release:${m.threadOf}` : `channel:${m.channel}`;
    case 'ephemeral':
      return `ephemeral:${m.channel}:${m.user}`;
    case 'alert':
      return `alert:${m.key}`;
  }
}

const SCRIPTS = {
  next: { name: 'lane-next', keys: 1, dir: new URL('./scripts/', import.meta.url) },
  done: { name: 'lane-done', keys: 2, dir: new URL('./scripts/', import.meta.url) },
} as const satisfies Record<string, StoreScript>;

/** Lane bookkeeping lives a day: longer than any message waits in the queue. */
const TTL_MS = 86_400_000;

/** Where a message's wait for its turn stood when it gave its slot back: the lane's last settled place, and since when. */
export interface LaneWait {
  settled: number;
  since: number;
}

export interface LaneGateOptions {
  prefix?: string;
  /** How long a lane may stand still, with nobody busy on it, before the next message goes anyway. */
  stallMs?: number;
  onStall?: (lane: string, seq: number, settled: number) => void;
}

export class LaneGate {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly stallMs: number;
  private readonly onStall: LaneGateOptions['onStall'];

  constructor(redis: Redis, opts: LaneGateOptions = {}) {
    this.redis = redis;
    this.prefix = opts.prefix ?? 'ferry';
    this.stallMs = opts.stallMs ?? 20_000;
    this.onStall = opts.onStall;
  }

  private key(lane: string, part: 'seq' | 'done' | 'busy'): string {
    // One hash tag per lane: its three keys sit in one Redis Cluster slot, as a script needs.
    return `${this.prefix}:lane:{${lane}}:${part}`;
  }

  /** The lane's next place, for a message about to be queued. */
  async next(lane: string): Promise<number> {
    return Number(await runScript(this.redis, SCRIPTS.next, [this.key(lane, 'seq')], [TTL_MS]));
  }

  /**
   * Resolves when place `seq` may be sent ('go'): every earlier place is
   * settled, or the lane stalled. `stopped` ends the wait early ('stopped').
   *
   * With `yieldAfterMs`, a wait longer than that returns `{ later }` instead:
   * the caller gives its queue slot back and asks again later with `later` as
   * `resume`, so the stall clock keeps running across the asks. A message
   * waiting for an earlier place must not hold a slot: with a long queue, the
   * earlier place may still be behind it, waiting for a free slot.
   */
  async turn(
    lane: string,
    seq: number,
    stopped: () => boolean = () => false,
    opts: { yieldAfterMs?: number; resume?: LaneWait } = {},
  ): Promise<'go' | 'stopped' | { later: LaneWait; dueInMs?: number }> {
    let last = opts.resume?.settled ?? -1;
    let since = opts.resume?.since ?? Date.now();
    const asked = Date.now();
    for (let pause = 10; ; pause = Math.min(250, Math.ceil(pause * 1.5))) {
      const [doneText, busy] = await this.redis.mget(this.key(lane, 'done'), this.key(lane, 'busy'));
      const settled = Number(doneText ?? 0);
      if (settled >= seq - 1) return 'go';
      if (settled !== last || busy !== null) {
        last = settled;
        since = Date.now();
      } else if (Date.now() - since >= this.stallMs) {
        this.onStall?.(lane, seq, settled);
        return 'go';
      }
      if (stopped()) return 'stopped';
      if (opts.yieldAfterMs !== undefined) {
        // The message ahead went away until its turn on the platform's pace (hold): come back then.
        const dueInMs = Number(busy) - Date.now();
        if (dueInMs > opts.yieldAfterMs) return { later: { settled: last, since }, dueInMs };
        if (Date.now() - asked >= opts.yieldAfterMs) return { later: { settled: last, since } };
      }
      await sleep(pause);
    }
  }

  /** Says the lane's current message is still being worked on. */
  async busy(lane: string): Promise<void> {
    await this.redis.set(this.key(lane, 'busy'), '1', 'PX', this.stallMs);
  }

  /**
   * The lane's current message went away until its turn on the platform's pace, `ms` from now: the lane
   * stays busy until then (and a stall's length after), and its later messages come back at that time.
   */
  async hold(lane: string, ms: number): Promise<void> {
    await this.redis.set(this.key(lane, 'busy'), String(Date.now() + ms), 'PX', ms + this.stallMs);
  }

  /** Marks the lane busy now and every third of `stallMs` until `stop()`: a message in flight. */
  keepBusy(lane: string): { stop(): void } {
    const mark = () => void this.busy(lane).catch(() => undefined);
    mark();
    const timer = setInterval(mark, Math.max(100, Math.floor(this.stallMs / 3)));
    timer.unref?.();
    return { stop: () => clearInterval(timer) };
  }

  /** Place `seq` is settled: sent, or refused for good. */
  async settle(lane: string, seq: number): Promise<void> {
    await runScript(
      this.redis,
      SCRIPTS.done,
      [this.key(lane, 'done'), this.key(lane, 'busy')],
      [seq, TTL_MS],
    );
  }
}
