// What commands (commands/) and the chat adapters may call beyond the domain:
// the request and answer shapes of the work that lives in adapters (Kubernetes,
// registries) and the queue that hands long work to the worker. Adapters
// implement these; none of them imports commands/.
import type { Action } from './domain/config.ts';

/** Who asked, and where: the chat platform's own ids. */
export interface Actor {
  userId: string;
  channel: string;
}

/** An answer to a person, as plain text (each chat adapter renders it). */
export interface Reply {
  ok: boolean;
  text: string;
  /** "ephemeral": only the person who asked sees it; "channel": everyone there. */
  visibility: 'ephemeral' | 'channel';
  releaseId?: string;
}

export const ephemeral = (ok: boolean, text: string, releaseId?: string): Reply => ({
  ok,
  text,
  visibility: 'ephemeral',
  ...(releaseId ? { releaseId } : {}),
});

/** Redeploy recorded images of an app in an environment (no build). */
export interface RollbackRequest {
  app: string;
  environment?: string;
  version?: string;
}

/** Copy a version's images to regional registries now. */
export interface SyncRequest {
  app: string;
  version: string;
  regions: string[];
}

/** Read one pod's output or log file. */
export interface LogsRequest {
  /** Present when a parsed command is passed as it is. */
  kind?: 'logs';
  app: string;
  environment?: string;
  region?: string;
  pod?: string;
  file?: string;
  lines?: number;
  since?: string;
  grep?: string;
}

export interface AdoptRequest {
  app: string;
  environment?: string;
  confirm: boolean;
}

export interface RebuildRequest {
  stack: string;
  environment?: string;
  dryRun: boolean;
}

/**
 * Long work a command hands to the worker (a BullMQ job each, in jobs/): the
 * job takes the app and environment's lock, writes an audit entry and posts
 * its outcome through the notify queue. `enqueue` answers at once.
 */
export type Operation =
  | { kind: 'rollback'; request: RollbackRequest & { environment: string }; actor: Actor }
  | { kind: 'sync'; request: SyncRequest; actor: Actor; environments: string[] }
  | { kind: 'logs'; request: LogsRequest & { environment: string }; actor: Actor; releaseId?: string };

export interface OperationQueue {
  /** Queues the operation; returns its id (one id per request, so a retried request queues nothing new). */
  enqueue(op: Operation, id: string): Promise<string>;
}

/** Checks before queueing that need the stores or clusters (a refusal is an answer, not an error). */
export interface RollbackPlanner {
  /** Why the rollback cannot start now, or undefined when it may be queued. */
  check(request: RollbackRequest & { environment: string }): Promise<string | undefined>;
}

export interface LogReader {
  /** Posts in the thread of the release `releaseId`, or of the alert `alertKey`, when given. */
  read(request: LogsRequest, actor: Actor, ctx?: { releaseId?: string; alertKey?: string }): Promise<Reply>;
}

export interface Adopter {
  request(request: AdoptRequest, actor: Actor): Promise<Reply>;
}

export interface Rebuilder {
  request(request: RebuildRequest, actor: Actor): Promise<Reply>;
}

export interface RollbackTarget {
  region: string;
  version: string;
  image: string;
  digest: string;
}

/** What a rollback did, region by region. */
export interface RollbackOutcome {
  app: string;
  environment: string;
  ms: number;
  done: { region: string; version: string; replicas: number; ms: number }[];
  failed: { region: string; reason: string }[];
}

export interface SyncedTarget {
  tag: string;
  target: string;
  ok: boolean;
  bytesCopied: number;
  bytesPresent: number;
  timeMs: number;
  errors: string[];
}

export interface SyncOutcome {
  /** False when the version has no image to sync. */
  built: boolean;
  ok: boolean;
  targets: SyncedTarget[];
}

/** The work behind operations, on the worker (Kubernetes, registries). */
export interface OperationRunners {
  rollback: {
    targets(
      req: RollbackRequest & { environment: string },
    ): Promise<{ ok: true; targets: RollbackTarget[] } | { ok: false; reason: string }>;
    run(
      id: string,
      app: string,
      env: string,
      targets: RollbackTarget[],
      deadlineMs: number,
    ): Promise<RollbackOutcome>;
    deadlineMs(environment: string): number;
  };
  sync(req: SyncRequest): Promise<SyncOutcome>;
}

/** A permission a command needs, checked by the domain policy (`may`) for each target before it runs. */
export type { Action };
