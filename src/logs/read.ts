// Reads a container's output or a log file inside it, redacted line by line
// as it streams in, filtered by `grep`, keeping only the last lines within a
// byte budget. Nothing unredacted is kept or returned.
import type { V1Pod } from '@kubernetes/client-node';
import { type ClusterReader, ownerOf } from '../kube/logs.ts';
import { environmentOfPod } from '../watch/oom.ts';
import { TailCollector } from './collect.ts';
import { LineSplitter, type RedactionPattern, Redactor } from './redact.ts';

export interface ReadSpec {
  namespace: string;
  pod: string;
  container: string;
  /** Container output when unset; else an absolute path inside the container. */
  path?: string;
  previous?: boolean;
  lines: number;
  sinceSeconds?: number;
  grep?: string;
  maxBytes: number;
  patterns: readonly RedactionPattern[];
  deadlineMs?: number;
}

export interface ReadResult {
  lines: string[];
  bytesRead: number;
  /** Matching lines left out at the front (line count or byte budget). */
  dropped: number;
  redactions: number;
  stderr?: string;
  timedOut?: boolean;
}

/** How much of a file `grep` scans (from its end): a bounded read, like everything exec'd. */
const GREP_SCAN_FACTOR = 4;
const EXEC_TIMEOUT_S = 20;

export async function readLog(reader: ClusterReader, spec: ReadSpec): Promise<ReadResult> {
  const redactor = new Redactor({ patterns: spec.patterns });
  const collector = new TailCollector({
    maxLines: spec.lines,
    maxBytes: spec.maxBytes,
    ...(spec.grep ? { grep: spec.grep } : {}),
  });
  const splitter = new LineSplitter((line) => collector.push(redactor.line(line)));
  // The raw stream is never kept: each chunk is split, redacted and collected at once.
  // Without grep the source sends only the tail; with grep it sends a bounded window we filter.
  const scanBytes = Math.min(spec.maxBytes * GREP_SCAN_FACTOR, 200_000_000);
  let bytes = 0;
  // Memory stays bounded by the collector whatever arrives; the transfer is bounded by the
  // source (tail -n / tailLines), by scanBytes when grepping, and by the deadline.
  const onChunk = (chunk: Buffer) => {
    bytes += chunk.length;
    splitter.push(chunk);
    return !spec.grep || bytes < scanBytes + 1_000_000;
  };
  let stderr: string | undefined;
  let timedOut = false;
  if (!spec.path) {
    await reader.streamLog(
      spec.namespace,
      spec.pod,
      spec.container,
      {
        ...(spec.previous ? { previous: true } : {}),
        // with grep, read a wider window and keep the last matches
        tailLines: spec.grep ? Math.max(spec.lines * 50, 10_000) : spec.lines,
        ...(spec.sinceSeconds ? { sinceSeconds: spec.sinceSeconds } : {}),
        // limitBytes counts from the start of the window, so it only bounds a grep scan; a plain
        // tail must not lose its newest lines to it (a generous bound guards against runaway lines)
        limitBytes: spec.grep ? scanBytes : Math.max(spec.maxBytes * 20, 10_000_000),
      },
      onChunk,
      spec.deadlineMs ?? 30_000,
    );
  } else {
    // `since` has no meaning for a file we tail; the file's own timestamps are what people filter with grep.
    const tail = spec.grep ? ['tail', '-c', String(scanBytes)] : ['tail', '-n', String(spec.lines)];
    const r = await reader.execStream(
      spec.namespace,
      spec.pod,
      spec.container,
      ['timeout', '-s', 'KILL', String(EXEC_TIMEOUT_S), ...tail, spec.path],
      onChunk,
      spec.deadlineMs ?? (EXEC_TIMEOUT_S + 5) * 1000,
    );
    stderr = r.stderr.trim() || undefined;
    timedOut = r.timedOut;
  }
  splitter.end();
  return {
    lines: collector.kept,
    bytesRead: bytes,
    dropped: collector.dropped,
    redactions: redactor.redactions,
    ...(stderr ? { stderr: new Redactor({ patterns: spec.patterns }).text(stderr) } : {}),
    ...(timedOut ? { timedOut } : {}),
  };
}

/**
 * Why `pod` is not one of the app's pods in `environment`, or undefined when it is. A pod someone
 * names in `/release logs … pod <name>` must pass this: the namespace may hold other apps' pods
 * (and other environments'), and a name alone says nothing about whose pod it is. A pod is the
 * app's when Ferry's rollout labelled it (`app.kubernetes.io/name: <deployment>`, both tracks), when
 * it carries the app's `app` / `ferry.dev/app` label, or when its Deployment is the app's
 * (`<deployment>` or Ferry's second track `<deployment>-b`); it must not say it runs for another
 * environment (`ferry.dev/environment` or FERRY_ENV, which the rollout sets).
 */
export function notAppPod(
  pod: V1Pod,
  deployment: string,
  environment: string,
  app = deployment,
): string | undefined {
  const labels = pod.metadata?.labels ?? {};
  if (labels['ferry.dev/prewarm']) return 'it is a pre-warm pod, which only pulls the image';
  const owner = ownerOf(pod);
  // the environment's own workload, or (Ferry's label) another environment's pod of the app
  const ofApp =
    labels['app.kubernetes.io/name'] === deployment ||
    labels['ferry.dev/app'] === app ||
    labels.app === deployment ||
    (owner.kind === 'Deployment' && (owner.name === deployment || owner.name === `${deployment}-b`));
  if (!ofApp)
    return owner.kind === 'Pod'
      ? 'it belongs to no deployment of the app'
      : `it belongs to ${owner.kind} ${owner.name}`;
  const env = environmentOfPod(pod);
  if (env !== undefined && env !== environment) return `it runs for ${env}`;
  return undefined;
}

/** Newest first, running pods before others. */
export function newestPod(pods: readonly V1Pod[]): V1Pod | undefined {
  const score = (p: V1Pod) => (p.status?.phase === 'Running' ? 1 : 0);
  const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  return [...pods]
    .filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) => score(b) - score(a) || created(b) - created(a))[0];
}
