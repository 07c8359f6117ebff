// `/release logs …` and the "Show logs" button: reads a container's output or
// a log file inside it, redacted before it leaves this process, and posts a
// snippet (the last ~40 lines) with the whole capped text as a file — into
// the release's thread when one is the context, else into the channel where
// it was asked. The person gets a short answer saying where it went.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { FerryConfig } from '../domain/config.ts';
import { parseDuration } from '../domain/duration.ts';
import { isPodName } from '../domain/grammar.ts';
import { lookup } from '../domain/lookup.ts';
import type { Announcer, Outbound, ReleaseRepository } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import { echo, literal } from '../domain/text.ts';
import { placementOf } from '../domain/workload.ts';
import { type ClusterReader, clusterReader } from '../kube/logs.ts';
import {
  type Actor,
  ephemeral,
  type LogReader,
  type LogsRequest as LogsCommand,
  type Reply,
} from '../ports.ts';
import { environmentOfPod } from '../watch/oom.ts';
import { snippetOf } from './collect.ts';
import { newestPod, notAppPod, readLog } from './read.ts';

export interface LogServiceDeps {
  config: () => FerryConfig;
  announcer: Announcer;
  releases: Pick<ReleaseRepository, 'active' | 'get'>;
  /** The cluster of a kubeconfig context (default: $KUBECONFIG). */
  cluster?: (context: string) => ClusterReader;
}

export interface LogContext {
  /** The release whose thread the request came from (the "Show logs" button of a card). */
  releaseId?: string;
  /** The alert whose thread gets the logs (the "Show logs" button of an alert). */
  alertKey?: string;
}

/** What was read, before it is posted. */
export interface LogReport {
  app: string;
  environment: string;
  region: string;
  pod: string;
  container: string;
  file: string;
  text: string;
  snippet: string;
  lines: number;
  dropped: number;
  redactions: number;
  bytesRead: number;
}

export const SNIPPET_LINES = 40;
export const SNIPPET_CHARS = 3000;

class Refusal extends Error {}

export class KubeLogService implements LogReader {
  private readonly deps: LogServiceDeps;

  constructor(deps: LogServiceDeps) {
    this.deps = deps;
  }

  /** The permission (`logs` on the app and environment) is checked by the command before this runs. */
  async read(cmd: LogsCommand, actor: Actor, ctx: LogContext = {}): Promise<Reply> {
    const config = this.deps.config();
    const app = lookup(config.apps, cmd.app);
    if (!app) return ephemeral(false, `Ferry does not know the app ${echo(cmd.app)}.`);
    const environment = cmd.environment ?? app.defaultEnvironment;
    let report: LogReport;
    try {
      report = await this.collect(cmd, environment);
    } catch (err) {
      if (err instanceof Refusal) return ephemeral(false, err.message);
      return ephemeral(false, `Could not read the logs of ${cmd.app}: ${literal((err as Error).message)}`);
    }
    // An alert's button answers in the alert's thread, never in a release's.
    const release = ctx.alertKey ? undefined : await this.threadRelease(cmd.app, environment, actor, ctx);
    const head = `${report.file === 'stdout' ? 'Output' : `\`${report.file}\` log`} of ${report.app} in ${report.environment}/${report.region}, pod \`${report.pod}\` (${report.container})${cmd.grep ? `, lines containing ${echo(cmd.grep, 200)}` : ''}: last ${report.lines} line${report.lines === 1 ? '' : 's'}${report.dropped ? ` (${report.dropped} earlier left out: ${cmd.lines ?? config.limits.logLines}-line / ${config.limits.logBytes}-byte cap)` : ''}${report.redactions ? `; ${report.redactions} secret${report.redactions === 1 ? '' : 's'} redacted` : ''}${cmd.since && report.file !== 'stdout' ? ` ("since" applies to container output; a file is read from its end)` : ''}. Requested by <@${actor.userId}>.`;
    const fileName = `${report.app}-${report.environment}-${report.region}-${report.pod}-${report.file}.log`;
    const body = {
      text: head,
      snippet: report.snippet || '(no lines)',
      file: { name: fileName, text: report.text },
    };
    let msg: Outbound;
    let where: string;
    if (release) {
      msg = { kind: 'reply', releaseId: release.id, ...body };
      where = `the thread of release ${release.id}`;
    } else if (ctx.alertKey) {
      msg = { kind: 'message', channel: actor.channel, threadOfAlert: ctx.alertKey, ...body };
      where = 'the thread of the alert';
    } else {
      msg = { kind: 'message', channel: actor.channel, ...body };
      where = `<#${actor.channel}>`;
    }
    await this.deps.announcer.announce(msg);
    return ephemeral(
      true,
      `Posted ${report.lines} line${report.lines === 1 ? '' : 's'} of ${report.file === 'stdout' ? 'output' : `the ${report.file} log`} from \`${report.pod}\` (${report.region}) to ${where}: a snippet and the whole text as ${fileName}.`,
      release?.id,
    );
  }

  /** Reads and redacts, without posting anything. */
  async collect(cmd: LogsCommand, environment = cmd.environment): Promise<LogReport> {
    const config = this.deps.config();
    const app = lookup(config.apps, cmd.app);
    if (!app) throw new Refusal(`Ferry does not know the app ${echo(cmd.app)}.`);
    const env = environment ?? app.defaultEnvironment;
    const envConfig = lookup(config.environments, env);
    if (!envConfig) throw new Refusal(`Ferry does not know the environment ${echo(env)}.`);
    const region = cmd.region ?? envConfig.regions[0];
    if (!region || !envConfig.regions.includes(region)) {
      throw new Refusal(
        `${env} does not run in ${echo(cmd.region ?? '')}; its regions: ${envConfig.regions.join(', ')}.`,
      );
    }
    const regionConfig = lookup(config.regions, region);
    if (!regionConfig) throw new Refusal(`Ferry does not know the region ${echo(region)}.`);
    const reader = (this.deps.cluster ?? clusterReader)(regionConfig.context);
    const { namespace, name: deployment } = placementOf(config, cmd.app, env, region);

    let pod: V1Pod | undefined;
    if (cmd.pod) {
      // A named pod must be this app's, in this environment: the name alone could be any pod of the
      // namespace. The refusal names the app's pods there, never the others.
      const named = isPodName(cmd.pod) ? await reader.pod(namespace, cmd.pod) : undefined;
      const why = named ? notAppPod(named, deployment, env, cmd.app) : 'there is no such pod';
      if (!named || why) {
        const theirs = (await reader.pods(namespace))
          .filter((p) => !p.metadata?.deletionTimestamp && !notAppPod(p, deployment, env, cmd.app))
          .map((p) => p.metadata?.name as string);
        throw new Refusal(
          `${echo(cmd.pod)} is not a pod of ${cmd.app} in ${env} (${region}): ${why}. ${
            theirs.length
              ? `Pods of ${cmd.app} there: ${theirs.slice(0, 10).join(', ')}${theirs.length > 10 ? ` and ${theirs.length - 10} more` : ''}.`
              : `${cmd.app} has no pods there now.`
          } Leave out \`pod\` to read the newest one.`,
        );
      }
      pod = named;
    } else {
      // Only the app's pods, never another app's of the namespace nor one that runs for another
      // environment (the same rule as for a named pod).
      const mine = (await reader.pods(namespace)).filter((p) => !notAppPod(p, deployment, env, cmd.app));
      // where environments share a namespace, the pods that say they run this environment
      const ofEnv = mine.filter((p) => environmentOfPod(p) === env);
      pod = newestPod(ofEnv.length ? ofEnv : mine);
      if (!pod) throw new Refusal(`${cmd.app} has no pods in ${env} (${region}, namespace ${namespace}).`);
    }
    const podName = pod.metadata?.name as string;
    const container = app.container ?? pod.spec?.containers[0]?.name;
    if (!container) throw new Refusal(`Pod ${podName} has no containers.`);

    const file = cmd.file ?? 'stdout';
    const files = { ...(lookup(config.stacks, app.stack)?.logFiles ?? {}), ...app.logFiles };
    const path = file === 'stdout' ? undefined : lookup(files, file);
    if (file !== 'stdout' && !path) {
      throw new Refusal(
        `${cmd.app} has no log file ${echo(file)}. Files: ${['stdout', ...Object.keys(files)].join(', ')}.`,
      );
    }
    const lines = cmd.lines ?? config.limits.logLines;
    const maxBytes = config.limits.logBytes;
    const sinceMs = cmd.since ? parseDuration(cmd.since) : undefined;
    const base = {
      namespace,
      pod: podName,
      container,
      lines,
      maxBytes,
      patterns: config.redaction,
      ...(cmd.grep ? { grep: cmd.grep } : {}),
      ...(sinceMs ? { sinceSeconds: Math.max(1, Math.ceil(sinceMs / 1000)) } : {}),
    };

    const sections: string[] = [];
    let snippetLines: string[] = [];
    let total = 0;
    let dropped = 0;
    let redactions = 0;
    let bytesRead = 0;
    const status = pod.status?.containerStatuses?.find((s: V1ContainerStatus) => s.name === container);
    // For output: the previous container too, when it ended (crash, OOM kill) — that is what people look for.
    const last = status?.lastState?.terminated;
    if (!path && last) {
      try {
        const prev = await readLog(reader, { ...base, previous: true });
        if (prev.lines.length) {
          sections.push(
            `──── previous container: ${last.reason ?? 'terminated'} (exit ${last.exitCode}) at ${fmtTime(last.finishedAt)} ────`,
            ...prev.lines,
            '──── current container ────',
          );
          total += prev.lines.length;
          dropped += prev.dropped;
          redactions += prev.redactions;
          bytesRead += prev.bytesRead;
          snippetLines = prev.lines;
        }
      } catch {
        // the previous container's log is gone (kubelet keeps only the last one)
      }
    }
    const cur = await readLog(reader, { ...base, ...(path ? { path } : {}) });
    if (path && cur.lines.length === 0 && cur.stderr) {
      throw new Refusal(
        `Could not read ${literal(path)} in ${podName}: ${literal(cur.stderr.split('\n')[0] ?? '')}`,
      );
    }
    sections.push(...cur.lines);
    total += cur.lines.length;
    dropped += cur.dropped;
    redactions += cur.redactions;
    bytesRead += cur.bytesRead;
    if (cur.lines.length) snippetLines = cur.lines;
    if (cur.timedOut) sections.push(`[Ferry stopped reading after the deadline; the file may be longer]`);
    // The whole text stays within the byte cap (the previous container's part counts too).
    let text = sections.join('\n');
    if (Buffer.byteLength(text) > maxBytes) {
      const buf = Buffer.from(text);
      text = buf.subarray(buf.length - maxBytes).toString('utf8');
      text = text.slice(text.indexOf('\n') + 1);
    }
    return {
      app: cmd.app,
      environment: env,
      region,
      pod: podName,
      container,
      file,
      text: text ? `${text}\n` : '',
      snippet: snippetOf(snippetLines, SNIPPET_LINES, SNIPPET_CHARS),
      lines: total,
      dropped,
      redactions,
      bytesRead,
    };
  }

  /** The release whose thread is the context: the one named, or the one in flight for app+env in this channel. */
  private async threadRelease(
    app: string,
    environment: string,
    actor: Actor,
    ctx: LogContext,
  ): Promise<Release | undefined> {
    if (ctx.releaseId) {
      const r = await this.deps.releases.get(ctx.releaseId);
      if (r) return r;
    }
    const active = await this.deps.releases.active();
    return active.find(
      (r) =>
        r.app === app &&
        r.environment === environment &&
        (r.thread?.channel === actor.channel || r.requestChannel === actor.channel),
    );
  }
}

function fmtTime(t: Date | string | undefined): string {
  if (!t) return '?';
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}
