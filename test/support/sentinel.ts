// A real Redis Sentinel setup per test file, on free ports: one primary, two
// replicas and three sentinels (quorum 2), with the production persistence
// (AOF, fsync every second) and asynchronous replication — what BullMQ
// documents for high availability and what infra/lib/sentinel.sh runs. A test
// can SIGKILL the primary and wait for the sentinels to promote a replica.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis.ts';

export const MASTER_NAME = 'ferry';

interface Member {
  port: number;
  proc: ChildProcess;
}

async function answers(port: number): Promise<void> {
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect();
        await probe.ping();
        return;
      } catch {
        probe.disconnect();
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`nothing answers on ${port}`);
  } finally {
    probe.disconnect();
  }
}

export class TestSentinel {
  readonly dir: string;
  readonly redis: Member[] = [];
  readonly sentinels: Member[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** `redis+sentinel://…/ferry`: what Ferry is given. */
  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER_NAME}`;
  }

  static async start(opts: { downAfterMs?: number } = {}): Promise<TestSentinel> {
    const t = new TestSentinel(mkdtempSync(join(tmpdir(), 'ferry-sentinel-')));
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      const dir = join(t.dir, `redis-${i}`);
      mkdirSync(dir);
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--maxmemory-policy',
        'noeviction',
        '--save',
        '',
        ...(i === 0 ? [] : ['--replicaof', '127.0.0.1', String(ports[0])]),
      ];
      t.redis.push({ port, proc: spawn('redis-server', args, { stdio: 'ignore' }) });
      await answers(port);
    }
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(t.dir, `sentinel-${i}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${t.dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${ports[0]} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${opts.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${MASTER_NAME} 10000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      // `redis-sentinel` is `redis-server --sentinel` (Debian's redis-sentinel package ships the symlink).
      t.sentinels.push({ port, proc: spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }) });
      await answers(port);
    }
    await t.waitForReplicas(2);
    return t;
  }

  /** The port of the current primary, as the sentinels say. */
  async primaryPort(): Promise<number> {
    const s = new Redis({ port: this.sentinels[0]?.port ?? 0, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    try {
      const addr = (await s.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as [string, string];
      return Number(addr[1]);
    } finally {
      s.disconnect();
    }
  }

  private async waitForReplicas(n: number): Promise<void> {
    const primary = new Redis({ port: await this.primaryPort(), host: '127.0.0.1' });
    try {
      for (let i = 0; i < 200; i++) {
        const info = await primary.info('replication');
        const online = (info.match(/state=online/g) ?? []).length;
        if (online >= n) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the replicas did not sync with the primary`);
    } finally {
      primary.disconnect();
    }
  }

  /** SIGKILL the current primary; resolves with its port once the process is gone. */
  async killPrimary(): Promise<number> {
    const port = await this.primaryPort();
    const member = this.redis.find((m) => m.port === port);
    if (!member) throw new Error(`no redis-server of ours on ${port}`);
    await new Promise<void>((resolve) => {
      member.proc.once('exit', () => resolve());
      member.proc.kill('SIGKILL');
    });
    return port;
  }

  /** Waits until the sentinels name a primary other than `oldPort`. */
  async waitForFailover(oldPort: number, timeoutMs = 30_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const port = await this.primaryPort();
      if (port !== oldPort) return port;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no failover from ${oldPort} in ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.sentinels, ...this.redis].map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
            m.proc.once('exit', () => resolve());
            m.proc.kill('SIGKILL');
          }),
      ),
    );
  }
}
