// Per-conversation ordering and pacing of outbound chat (src/queue/lanes.ts).
import { describe, expect, it } from 'vitest';
import { laneOf } from '../../src/chat/notifier.ts';
import { Lanes, Pacer } from '../../src/queue/lanes.ts';

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => {
    open = r;
  });
  return { p, open };
}

describe('Lanes', () => {
  it('keeps one key in order and lets other keys pass a blocked one', async () => {
    const lanes = new Lanes();
    const seen: string[] = [];
    const g = gate();
    const a1 = lanes.run('thread-a', async () => {
      await g.p;
      seen.push('a1');
    });
    const a2 = lanes.run('thread-a', async () => {
      seen.push('a2');
    });
    // thread-b finishes while thread-a's first message is still held
    await lanes.run('thread-b', async () => {
      seen.push('b1');
    });
    expect(seen).toEqual(['b1']);
    g.open();
    await Promise.all([a1, a2]);
    expect(seen).toEqual(['b1', 'a1', 'a2']);
  });

  it('goes on with a key after a task of it failed', async () => {
    const lanes = new Lanes();
    const failed = lanes.run('k', async () => {
      throw new Error('boom');
    });
    await expect(failed).rejects.toThrow('boom');
    await expect(lanes.run('k', async () => 'next')).resolves.toBe('next');
    await new Promise((r) => setImmediate(r));
    expect(lanes.busy).toBe(0);
  });
});

describe('Pacer', () => {
  it('spaces calls on one bucket at the rate', async () => {
    const pacer = new Pacer({ count: 1, perMs: 60, burst: 1 });
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) await pacer.take('C1');
    // first at once, then three more at ≥ 60 ms apart
    expect(performance.now() - t0).toBeGreaterThanOrEqual(170);
  });

  it('a hold (429 Retry-After) on one channel leaves the others free', async () => {
    const pacer = new Pacer({ count: 1, perMs: 1000, burst: 1 });
    pacer.hold('C_BUSY', Date.now() + 30_000);
    expect(pacer.waitMs('C_BUSY')).toBeGreaterThan(29_000);
    expect(await pacer.take('C_OTHER')).toBe(0);
    expect(pacer.waitMs('C_BUSY')).toBeGreaterThan(29_000);
  });
});

describe('Pacer.reserve', () => {
  it('gives each caller its own later turn at the rate, and a hold pushes them past it', () => {
    let now = 0;
    const pacer = new Pacer({ count: 1, perMs: 1000, burst: 1 }, () => now);
    // The first goes at once; each later reservation is one more token's time away, none shared.
    expect([0, 1, 2, 3].map(() => pacer.reserve('C1'))).toEqual([0, 1000, 2000, 3000]);
    // Another bucket is untouched.
    expect(pacer.reserve('C2')).toBe(0);
    now = 1500;
    // The queue of reservations drains with time: the next is behind the three still ahead.
    expect(pacer.reserve('C1')).toBe(2500);
    pacer.hold('C1', now + 10_000);
    expect(pacer.heldFor('C1')).toBe(10_000);
    expect(pacer.reserve('C1')).toBe(10_000);
  });
});

describe('laneOf', () => {
  it('puts a release’s card, replies and thread messages in one lane, channels apart', () => {
    expect(laneOf({ kind: 'card', releaseId: 'r1' })).toBe('release:r1');
    expect(laneOf({ kind: 'reply', releaseId: 'r1', text: 'x' })).toBe('release:r1');
    expect(laneOf({ kind: 'message', channel: 'C1', text: 'x', threadOf: 'r1' })).toBe('release:r1');
    expect(laneOf({ kind: 'message', channel: 'C1', text: 'x' })).toBe('channel:C1');
    expect(laneOf({ kind: 'message', channel: 'C2', text: 'x' })).not.toBe(
      laneOf({ kind: 'message', channel: 'C1', text: 'x' }),
    );
  });
});
