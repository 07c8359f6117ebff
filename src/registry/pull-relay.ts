// The pull relay: how a node's pre-pull is held to a share of its bandwidth.
//
// Kubernetes cannot cap the bytes of an image pull: the kubelet's
// `registryPullQPS` and `maxParallelImagePulls` count pulls, and containerd
// reads a registry as fast as it answers. So the pull pods a waiting release
// starts (jobs/prepare.ts) do not name the region registry but this relay,
// which the node agent serves on the node's loopback:
//
//   127.0.0.1:<port>/prepull/<region>/<release id>/<repository>@sha256:…
//
// containerd pulls from a loopback registry over plain HTTP without any
// registry configuration on the node, and only processes in the node's own
// network namespace (containerd, host-network pods) can reach it. The relay
// reads the manifest and blobs from the region registry with Ferry's
// credentials and hands them on through one pacer per node, so everything the
// node pre-pulls at once stays under `share` × the node's bandwidth. containerd
// keeps layers by digest, so when the rollout's pods later name the region
// registry, their pull finds every layer already on the node and fetches only
// the manifest.
//
// A pull is the release's, and it stops with the release: every request and,
// each `checkMs`, every stream in flight asks whether the release still waits
// (the domain's `pullAheadStopReason`). A reject, an abort or an expiry cuts
// the streams, and so does the release reaching its deploy step, so the
// rollout's own, unthrottled pull never waits behind containerd's lock on a
// layer the relay is still trickling in.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logging.ts';
import type { RegistryClient } from './client.ts';
import { describeCause, isAbortError, NotFoundError } from './errors.ts';

/** The image reference a pull pod names to pull `repository@digest` through the relay on its node. */
export function relayReference(
  port: number,
  region: string,
  releaseId: string,
  repository: string,
  digest: string,
): string {
  return `127.0.0.1:${port}/prepull/${region}/${releaseId}/${repository}@${digest}`;
}

/** A repository path component as the distribution spec allows it. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Whether a region and release id can stand in a relay reference (they are path components of it). */
export function relayable(region: string, releaseId: string): boolean {
  return PATH_COMPONENT.test(region) && PATH_COMPONENT.test(releaseId);
}

/** Time as the pacer sees it: the process clock, or a test's. */
export interface PacerClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const processClock: PacerClock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal ? { signal } : {}),
};

/**
 * Paces bytes to a rate, shared by every stream that takes from it (a generic
 * cell rate: each take moves a theoretical arrival time on by n / rate, and
 * waits until then). At most `burstMs` of unused rate is kept for later, so
 * over any span the bytes let through are at most rate × (span + burstMs)
 * plus one chunk.
 */
export class Pacer {
  private due = 0;
  private readonly bytesPerSecond: () => number;
  private readonly burstMs: number;
  private readonly clock: PacerClock;

  constructor(bytesPerSecond: () => number, opts: { burstMs?: number; clock?: PacerClock } = {}) {
    this.bytesPerSecond = bytesPerSecond;
    this.burstMs = opts.burstMs ?? 50;
    this.clock = opts.clock ?? processClock;
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    this.due = Math.max(this.due, now - this.burstMs) + (bytes * 1000) / this.bytesPerSecond();
    const wait = this.due - now;
    if (wait > 0) await this.clock.sleep(wait, signal);
  }
}

export interface PullRelayStats {
  /** Body bytes handed on (blobs and manifests). */
  bytes: number;
  /** Requests answered (any status). */
  requests: number;
  /** Manifest and blob requests served from the region registry (HEAD included). */
  served: number;
  /** Streams cut because their release stopped waiting. */
  cut: number;
  /** Requests refused because their release had stopped waiting. */
  refused: number;
}

export interface PullRelayOptions {
  /** Default 127.0.0.1: only the node's own network namespace reaches it. */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The node's pre-pull budget, read at every chunk (a config reload applies at once). */
  bytesPerSecond: () => number;
  /** The region registry to read from, with Ferry's credentials; undefined for a region this node does not serve. */
  upstream: (region: string) => RegistryClient | undefined;
  /** Why this release's pull must stop, or undefined while it may go on. */
  stopReason: (releaseId: string) => Promise<string | undefined>;
  /** How often streams in flight ask whether their release still waits. Default 1 s. */
  checkMs?: number;
  log: Logger;
  /** Counted in the process' metrics, if given. */
  onBytes?: (region: string, bytes: number) => void;
}

interface Stream {
  releaseId: string;
  abort: AbortController;
}

/** One manifest or blob request on its way through: where it reads from, and to whom it hands on. */
interface Exchange {
  client: RegistryClient;
  repo: string;
  digest: string;
  req: IncomingMessage;
  res: ServerResponse;
  stream: Stream;
  region: string;
}

const ROUTE =
  /^\/v2\/prepull\/([^/]+)\/([^/]+)\/((?:[a-z0-9._-]+\/)*[a-z0-9._-]+)\/(manifests|blobs)\/(sha256:[a-f0-9]{64})$/;

export class PullRelay {
  readonly stats: PullRelayStats = { bytes: 0, requests: 0, served: 0, cut: 0, refused: 0 };
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly streams = new Set<Stream>();
  private readonly pacer: Pacer;
  private readonly opts: PullRelayOptions;

  constructor(opts: PullRelayOptions) {
    this.opts = opts;
    this.pacer = new Pacer(opts.bytesPerSecond);
  }

  /** Streams in flight now. */
  get active(): number {
    return this.streams.size;
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        this.opts.log.warn({ err: describeCause(err), url: req.url }, 'pull relay: request failed');
        if (!res.headersSent) this.refuse(res, 502, 'UNAVAILABLE', describeCause(err));
        else res.destroy();
      });
    });
    server.listen(this.opts.port, this.opts.host ?? '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.timer = setInterval(() => void this.cutStopped(), this.opts.checkMs ?? 1000);
    this.timer.unref();
    const a = server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const s of this.streams) s.abort.abort(new Error('the relay is closing'));
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Cuts the streams of every release that no longer waits. */
  private async cutStopped(): Promise<void> {
    for (const [releaseId, streams] of Map.groupBy(this.streams, (s) => s.releaseId)) {
      const why = await this.opts.stopReason(releaseId).catch(() => undefined); // Redis away: keep pulling
      if (!why) continue;
      for (const s of streams) {
        if (s.abort.signal.aborted) continue;
        this.stats.cut++;
        s.abort.abort(new Error(why));
      }
      this.opts.log.info({ releaseId, streams: streams.length, why }, 'pull relay: pre-pull cut');
    }
  }

  /** A registry-style error answer (distribution spec: `{"errors": [{code, message}]}`). */
  private refuse(res: ServerResponse, status: number, code: string, message: string): void {
    const body = JSON.stringify({ errors: [{ code, message }] });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return this.refuse(res, 405, 'UNSUPPORTED', 'the pull relay only reads');
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
      });
      res.end('{}');
      return;
    }
    const m = ROUTE.exec(path);
    if (!m)
      return this.refuse(
        res,
        404,
        'NAME_UNKNOWN',
        'the pull relay serves /v2/prepull/<region>/<release>/<repository>/{manifests,blobs}/<sha256 digest> only',
      );
    const [, region, releaseId, repo, kind, digest] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const client = this.opts.upstream(region);
    if (!client) return this.refuse(res, 404, 'NAME_UNKNOWN', `this node does not pull for region ${region}`);
    const why = await this.opts.stopReason(releaseId);
    if (why) {
      this.stats.refused++;
      return this.refuse(res, 403, 'DENIED', `the pre-pull of ${releaseId} stopped: ${why}`);
    }
    const stream: Stream = { releaseId, abort: new AbortController() };
    this.streams.add(stream);
    // A client that goes away (containerd gave up, the pod was deleted) ends the upstream read too.
    res.once('close', () => {
      if (!res.writableFinished) stream.abort.abort(new Error('the puller went away'));
    });
    try {
      const x: Exchange = { client, repo, digest, req, res, stream, region };
      await (kind === 'manifests' ? this.manifest(x) : this.blob(x));
      this.stats.served++;
    } catch (err) {
      if (stream.abort.signal.aborted || isAbortError(err)) {
        res.destroy(); // the puller sees a broken read, and containerd keeps what it has for a resume
        return;
      }
      if (err instanceof NotFoundError) {
        if (!res.headersSent)
          return this.refuse(
            res,
            404,
            kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN',
            err.message,
          );
        res.destroy();
        return;
      }
      throw err;
    } finally {
      this.streams.delete(stream);
    }
  }

  private async manifest({ client, repo, digest, req, res, stream, region }: Exchange): Promise<void> {
    const m = await client.getManifest(repo, digest, stream.abort.signal);
    res.writeHead(200, {
      'content-type': m.mediaType,
      'content-length': m.bytes.byteLength,
      'docker-content-digest': m.digest,
    });
    if (req.method === 'HEAD') return void res.end();
    await this.send(res, m.bytes, stream, region);
    res.end();
  }

  private async blob({ client, repo, digest, req, res, stream, region }: Exchange): Promise<void> {
    if (req.method === 'HEAD') {
      const size = await client.headBlob(repo, digest, stream.abort.signal);
      if (size === null)
        throw new NotFoundError(`blob ${repo}@${digest} is not in the ${region} registry`, {
          registry: region,
        });
      res.writeHead(200, {
        'content-length': size,
        'docker-content-digest': digest,
        'accept-ranges': 'bytes',
      });
      return void res.end();
    }
    // containerd resumes a cut layer with a Range read from where its partial copy ends.
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range ? Number(range[1]) : 0;
    // containerd checks the digest of what it stores; the relay passes the bytes on as read.
    const { body, size, offset } = await client.getBlob(repo, digest, {
      offset: from,
      verify: false,
      signal: stream.abort.signal,
    });
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'docker-content-digest': digest,
      'accept-ranges': 'bytes',
    };
    if (offset > 0) {
      headers['content-range'] = `bytes ${offset}-${size - 1}/${size}`;
      headers['content-length'] = size - offset;
    } else if (size >= 0) headers['content-length'] = size;
    res.writeHead(offset > 0 ? 206 : 200, headers);
    for await (const chunk of body) await this.send(res, chunk, stream, region);
    res.end();
  }

  /** Hands `chunk` on at the node's pace, and no faster than the puller reads. */
  private async send(res: ServerResponse, chunk: Uint8Array, stream: Stream, region: string): Promise<void> {
    await this.pacer.take(chunk.byteLength, stream.abort.signal);
    stream.abort.signal.throwIfAborted();
    this.stats.bytes += chunk.byteLength;
    this.opts.onBytes?.(region, chunk.byteLength);
    if (!res.write(chunk)) await once(res, 'drain', { signal: stream.abort.signal });
  }
}
