// The queue dashboard on a non-loopback address, on a real Redis: without the
// operator token it refuses every change (bull-board's own routes and ours);
// with FERRY_OPS_TOKEN a change needs the bearer token.
import { randomUUID } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../../src/queue/names.ts';
import { type OpsServer, startOpsServer } from '../../src/queue/ops-server.ts';
import { TestRedis } from '../support/redis.ts';

/** An address of this machine other than loopback, to reach the dashboard the way another host would. */
function outsideAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('this machine has no non-loopback IPv4 address');
}

let redis: TestRedis;
let conn: Redis;
beforeAll(async () => {
  redis = await TestRedis.start();
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  conn?.disconnect();
  await redis?.stop();
});

async function withBoard(
  token: string | undefined,
  fn: (base: string, queue: Queue, ops: OpsServer) => Promise<void>,
): Promise<void> {
  const prefix = `ops${randomUUID().slice(0, 8)}`;
  const ops = await startOpsServer(conn, { port: 0, host: '0.0.0.0', prefix, ...(token ? { token } : {}) });
  const queue = new Queue(QUEUES.release, { connection: conn, prefix });
  try {
    const port = new URL(ops.url).port;
    await fn(`http://${outsideAddress()}:${port}/queues/api`, queue, ops);
  } finally {
    await queue.close();
    await ops.close();
  }
}

const put = (url: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });

describe('queue dashboard beyond loopback', () => {
  it('without FERRY_OPS_TOKEN: reads work, every change is refused and the jobs stay', async () => {
    await withBoard(undefined, async (api, queue, ops) => {
      expect(ops.readOnly).toBe(true);
      await queue.add('build', { releaseId: 'r1' }, { jobId: 'r1.build', delay: 60_000 });
      const list = await fetch(`${api}/queues?activeQueue=${QUEUES.release}&status=delayed`);
      expect(list.status).toBe(200);
      expect(JSON.stringify(await list.json())).toContain('r1.build');
      // the page itself (its templates load with the dashboard, on the first request)
      const page = await fetch(api.replace(/\/api$/, ''));
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<title>[^<]*<\/title>/);
      const changes = [
        put(`${api}/queues/${QUEUES.release}/clean/delayed`),
        put(`${api}/queues/${QUEUES.release}/r1.build/promote`),
        put(`${api}/queues/${QUEUES.release}/r1.build/clean`),
        put(`${api}/queues/${QUEUES.release}/empty`),
        put(`${api}/queues/${QUEUES.release}/obliterate`),
        put(`${api}/queues/pause`),
        fetch(`${api}/queues/${QUEUES.release}/add`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'deploy', data: {} }),
        }),
        put(`${api}/queues/${QUEUES.release}/r1.build/retry`, { authorization: 'Bearer guess' }),
      ];
      for (const res of await Promise.all(changes)) expect(res.status).toBe(405);
      expect(await queue.getJobState('r1.build')).toBe('delayed');
      expect(await queue.isPaused()).toBe(false);
      expect(await queue.count()).toBe(1);
    });
  });

  it('with FERRY_OPS_TOKEN: a change without (or with a wrong) bearer is refused; with it, it is done', async () => {
    await withBoard('s3cret-ops-token', async (api, queue, ops) => {
      expect(ops.readOnly).toBe(false);
      await queue.add('build', { releaseId: 'r2' }, { jobId: 'r2.build', delay: 60_000 });
      const promote = `${api}/queues/${QUEUES.release}/r2.build/promote`;
      expect((await put(promote)).status).toBe(401);
      expect((await put(promote, { authorization: 'Bearer s3cret-ops-tokeX' })).status).toBe(401);
      expect((await put(promote, { authorization: 's3cret-ops-token' })).status).toBe(401);
      expect(await queue.getJobState('r2.build')).toBe('delayed');
      expect((await put(promote, { authorization: 'Bearer s3cret-ops-token' })).status).toBe(204);
      expect(await queue.getJobState('r2.build')).toBe('waiting');
    });
  });
});
