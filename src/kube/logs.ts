// Reading from a cluster for logs and alerts: pods, container output (the
// log API) and files inside a container (exec of a bounded command). Exec's
// status callback is not always called and closing its socket does not stop
// the command (client-node #714, #2532), so every exec'd command is bounded
// by itself (`timeout`, `tail -n`/`tail -c`) and by a deadline here.
import { Writable } from 'node:stream';
import { CoreV1Api, Exec, type KubeConfig, Log, type V1Pod } from '@kubernetes/client-node';
import { PooledKubeConfig } from './client.ts';

const configs = new Map<string, KubeConfig>();

/** The kubeconfig ($KUBECONFIG or in-cluster) switched to one context; cached per context. */
export function kubeConfigFor(context: string): KubeConfig {
  let kc = configs.get(context);
  if (!kc) {
    kc = new PooledKubeConfig();
    kc.loadFromDefault();
    if (kc.getContexts().some((c) => c.name === context)) kc.setCurrentContext(context);
    else if (process.env.KUBERNETES_SERVICE_HOST === undefined)
      throw new Error(`kubeconfig has no context "${context}"`);
    configs.set(context, kc);
  }
  return kc;
}

export interface LogReadOptions {
  previous?: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  limitBytes?: number;
}

export interface StreamResult {
  bytes: number;
  /** Stopped because the reader asked to (byte budget reached). */
  stopped: boolean;
}

/** One cluster's pods and logs. */
export class ClusterReader {
  readonly context: string;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  private readonly logApi: Log;
  private readonly execApi: Exec;

  constructor(context: string, kc: KubeConfig = kubeConfigFor(context)) {
    this.context = context;
    this.kc = kc;
    this.core = kc.makeApiClient(CoreV1Api);
    this.logApi = new Log(kc);
    this.execApi = new Exec(kc);
  }

  async pods(
    namespace: string,
    opts: { labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({ namespace, ...opts });
    return list.items;
  }

  async pod(namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Streams a container's output to `onChunk` until it ends, `onChunk` returns
   * false (enough read), or the deadline passes.
   */
  async streamLog(
    namespace: string,
    pod: string,
    container: string,
    opts: LogReadOptions,
    onChunk: (chunk: Buffer) => boolean | undefined,
    deadlineMs = 30_000,
  ): Promise<StreamResult> {
    let bytes = 0;
    let stopped = false;
    let controller: AbortController | undefined;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (stopped) return cb();
        bytes += chunk.length;
        if (onChunk(chunk) === false) {
          stopped = true;
          controller?.abort();
          finish();
        }
        cb();
      },
    });
    sink.on('finish', () => finish());
    sink.on('error', () => finish());
    sink.on('unpipe', () => setImmediate(() => finish()));
    const timer = setTimeout(() => {
      stopped = true;
      controller?.abort();
      finish();
    }, deadlineMs);
    try {
      controller = await this.logApi.log(namespace, pod, container, sink, {
        follow: false,
        ...(opts.previous ? { previous: true } : {}),
        ...(opts.tailLines ? { tailLines: opts.tailLines } : {}),
        ...(opts.sinceSeconds ? { sinceSeconds: opts.sinceSeconds } : {}),
        ...(opts.limitBytes ? { limitBytes: opts.limitBytes } : {}),
      });
      if (stopped) controller.abort();
      await done;
    } finally {
      clearTimeout(timer);
    }
    return { bytes, stopped };
  }

  /**
   * Runs a bounded command in a container and streams its stdout. The command
   * must bound itself; `deadlineMs` only stops Ferry from waiting longer.
   * Resolves with what the command wrote to stderr.
   */
  async execStream(
    namespace: string,
    pod: string,
    container: string,
    command: string[],
    onChunk: (chunk: Buffer) => boolean | undefined,
    deadlineMs = 30_000,
  ): Promise<{ stderr: string; bytes: number; stopped: boolean; timedOut: boolean }> {
    let bytes = 0;
    let stopped = false;
    let timedOut = false;
    let stderr = '';
    const stdout = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (!stopped) {
          bytes += chunk.length;
          if (onChunk(chunk) === false) stopped = true;
        }
        cb();
      },
    });
    const errSink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (stderr.length < 4096) stderr += chunk.toString();
        cb();
      },
    });
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const ws = await this.execApi.exec(namespace, pod, container, command, stdout, errSink, null, false, () =>
      finish(),
    );
    const timer = setTimeout(() => {
      timedOut = true;
      finish();
    }, deadlineMs);
    const poll = setInterval(() => {
      if (stopped) finish();
    }, 50);
    ws.on('close', () => finish());
    ws.on('error', () => finish());
    try {
      await done;
    } finally {
      clearTimeout(timer);
      clearInterval(poll);
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    return { stderr, bytes, stopped, timedOut };
  }
}

const readers = new Map<string, ClusterReader>();

/** A shared reader per kubeconfig context. */
export function clusterReader(context: string): ClusterReader {
  let r = readers.get(context);
  if (!r) {
    r = new ClusterReader(context);
    readers.set(context, r);
  }
  return r;
}

/** Quotes one word for `sh -c`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The deployment (or other owner) a pod belongs to: ReplicaSet name minus its pod-template-hash. */
export function ownerOf(pod: V1Pod): { kind: string; name: string } {
  const ref = pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  if (!ref) return { kind: 'Pod', name: pod.metadata?.name ?? '?' };
  if (ref.kind === 'ReplicaSet') {
    const hash = pod.metadata?.labels?.['pod-template-hash'];
    if (hash && ref.name.endsWith(`-${hash}`))
      return { kind: 'Deployment', name: ref.name.slice(0, -hash.length - 1) };
    const m = /^(.*)-[a-z0-9]{5,10}$/.exec(ref.name);
    return { kind: 'Deployment', name: m ? (m[1] as string) : ref.name };
  }
  return { kind: ref.kind, name: ref.name };
}
