// The operator's view of a worker: the BullMQ dashboard (bull-board) at
// /queues and Prometheus metrics at /metrics, on FERRY_OPS_PORT. The metrics
// are what a platform team graphs: releases by final state, step durations,
// queue depth.
//
// The dashboard can retry, clean, promote, empty and obliterate jobs, which
// would let anyone who reaches the port skip or repeat release steps. So it is
// read-only unless an operator token is configured (FERRY_OPS_TOKEN), and then
// every request that changes something must carry `Authorization: Bearer
// <token>`. Reading stays open so the board can be looked at in a browser.
// This holds on every bind address, loopback included: a port forward or a
// sidecar makes "only local" hard to promise.
import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import { Queue } from 'bullmq';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Redis } from 'ioredis';
import { loadOnce } from '../concurrency.ts';
import { metrics } from '../metrics.ts';
import { QUEUES } from './names.ts';

export interface OpsServerOptions {
  port: number;
  /** Bind address (FERRY_OPS_HOST); default 127.0.0.1. */
  host?: string;
  prefix?: string;
  /** FERRY_OPS_TOKEN: without it the dashboard is read-only. */
  token?: string;
}

export interface OpsServer {
  url: string;
  /** Whether the dashboard refuses every change. */
  readOnly: boolean;
  close(): Promise<void>;
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Refuses changes without the operator token (or always, with no token). */
function guardChanges(token: string | undefined) {
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  return (req: Request, res: Response, next: NextFunction) => {
    if (READS.has(req.method)) return next();
    if (!expected) {
      res
        .status(405)
        .json({ error: 'The queue dashboard is read-only: set FERRY_OPS_TOKEN to change jobs.' });
      return;
    }
    const given = Buffer.from(req.get('authorization') ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res
        .set('www-authenticate', 'Bearer')
        .status(401)
        .json({ error: 'Changing jobs needs the operator token.' });
      return;
    }
    next();
  };
}

export async function startOpsServer(connection: Redis, opts: OpsServerOptions): Promise<OpsServer> {
  const { prefix } = opts;
  const token = opts.token || undefined;
  const readOnly = token === undefined;
  const queues = Object.values(QUEUES).map(
    (name) => new Queue(name, { connection, ...(prefix ? { prefix } : {}) }),
  );
  const app = express();
  // The dashboard (bull-board, its UI and ejs) loads with the first request to it, not with every
  // worker: most workers are never looked at between restarts (see the charts in analysis/judge.ts).
  // The first request waits for it, then goes on to the routes added here (express reads its stack
  // as it goes).
  const board = loadOnce(async () => {
    const [{ createBullBoard }, { BullMQAdapter }, { ExpressAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/express'),
    ]);
    const adapter = new ExpressAdapter();
    adapter.setBasePath('/queues');
    createBullBoard({
      queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: readOnly })),
      serverAdapter: adapter,
    });
    app.use('/queues', guardChanges(token), adapter.getRouter() as RequestHandler);
  });
  // A load that fails answers that request with the error; the next request tries again.
  app.use('/queues', (_req, _res, next) => {
    board().then(() => next(), next);
  });
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
  const host = opts.host ?? '127.0.0.1';
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(opts.port, host, () => resolve(s));
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : opts.port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${actual}`,
    readOnly,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}
