// Ordering and pacing for outbound chat, per conversation instead of global.
//
// `Lanes` runs tasks one at a time per key (a release's thread, a channel, an
// alert) and different keys side by side: messages to one thread keep their
// order while other threads go on. `Pacer` spaces calls per bucket (Slack's
// rate tiers: chat.postMessage about 1 per second per channel, chat.update a
// per-workspace tier) and holds one bucket — only that one — for Retry-After
// after a 429. Nothing here knows Slack or Redis: the notifier decides keys,
// buckets and rates.

import { setTimeout as sleep } from 'node:timers/promises';

/** Serial per key, concurrent across keys. */
export class Lanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every task queued before it on `key`; other keys do not wait. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // Forget a lane once its last task is done, so idle threads cost nothing.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Lanes with work queued or running. */
  get busy(): number {
    return this.tails.size;
  }
}

export interface Rate {
  /** Calls allowed per `perMs` on one bucket, sustained. */
  count: number;
  perMs: number;
  /** Calls allowed back to back before the pace applies (default 1). */
  burst?: number;
}

/**
 * A token bucket per key. `take` waits until the bucket has a token; `hold`
 * empties one bucket until a time (a 429's Retry-After) and leaves the others
 * alone.
 */
export class Pacer {
  private readonly buckets = new Map<string, { tokens: number; at: number; heldUntil: number }>();
  private readonly rate: Rate;
  private readonly now: () => number;

  constructor(rate: Rate, now: () => number = Date.now) {
    this.rate = rate;
    this.now = now;
  }

  private bucket(key: string) {
    const now = this.now();
    const burst = this.rate.burst ?? 1;
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: burst, at: now, heldUntil: 0 };
      this.buckets.set(key, b);
    }
    const refill = ((now - b.at) * this.rate.count) / this.rate.perMs;
    b.tokens = Math.min(burst, b.tokens + refill);
    b.at = now;
    return b;
  }

  /** How long a call on `key` would wait now (0 = go). */
  waitMs(key: string): number {
    const b = this.bucket(key);
    const held = this.heldFor(key);
    if (b.tokens >= 1) return held;
    return Math.max(held, Math.ceil(((1 - b.tokens) * this.rate.perMs) / this.rate.count));
  }

  /**
   * Takes the next token of `key` now, even one not there yet, and says in how many ms it is (0 = now).
   * Each reservation queues behind the ones before it, so a caller can go away and come back at its
   * time instead of holding anything while it waits.
   */
  reserve(key: string): number {
    const wait = this.waitMs(key);
    this.bucket(key).tokens -= 1;
    return wait;
  }

  /** The time one token takes to come back (ms). */
  get interval(): number {
    return this.rate.perMs / this.rate.count;
  }

  /** How long `key` is still held by a 429 (0 = not held). */
  heldFor(key: string): number {
    return Math.max(0, (this.buckets.get(key)?.heldUntil ?? 0) - this.now());
  }

  /** Waits for a token on `key` and takes it. Returns how long it waited. */
  async take(key: string): Promise<number> {
    let waited = 0;
    for (;;) {
      const ms = this.waitMs(key);
      if (ms <= 0) break;
      waited += ms;
      await sleep(ms);
    }
    const b = this.bucket(key);
    b.tokens -= 1;
    this.prune();
    return waited;
  }

  /** Nothing goes out on `key` before `untilMs` (a 429 with Retry-After); other keys carry on. */
  hold(key: string, untilMs: number): void {
    const b = this.bucket(key);
    b.heldUntil = Math.max(b.heldUntil, untilMs);
    // Tokens already reserved stay reserved (below zero): they go after the hold, in their order.
    b.tokens = Math.min(b.tokens, 0);
  }

  private prune(): void {
    if (this.buckets.size < 10_000) return;
    const now = this.now();
    const burst = this.rate.burst ?? 1;
    for (const [k, b] of this.buckets)
      if (b.heldUntil < now && b.tokens + ((now - b.at) * this.rate.count) / this.rate.perMs >= burst)
        this.buckets.delete(k);
  }
}
