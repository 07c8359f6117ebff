// Outbound messages go through a queue, so a chat outage or rate limit
// delays them but loses none. The notify worker (in the bot process) sends
// them one at a time in order.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Announcer, Outbound } from '../domain/ports.ts';
import { QUEUES } from './names.ts';

export class QueueAnnouncer implements Announcer {
  readonly queue: Queue<Outbound>;

  constructor(connection: Redis, prefix?: string) {
    this.queue = new Queue(QUEUES.notify, { connection, ...(prefix ? { prefix } : {}) });
  }

  async announce(message: Outbound): Promise<void> {
    await this.queue.add(message.kind, message, { removeOnComplete: 1000, removeOnFail: 5000, attempts: 1 });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
