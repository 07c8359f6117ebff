// The pull relay's pacer (src/registry/pull-relay.ts) on a virtual clock:
// whatever the streams and chunk sizes, the bytes it lets through in any
// span stay under the rate (plus its small burst and one chunk), and it does
// not hold bytes back when the budget is there.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Pacer, type PacerClock } from '../../src/registry/pull-relay.ts';

/** A clock that jumps to the next sleeper once every stream is waiting. */
function virtualClock() {
  let now = 0;
  const sleepers: { at: number; wake: () => void }[] = [];
  const clock: PacerClock = {
    now: () => now,
    sleep: (ms) =>
      new Promise<void>((wake) => {
        sleepers.push({ at: now + ms, wake });
      }),
  };
  /** Runs until `done` settles, moving time on whenever nothing else can run. */
  async function run(done: Promise<unknown>): Promise<void> {
    let finished = false;
    done.then(() => {
      finished = true;
    });
    while (!finished) {
      for (let i = 0; i < 20; i++) await Promise.resolve(); // let every stream reach its next sleep
      sleepers.sort((a, b) => a.at - b.at);
      const next = sleepers.shift();
      if (!next) continue;
      now = Math.max(now, next.at);
      next.wake();
    }
  }
  return { clock, run, now: () => now };
}

describe('Pacer', () => {
  it('keeps every span under the rate, and uses the rate it has', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }).map((m) => m * 1024 * 1024), // bytes per second
        fc.array(fc.array(fc.integer({ min: 1, max: 256 * 1024 }), { minLength: 1, maxLength: 40 }), {
          minLength: 1,
          maxLength: 4,
        }), // streams, each a list of chunk sizes
        async (rate, streams) => {
          const v = virtualClock();
          const burstMs = 50;
          const pacer = new Pacer(() => rate, { burstMs, clock: v.clock });
          const sent: { at: number; bytes: number }[] = [];
          const all = Promise.all(
            streams.map(async (chunks) => {
              for (const n of chunks) {
                await pacer.take(n);
                sent.push({ at: v.now(), bytes: n });
              }
            }),
          );
          await v.run(all);
          const biggest = Math.max(...streams.flat());
          for (const a of sent) {
            const inSpan = sent.filter((b) => b.at >= a.at && b.at <= a.at + 1000);
            const bytes = inSpan.reduce((t, b) => t + b.bytes, 0);
            expect(bytes).toBeLessThanOrEqual(rate * ((1000 + burstMs) / 1000) + biggest);
          }
          const total = streams.flat().reduce((t, n) => t + n, 0);
          const end = Math.max(...sent.map((s) => s.at));
          // Never later than the rate allows: the last byte is let through by total / rate.
          expect(end).toBeLessThanOrEqual((total * 1000) / rate + 1e-6);
        },
      ),
      { numRuns: 60 },
    );
  });
});
