// Where Redis is: one URL, or Sentinel from REDIS_SENTINELS / redis+sentinel://.
import { describe, expect, it } from 'vitest';
import { parseSentinelUrl, redisUrl } from '../../src/queue/connection.ts';

describe('redis connection target', () => {
  it('REDIS_SENTINELS and REDIS_SENTINEL_NAME select Sentinel, over REDIS_URL', () => {
    expect(
      redisUrl({ REDIS_SENTINELS: 'a:26379,b:26380', REDIS_SENTINEL_NAME: 'main', REDIS_URL: 'redis://x:1' }),
    ).toBe('redis+sentinel://a:26379,b:26380/main');
    expect(redisUrl({ REDIS_SENTINELS: 'a:26379' })).toBe('redis+sentinel://a:26379/ferry');
    expect(redisUrl({ REDIS_URL: 'redis://x:1' })).toBe('redis://x:1');
  });

  it('parses a redis+sentinel URL: sentinels, primary name, password, db', () => {
    expect(parseSentinelUrl('redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b/ferry-ha/2')).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b', port: 26379 },
      ],
      name: 'ferry-ha',
      password: 's@cret',
      db: 2,
    });
    expect(parseSentinelUrl('redis+sentinel://h:1').name).toBe('ferry');
  });

  it('says what is wrong with a bad one', () => {
    expect(() => parseSentinelUrl('redis+sentinel:///ferry')).toThrow(/no sentinels/);
    expect(() => parseSentinelUrl('redis+sentinel://h:port/ferry')).toThrow(/"h:port" is not host:port/);
  });
});
