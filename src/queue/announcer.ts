// Outbound messages go through a queue, so a chat outage or rate limit
// delays them but loses none. The notify worker (in the bot process) sends
// them one at a time in order. Every message is redacted on its way in (build
// logs, log snippets, alert lines, error messages with command output), so no
// secret is stored in the queue or reaches chat.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Announcer, Outbound } from '../domain/ports.ts';
import { type RedactionPattern, redactOutbound } from '../logs/redact.ts';
import { QUEUES } from './names.ts';

export class QueueAnnouncer implements Announcer {
  readonly queue: Queue<Outbound>;

  private readonly patterns: () => readonly RedactionPattern[];

  /** `patterns`: the config's extra redaction patterns (`redaction:`), read at each message. */
  constructor(connection: Redis, prefix?: string, patterns: () => readonly RedactionPattern[] = () => []) {
    this.queue = new Queue(QUEUES.notify, { connection, ...(prefix ? { prefix } : {}) });
    this.patterns = patterns;
  }

  async announce(raw: Outbound): Promise<void> {
    const message = redactOutbound(raw, this.patterns());
    await this.queue.add(message.kind, message, { removeOnComplete: 1000, removeOnFail: 5000, attempts: 1 });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
