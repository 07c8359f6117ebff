// Turns OOM findings (from any source) into alerts: maps the pod to its app
// and environment, deduplicates (one alert per workload per window, with a
// count), respects silences, adds the last log lines (redacted) and
// announces a chat-neutral `alert` to the app's alert channel — and into the
// thread of the release in flight for that app and environment, if any.
import type { MetricsSource } from '../analysis/prometheus.ts';
import { alertDestination } from '../domain/alerts.ts';
import type { FerryConfig } from '../domain/config.ts';
import { durationMs, formatDuration } from '../domain/duration.ts';
import type { Announcer, Attachment, Outbound, ReleaseRepository } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import { ownerOfWorkload } from '../domain/workload.ts';
import type { ClusterReader } from '../kube/logs.ts';
import type { Logger } from '../logging.ts';
import { snippetOf } from '../logs/collect.ts';
import { readLog } from '../logs/read.ts';
import type { AlertDedupe } from './dedupe.ts';
import { formatBytes, type OomFinding } from './oom.ts';
import type { Silences } from './silence.ts';

export type AlertOutcome = 'alerted' | 'updated' | 'duplicate' | 'silenced' | 'unmanaged' | 'stale';

export interface AlerterDeps {
  config: () => FerryConfig;
  announcer: Announcer;
  releases: Pick<ReleaseRepository, 'active'>;
  dedupe: AlertDedupe;
  silences: Silences;
  cluster: (context: string) => ClusterReader;
  log: Logger;
  now?: () => number;
  /** Lines of log in an alert (default 20). */
  logLines?: number;
  /** Prometheus (when `metrics.prometheus` is configured): the memory chart of an OOM alert. */
  metrics?: () => Pick<MetricsSource, 'range'> | undefined;
  /** Draws the memory chart (PNG); default src/analysis/charts.ts. */
  drawChart?: (title: string, at: number[], bytes: number[], limit: number | undefined) => Promise<Buffer>;
  /** Called after an alert is announced (metrics, benchmarks). */
  onAlert?: (alert: Extract<Outbound, { kind: 'alert' }>, finding: OomFinding) => void;
}

export const ALERT_LOG_LINES = 20;

/** The alert's silence key for a workload: what the Silence button passes to `Silences.silence`. */
export function silenceKeyOf(workload: string): string {
  return `oom/${workload}`;
}

/** region/namespace/owner/container: repeats of one of these are one alert. */
export function workloadOf(f: Pick<OomFinding, 'region' | 'namespace' | 'owner' | 'container'>): string {
  return `${f.region}/${f.namespace}/${f.owner}/${f.container}`;
}

/** The app a pod belongs to: its Ferry labels, else the placement of its namespace and owner. */
export function appOf(
  config: FerryConfig,
  f: Pick<OomFinding, 'namespace' | 'owner' | 'labels'> & { region?: string },
): string | undefined {
  return ownerOfWorkload(config, f)?.app;
}

export class Alerter {
  private readonly d: AlerterDeps;
  /** Sightings being handled right now (two sources may report one kill at once). */
  private readonly inFlight = new Set<string>();

  constructor(deps: AlerterDeps) {
    this.d = deps;
  }

  async handle(f: OomFinding): Promise<AlertOutcome> {
    const config = this.d.config();
    const now = this.d.now?.() ?? Date.now();
    const windowMs = durationMs(config.alerts.dedupeWindow);
    // A kill older than the window (seen again in a re-list, or from before Ferry watched) is history, not news.
    if (now - f.killedAt > windowMs) return 'stale';
    const app = appOf(config, f);
    if (!app) return 'unmanaged';
    if (this.inFlight.has(f.occurrence)) return 'duplicate';
    this.inFlight.add(f.occurrence);
    try {
      const workload = workloadOf(f);
      const state = await this.d.dedupe.record(workload, f.occurrence, windowMs, now);
      if (!state) return 'duplicate';
      const silenceKey = silenceKeyOf(workload);
      const release = await this.releaseFor(app, f);
      const environment = release?.environment ?? this.environmentOf(config, app, f);
      if (await this.d.silences.isSilenced(silenceKey)) {
        this.d.log.info({ workload, count: state.count }, 'OOM alert silenced');
        return 'silenced';
      }
      // Routed by the owner team and the environment (alerts.routes); the app's channel by default.
      const dest = alertDestination(config, app, environment);
      if (!dest) return 'unmanaged';
      const channel = dest.channel;
      const [lines, memory] = await Promise.all([
        this.lastLines(config, f),
        this.memoryChart(config, app, environment, f, now),
      ]);
      const fields = this.fields(app, environment, f, state.count, state.firstAt, now);
      if (memory) fields.push(['Memory history', memory.note]);
      const alert: Extract<Outbound, { kind: 'alert' }> = {
        kind: 'alert',
        key: state.key,
        channel,
        ...(dest.room ? { room: dest.room } : {}),
        ...(release ? { releaseId: release.id } : {}),
        title: `OOM kill: ${app} ${f.container} in ${environment ?? '?'}/${f.region}${f.victim === 'child' ? ' (a child process)' : ''}`,
        fields,
        ...(lines ? { snippet: lines } : {}),
        ...(memory?.chart ? { chart: memory.chart } : {}),
        count: state.count,
        silenceKey,
        ...(environment
          ? { logs: { alertKey: state.key, app, environment, region: f.region, pod: f.pod } }
          : {}),
      };
      await this.d.announcer.announce(alert);
      this.d.onAlert?.(alert, f);
      this.d.log.info(
        { key: state.key, count: state.count, source: f.source, pod: f.pod, container: f.container, channel },
        'OOM alert announced',
      );
      return state.fresh ? 'alerted' : 'updated';
    } finally {
      this.inFlight.delete(f.occurrence);
    }
  }

  private fields(
    app: string,
    environment: string | undefined,
    f: OomFinding,
    count: number,
    firstAt: number,
    now: number,
  ): [string, string][] {
    const fields: [string, string][] = [
      ['App', app],
      ['Environment', environment ?? 'unknown'],
      ['Region', f.region],
      ['Pod', `${f.namespace}/${f.pod}`],
      ['Container', f.container],
      [
        'Killed',
        f.victim === 'main'
          ? 'the main process (the container was restarted)'
          : f.victim === 'child'
            ? `a child process; the container kept running${f.detail ? ` (${f.detail})` : ''}`
            : (f.detail ?? 'a process (kernel OOM event)'),
      ],
      ['Memory limit', fmtQuantity(f.memoryLimit) ?? 'none set'],
      ['Memory request', fmtQuantity(f.memoryRequest) ?? 'none set'],
    ];
    if (f.restartCount !== undefined) fields.push(['Restarts', String(f.restartCount)]);
    if (f.node) fields.push(['Node', f.node]);
    fields.push(['Detected by', SOURCE_TEXT[f.source]]);
    fields.push([
      'Occurrences',
      count > 1
        ? `${count} in ${formatDuration(Math.max(1000, now - firstAt))}`
        : `1 at ${new Date(f.killedAt).toISOString()}`,
    ]);
    return fields;
  }

  /**
   * The container's memory over the last minutes, from Prometheus, as a PNG with the limit drawn;
   * or, when there is none, a note saying why (the alert goes out either way).
   */
  private async memoryChart(
    config: FerryConfig,
    app: string,
    environment: string | undefined,
    f: OomFinding,
    now: number,
  ): Promise<{ note: string; chart?: Attachment }> {
    const source = this.d.metrics?.();
    if (!source) return { note: 'not available: no Prometheus is configured (metrics.prometheus)' };
    const query = config.alerts.memoryQuery
      .replaceAll('{namespace}', f.namespace)
      .replaceAll('{pod}', f.pod)
      .replaceAll('{container}', f.container);
    const windowMs = durationMs(config.alerts.memoryWindow);
    let points: { at: number; value: number }[];
    try {
      points = await source.range(query, now - windowMs, now, Math.max(5_000, Math.round(windowMs / 120)));
    } catch (err) {
      return { note: `not available: Prometheus did not answer (${(err as Error).message.slice(0, 200)})` };
    }
    if (points.length === 0) return { note: `not available: Prometheus has no samples of ${f.pod}` };
    const limit = limitBytes(f.memoryLimit);
    const title = `Memory of ${app} ${f.container} (${f.pod}), last ${config.alerts.memoryWindow}`;
    try {
      const draw = this.d.drawChart ?? drawMemoryChart;
      const png = await draw(
        title,
        points.map((p) => p.at),
        points.map((p) => p.value),
        limit,
      );
      const peak = Math.max(...points.map((p) => p.value));
      return {
        note: `peak ${formatBytes(peak)} in the last ${config.alerts.memoryWindow} (chart in the thread)`,
        chart: {
          name: `memory-${app}-${environment ?? 'unknown'}-${f.pod}.png`,
          text: `${title}: peak ${formatBytes(peak)}${limit ? `, limit ${formatBytes(limit)}` : ''}`,
          bytes: png.toString('base64'),
        },
      };
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, 'memory chart could not be drawn');
      return { note: `${points.length} samples; the chart could not be drawn` };
    }
  }

  /** The last lines the killed process's container wrote: the previous container after a restart. */
  private async lastLines(config: FerryConfig, f: OomFinding): Promise<string | undefined> {
    const region = config.regions[f.region];
    if (!region) return undefined;
    const reader = this.d.cluster(region.context);
    const spec = {
      namespace: f.namespace,
      pod: f.pod,
      container: f.container,
      lines: this.d.logLines ?? ALERT_LOG_LINES,
      maxBytes: 64 * 1024,
      patterns: config.redaction,
      deadlineMs: 4000,
    };
    const attempts = f.victim === 'child' ? [false] : [true, false];
    for (const previous of attempts) {
      try {
        const r = await readLog(reader, { ...spec, previous });
        if (r.lines.length) return snippetOf(r.lines, this.d.logLines ?? ALERT_LOG_LINES, 2500);
      } catch {
        // no previous container yet (the restart has not happened): try the current one
      }
    }
    return undefined;
  }

  private async releaseFor(app: string, f: OomFinding): Promise<Release | undefined> {
    const env = f.environment;
    const active = (await this.d.releases.active()).filter(
      (r) => r.app === app && (!env || r.environment === env) && r.regions.includes(f.region),
    );
    return active.at(-1);
  }

  /** The environment a pod runs for: its label, else the app's default (if it runs in the region), else the first that does. */
  private environmentOf(config: FerryConfig, app: string, f: OomFinding): string | undefined {
    if (f.environment && config.environments[f.environment]) return f.environment;
    const a = config.apps[app];
    if (a && config.environments[a.defaultEnvironment]?.regions.includes(f.region))
      return a.defaultEnvironment;
    return Object.entries(config.environments).find(([, e]) => e.regions.includes(f.region))?.[0];
  }
}

const SOURCE_TEXT: Record<OomFinding['source'], string> = {
  'pod-status': 'pod status (OOMKilled)',
  event: 'Kubernetes event',
  cgroup: 'node agent (memory cgroup oom_kill)',
};

function fmtQuantity(q: string | undefined): string | undefined {
  if (!q) return undefined;
  // a plain byte count (e.g. read from a cgroup) reads better in MiB; Kubernetes quantities stay as written
  return /^\d+$/.test(q) ? formatBytes(Number(q)) : q;
}

const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL_SUFFIX: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes memory quantity (64Mi, 1G, 123456) in bytes; undefined when it is none of those. */
export function limitBytes(q: string | undefined): number | undefined {
  const m = q ? /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q) : null;
  if (!m) return undefined;
  const unit = m[2] ? (BINARY_SUFFIX[m[2]] ?? DECIMAL_SUFFIX[m[2]] ?? 1) : 1;
  return Number(m[1]) * unit;
}

/** The memory chart: one panel, bytes over time, the limit as the threshold line. */
export async function drawMemoryChart(
  title: string,
  at: number[],
  bytes: number[],
  limit: number | undefined,
): Promise<Buffer> {
  const { renderChart } = await import('../analysis/charts.ts');
  const mib = (b: number) => b / 2 ** 20;
  return renderChart(
    title,
    [
      {
        title: 'memory in use (MiB)',
        series: { at, new: bytes.map((b) => ({ value: mib(b) })) },
        ...(limit ? { max: mib(limit) } : {}),
      },
    ],
    at[0],
  );
}
