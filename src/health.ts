// Health endpoints for every Ferry process (bot, worker, watcher, node agent),
// what the kubelet probes and Prometheus scrapes:
//
//   GET /healthz  200 while the process's own loop runs: the event loop ticks
//                 (a blocked loop answers nothing, or answers late and says so)
//                 and the process's parts say they run (BullMQ workers, watches).
//                 Failing it means "restart me": it never depends on Redis or
//                 the API server, so an outage of those does not restart every pod.
//   GET /readyz   200 only when Redis answers PING and, for processes that use
//                 it, the Kubernetes API of every region answers, each within a
//                 short timeout; else 503 with the reasons, one a line.
//   GET /metrics  the process's Prometheus registry.
//
// The server listens on FERRY_HEALTH_PORT (FERRY_HEALTH_HOST, default
// 127.0.0.1; the manifests set 0.0.0.0 so the kubelet can reach it). Port 0
// picks a free one; FERRY_HEALTH_PORT_FILE then names a file the port is
// written to, for exec probes (pods on the host network cannot share one port).
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FerryConfig } from './domain/config.ts';
import { metrics } from './metrics.ts';
import { QUEUES } from './queue/names.ts';

/** A dependency the process needs to do its work; `probe` rejects with the reason when it does not answer. */
export interface ReadinessCheck {
  name: string;
  probe(): Promise<void>;
}

/** A part of the process that must keep running; returns the reason when it does not. */
export type LivenessCheck = () => string | undefined;

export interface HealthOptions {
  ready: ReadinessCheck[];
  alive?: LivenessCheck[];
  /** How long a readiness check may take before it counts as not answering. Default 2 s. */
  timeoutMs?: number;
  /** How late an event-loop tick may be before /healthz fails. Default 10 s. */
  loopStallMs?: number;
  /** Runs before /metrics is rendered (e.g. to refresh queue depth gauges). */
  beforeMetrics?: () => Promise<void>;
  /** A line /readyz adds about the process's role (e.g. a watcher's "leader election: standby"); not a check. */
  role?: () => string;
}

export interface Verdict {
  ok: boolean;
  reasons: string[];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class Health {
  private readonly opts: HealthOptions;
  private lastTick = Date.now();
  private readonly ticker: NodeJS.Timeout;
  private static readonly TICK_MS = 1000;

  constructor(opts: HealthOptions) {
    this.opts = opts;
    this.ticker = setInterval(() => {
      this.lastTick = Date.now();
    }, Health.TICK_MS);
    this.ticker.unref();
  }

  live(now = Date.now()): Verdict {
    const reasons: string[] = [];
    const late = now - this.lastTick - Health.TICK_MS;
    const stall = this.opts.loopStallMs ?? 10_000;
    if (late > stall) reasons.push(`event loop: last tick ${late} ms late (limit ${stall} ms)`);
    for (const check of this.opts.alive ?? []) {
      const reason = check();
      if (reason) reasons.push(reason);
    }
    return { ok: reasons.length === 0, reasons };
  }

  async ready(): Promise<Verdict> {
    const ms = this.opts.timeoutMs ?? 2000;
    const results = await Promise.all(
      this.opts.ready.map(async (c) => {
        try {
          await withTimeout(c.probe(), ms, c.name);
          return undefined;
        } catch (err) {
          const message = (err as Error).message ?? String(err);
          return message.startsWith(`${c.name}:`) ? message : `${c.name}: ${message}`;
        }
      }),
    );
    const reasons = results.filter((r): r is string => r !== undefined);
    return { ok: reasons.length === 0, reasons };
  }

  /** Answers /healthz, /readyz and /metrics; returns false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/healthz' || path === '/readyz') {
      const v = path === '/healthz' ? this.live() : await this.ready();
      const role = path === '/readyz' && this.opts.role ? `${this.opts.role()}\n` : '';
      res.writeHead(v.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(v.ok ? `ok\n${role}` : `${v.reasons.join('\n')}\n${role}`);
      return true;
    }
    if (path === '/metrics') {
      await this.opts.beforeMetrics?.().catch(() => {});
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(await metrics.registry.metrics());
      return true;
    }
    return false;
  }

  stop(): void {
    clearInterval(this.ticker);
  }
}

/** Redis answers PING. A connection that is not up fails at once rather than queueing the PING. */
export function redisReady(redis: Redis, name = 'redis'): ReadinessCheck {
  return {
    name,
    async probe() {
      if (redis.status !== 'ready') throw new Error(`${name}: connection ${redis.status}`);
      const answer = await redis.ping();
      if (answer !== 'PONG') throw new Error(`${name}: PING answered ${answer}`);
    },
  };
}

/**
 * A readiness check on an API server, GET /version. The Kubernetes client is loaded the first time a
 * check is made, not when this module is: it is some 870 modules and over a CPU-second, which a
 * process that checks no cluster (the worker with the recording runners, FERRY_READY_KUBE=0) should
 * not pay for at every start.
 */
function apiServerReady(name: string, kubeConfig: () => Promise<KubeConfig>): ReadinessCheck {
  // Started now, so the client loads while the process starts; a bad kubeconfig is every probe's reason.
  const api = (async () => {
    const [kc, { VersionApi }] = await Promise.all([kubeConfig(), import('@kubernetes/client-node')]);
    return kc.makeApiClient(VersionApi);
  })();
  api.catch(() => {}); // the probes report it
  return {
    name,
    async probe() {
      await (await api).getCode();
    },
  };
}

/** The API server of a region answers GET /version. */
export function kubeReady(kc: KubeConfig, name: string): ReadinessCheck {
  return apiServerReady(name, async () => kc);
}

/** One check per region in the config: the API server behind the region's context. */
export function kubeReadyForRegions(
  config: FerryConfig,
  regions = Object.keys(config.regions),
): ReadinessCheck[] {
  return regions.map((region) =>
    apiServerReady(`kubernetes ${region}`, async () =>
      (await import('./kube/client.ts')).loadKubeConfig(config, region),
    ),
  );
}

/** In a pod with FERRY_IN_CLUSTER=1 (the node agent), the pod's own API server. */
export function inClusterKubeReady(): ReadinessCheck {
  return apiServerReady('kubernetes', async () => (await import('./kube/client.ts')).inClusterKubeConfig());
}

export interface HealthServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(
  health: Health,
  port: number,
  host = '127.0.0.1',
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    health
      .handle(req, res)
      .then((handled) => {
        if (!handled) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found\n');
        }
      })
      .catch((err) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(err as Error).message}\n`);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${actual}`,
    port: actual,
    async close() {
      health.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Starts the health server of a process from the environment: FERRY_HEALTH_PORT
 * (else `defaultPort`; "off" disables it) and FERRY_HEALTH_HOST. A default port
 * already taken (two processes on one machine) is a warning; an explicit one is an error.
 */
export async function healthFromEnv(
  health: Health,
  defaultPort: number,
  warn: (msg: string) => void,
): Promise<HealthServer | undefined> {
  const setting = process.env.FERRY_HEALTH_PORT;
  if (setting === 'off') return undefined;
  const host = process.env.FERRY_HEALTH_HOST ?? '127.0.0.1';
  try {
    const server = await startHealthServer(health, setting ? Number(setting) : defaultPort, host);
    const portFile = process.env.FERRY_HEALTH_PORT_FILE;
    if (portFile) await writeFile(portFile, `${server.port}\n`);
    return server;
  } catch (err) {
    if (setting) throw err;
    warn(`health endpoints not served: port ${defaultPort} ${(err as Error).message}; set FERRY_HEALTH_PORT`);
    health.stop();
    return undefined;
  }
}

/**
 * Whether this process's readiness includes the Kubernetes API: FERRY_READY_KUBE
 * ("1"/"0") overrides what the process says it uses.
 */
export function readinessUsesKube(usesKube: boolean): boolean {
  const setting = process.env.FERRY_READY_KUBE;
  if (setting === '0') return false;
  if (setting === '1') return true;
  return usesKube;
}

/** Keeps the queue depth gauge current for a /metrics scrape. */
export function queueDepthGauge(
  connection: Redis,
  prefix?: string,
): { refresh(): Promise<void>; close(): Promise<void> } {
  const queues = Object.values(QUEUES).map(
    (name) => new Queue(name, { connection, ...(prefix ? { prefix } : {}) }),
  );
  return {
    async refresh() {
      for (const q of queues) {
        const counts = await q.getJobCounts();
        for (const [state, n] of Object.entries(counts)) metrics.queueDepth.set({ queue: q.name, state }, n);
      }
    },
    async close() {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}
