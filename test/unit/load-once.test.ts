// loadOnce: what a process loads on first use (the bot's cluster services, the queue dashboard) is
// loaded once however many callers ask at the same time, and a failed load is tried again.
import { describe, expect, it } from 'vitest';
import { loadOnce } from '../../src/concurrency.ts';

describe('loadOnce', () => {
  it('runs the load once for every caller, at the same time and later', async () => {
    let loads = 0;
    const get = loadOnce(async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return { n: loads };
    });
    const [a, b] = await Promise.all([get(), get()]);
    const c = await get();
    expect(loads).toBe(1);
    expect(a).toBe(b);
    expect(c).toBe(a);
  });

  it('forgets a load that failed: the next call loads again, and that result is kept', async () => {
    let loads = 0;
    const get = loadOnce(async () => {
      loads++;
      if (loads === 1) throw new Error('not reachable yet');
      return loads;
    });
    await expect(get()).rejects.toThrow('not reachable yet');
    expect(await get()).toBe(2);
    expect(await get()).toBe(2);
    expect(loads).toBe(2);
  });
});
