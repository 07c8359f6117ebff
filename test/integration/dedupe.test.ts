// Alert dedupe and silences on a real redis-server.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertDedupe } from '../../src/watch/dedupe.ts';
import { Silences } from '../../src/watch/silence.ts';
import { waitFor } from '../support/infra.ts';
import { TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

const WINDOW = 60_000;

describe('alert dedupe', () => {
  it('counts repeats of one workload within the window as one alert with a stable key', async () => {
    const d = new AlertDedupe(redis, 't1');
    const a = await d.record('eu/ns/app/c', 'main:1', WINDOW, 1_000);
    const b = await d.record('eu/ns/app/c', 'main:2', WINDOW, 20_000);
    const c = await d.record('eu/ns/app/c', 'main:3', WINDOW, 70_000); // 50s after the last: same alert
    expect(a).toMatchObject({ count: 1, fresh: true, firstAt: 1_000 });
    expect(b).toMatchObject({ key: a?.key, count: 2, fresh: false });
    expect(c).toMatchObject({ key: a?.key, count: 3, firstAt: 1_000, lastAt: 70_000 });
  });

  it('ignores a second sighting of the same occurrence', async () => {
    const d = new AlertDedupe(redis, 't2');
    expect(await d.record('w', 'main:x', WINDOW, 1)).toBeDefined();
    expect(await d.record('w', 'main:x', WINDOW, 2)).toBeUndefined();
    expect((await d.current('w', WINDOW, 3))?.count).toBe(1);
  });

  it('starts a new alert after a quiet window, and keeps workloads apart', async () => {
    const d = new AlertDedupe(redis, 't3');
    const a = await d.record('w', 'o1', WINDOW, 0);
    const other = await d.record('w2', 'o2', WINDOW, 10);
    const b = await d.record('w', 'o3', WINDOW, WINDOW + 1);
    expect(other?.key).not.toBe(a?.key);
    expect(other?.count).toBe(1);
    expect(b?.fresh).toBe(true);
    expect(b?.key).not.toBe(a?.key);
    expect(b?.count).toBe(1);
  });

  it('concurrent sightings from several processes: each occurrence counted once', async () => {
    const d = new AlertDedupe(redis, 't4');
    const others = [new Redis(server.url), new Redis(server.url)];
    const stores = [d, ...others.map((r) => new AlertDedupe(r, 't4'))];
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (stores[i % 3] as AlertDedupe).record('w', `o${i % 10}`, WINDOW, 100 + i),
      ),
    );
    const recorded = results.filter((r) => r !== undefined);
    expect(recorded).toHaveLength(10);
    expect(new Set(recorded.map((r) => r?.key)).size).toBe(1);
    expect(recorded.map((r) => r?.count).sort((x, y) => (x as number) - (y as number))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect(recorded.filter((r) => r?.fresh)).toHaveLength(1);
    for (const r of others) r.disconnect();
  });
});

describe('silences', () => {
  it('silence, check, expire, unsilence', async () => {
    const s = new Silences(redis, 't5');
    expect(await s.isSilenced('oom/a')).toBe(false);
    const info = await s.silence('oom/a', 300, 'U_ALICE');
    expect(info.by).toBe('U_ALICE');
    expect(await s.isSilenced('oom/a')).toBe(true);
    expect((await s.get('oom/a'))?.by).toBe('U_ALICE');
    // The silence ends by itself: within a few times its 300 ms, not never.
    const silencedAt = Date.now();
    await waitFor(async () => !(await s.isSilenced('oom/a')) || undefined, {
      timeoutMs: 3_000,
      intervalMs: 20,
    });
    expect(Date.now() - silencedAt).toBeLessThan(3_000);
    await s.silence('oom/b', 60_000, 'U_BOB');
    expect(await s.unsilence('oom/b')).toBe(true);
    expect(await s.isSilenced('oom/b')).toBe(false);
    await expect(s.silence('oom/c', 0, 'x')).rejects.toThrow();
  });
});
