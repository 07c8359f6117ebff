// A small, bounded load generator for the analysis gates: it sends requests
// to the pods behind an app's Service in one region — the pods the Service's
// selector (app.kubernetes.io/name) picks and that are Ready, re-read every
// second, so traffic spreads over old and new pods as the rollout moves —
// and stops by itself after `maxRequests` or `maxMs`, whichever comes first.
// It only ever talks to local addresses (loopback and private ranges): it
// refuses to start against anything else.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api } from '@kubernetes/client-node';

export interface LoadOptions {
  core: CoreV1Api;
  namespace: string;
  /** The Service's selector value: app.kubernetes.io/name. */
  name: string;
  port?: number;
  path?: string;
  /** Requests per second (spread evenly). Default 20. */
  rate?: number;
  maxRequests?: number;
  maxMs?: number;
  signal?: AbortSignal;
}

export interface LoadReport {
  sent: number;
  byStatus: Record<string, number>;
  ms: number;
}

/** Loopback and private IPv4 ranges (RFC 1918), plus IPv6 loopback and unique-local. */
export function isLocalAddress(ip: string): boolean {
  if (ip === '::1' || /^f[cd][0-9a-f]{2}:/i.test(ip)) return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

export async function generateLoad(o: LoadOptions): Promise<LoadReport> {
  const rate = o.rate ?? 20;
  const maxRequests = o.maxRequests ?? 2_000;
  const maxMs = o.maxMs ?? 120_000;
  const port = o.port ?? 8080;
  const started = Date.now();
  const report: LoadReport = { sent: 0, byStatus: {}, ms: 0 };
  let targets: string[] = [];
  let readAt = 0;
  const refresh = async () => {
    const pods = await o.core.listNamespacedPod({
      namespace: o.namespace,
      labelSelector: `app.kubernetes.io/name=${o.name}`,
    });
    targets = pods.items
      .filter(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
          p.status?.podIP,
      )
      .map((p) => p.status?.podIP as string);
    const far = targets.find((ip) => !isLocalAddress(ip));
    if (far) throw new Error(`load generator: ${far} is not a local address; refusing to send traffic there`);
    readAt = Date.now();
  };
  const inflight = new Set<Promise<void>>();
  for (let i = 0; report.sent < maxRequests && Date.now() - started < maxMs && !o.signal?.aborted; i++) {
    if (Date.now() - readAt > 1_000)
      await refresh().catch((e: Error) => {
        if (e.message.startsWith('load generator:')) throw e;
      });
    const ip = targets[i % Math.max(1, targets.length)];
    if (ip) {
      report.sent++;
      const p = fetch(`http://${ip}:${port}${o.path ?? '/'}`, { signal: AbortSignal.timeout(5_000) })
        .then(async (res) => {
          await res.arrayBuffer();
          report.byStatus[res.status] = (report.byStatus[res.status] ?? 0) + 1;
        })
        .catch(() => {
          report.byStatus.error = (report.byStatus.error ?? 0) + 1;
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await sleep(1_000 / rate);
  }
  await Promise.all(inflight);
  report.ms = Date.now() - started;
  return report;
}
