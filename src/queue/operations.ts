// The bot's side of operations: a command queues the work on the ops queue
// and answers; the worker's jobs (jobs/rollback-app.ts, jobs/sync-images.ts)
// do it under the app's lock.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Operation, OperationQueue } from '../ports.ts';
import { QUEUES } from './names.ts';

export type QueuedOperation = Operation & { id: string };

export class BullOperationQueue implements OperationQueue {
  readonly queue: Queue<QueuedOperation>;

  constructor(connection: Redis, prefix?: string) {
    this.queue = new Queue(QUEUES.ops, { connection, ...(prefix ? { prefix } : {}) });
  }

  /** `base` names the operation (kind, app, …); the id adds when, so each request is its own job. */
  async enqueue(op: Operation, base: string): Promise<string> {
    // Job ids may not hold ':'; the id doubles as the holder of the lock and the audit entry's key.
    const id = `op-${base.replace(/[^\w.-]+/g, '_')}-${Date.now().toString(36)}`;
    await this.queue.add(
      op.kind,
      { ...op, id },
      {
        jobId: id,
        // A busy lock (a release in flight) is waited out with backoff: up to about half an hour.
        attempts: 12,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { age: 7 * 24 * 3600 },
        removeOnFail: { age: 30 * 24 * 3600 },
      },
    );
    return id;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
