// The store's atomic changes (src/store/scripts/*.lua) on a real redis-server, through ONE shared
// connection as the worker uses it: concurrent read-change-write updates of a version record never lose
// one another's change (a WATCH on a shared connection would be released by another caller's MULTI),
// and the lock hand-over reads the holder's release through a declared key.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReleaseStore } from '../../src/store/releases.ts';
import { VersionStore } from '../../src/store/versions.ts';
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

describe('version records', () => {
  it('keeps every environment when many workers record images at once on one connection', async () => {
    const versions = new VersionStore(redis, 'vs');
    const envs = Array.from({ length: 12 }, (_, i) => `env${i}`);
    await Promise.all(
      envs.map((env) =>
        versions.recordImage('payments', 'v1', env, {
          image: `r/p:${env}`,
          digest: `sha256:${env}`,
          builtAt: 1,
        }),
      ),
    );
    const rec = await versions.get('payments', 'v1');
    expect(Object.keys(rec?.images ?? {}).sort()).toEqual([...envs].sort());
    expect(await redis.zrange('vs:versions:payments', '0', '-1')).toEqual(['v1']);
  });
});

describe('the lock script', () => {
  it('takes over a lock whose holder vanished, and makes a live holder’s rival wait', async () => {
    const releases = new ReleaseStore(redis, 'ls');
    const lock = releases.lockKey('payments', 'prod');
    await redis.set(lock, 'r-gone');
    const r2 = { id: 'r2', app: 'payments', environment: 'prod', plan: { priority: { value: 3 } } };
    const taken = await releases.acquire(r2 as never);
    expect(taken).toEqual({ acquired: true });
    expect(await releases.lockHolder('payments', 'prod')).toBe('r2');
    // r2 is live (not ended): r3 waits behind it.
    await redis.hset('ls:release:r2', 'state', 'deploying', 'ended', '0');
    const r3 = { ...r2, id: 'r3' };
    expect(await releases.acquire(r3 as never)).toEqual({ acquired: false, position: 1, holder: 'r2' });
  });
});

describe('the operation lock scripts', () => {
  it('refuse an operation while a live release holds the lock, take a free one, and hand it to the release in line', async () => {
    const releases = new ReleaseStore(redis, 'os');
    const r1 = { id: 'r1', app: 'ledger', environment: 'prod', plan: { priority: { value: 3 } } };
    expect(await releases.acquire(r1 as never)).toEqual({ acquired: true });
    await redis.hset('os:release:r1', 'state', 'deploying', 'ended', '0');
    expect(await releases.acquireOperation('ledger', 'prod', 'op-1', 60)).toEqual({
      acquired: false,
      holder: 'r1',
    });
    // r1 ends: its lock is stale, and the operation takes it.
    await redis.hset('os:release:r1', 'state', 'succeeded', 'ended', '1');
    expect(await releases.acquireOperation('ledger', 'prod', 'op-1', 60)).toEqual({ acquired: true });
    expect(await releases.lockHolder('ledger', 'prod')).toBe('op-1');
    // A release asking meanwhile waits behind the operation's marker; freeing the lock hands it over.
    const r2 = { ...r1, id: 'r2' };
    expect(await releases.acquire(r2 as never)).toEqual({ acquired: false, position: 1, holder: 'op-1' });
    expect(await releases.releaseOperation('ledger', 'prod', 'op-1')).toBe('r2');
    expect(await releases.lockHolder('ledger', 'prod')).toBe('r2');
    expect(await redis.exists('os:release:op-1')).toBe(0);
    // Another operation now finds r2 (live, not ended yet) holding the lock.
    await redis.hset('os:release:r2', 'state', 'deploying', 'ended', '0');
    expect(await releases.acquireOperation('ledger', 'prod', 'op-2', 60)).toEqual({
      acquired: false,
      holder: 'r2',
    });
  });
});
