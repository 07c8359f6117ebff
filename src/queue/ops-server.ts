// The operator's view of a worker: the BullMQ dashboard (bull-board) at
// /queues and Prometheus metrics at /metrics, on FERRY_OPS_PORT. The metrics
// are what a platform team graphs: releases by final state, step durations,
// queue depth.
import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import express from 'express';
import type { Redis } from 'ioredis';
import { metrics } from '../metrics.ts';
import { QUEUES } from './names.ts';

export async function startOpsServer(
  connection: Redis,
  port: number,
  prefix?: string,
): Promise<{ close(): Promise<void>; url: string }> {
  const queues = Object.values(QUEUES).map(
    (name) => new Queue(name, { connection, ...(prefix ? { prefix } : {}) }),
  );
  const adapter = new ExpressAdapter();
  adapter.setBasePath('/queues');
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
    serverAdapter: adapter,
  });
  const app = express();
  app.use('/queues', adapter.getRouter());
  app.get('/metrics', async (_req, res) => {
    for (const q of queues) {
      const counts = await q.getJobCounts();
      for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue: q.name, state }, n);
    }
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/healthz', (_req, res) => {
    res.send('ok');
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s));
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  return {
    url: `http://127.0.0.1:${actual}`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}
