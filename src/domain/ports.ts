// What the lifecycle needs from the outside world, as interfaces. The store
// (Redis), the scheduler (BullMQ) and the chat adapter (Slack) implement
// them; the domain never sees their types.
import type { AuditEntry, Release, ReleaseEvent } from './release.ts';
import type { PinnedImage } from './version.ts';

export type CommitResult =
  | { ok: true; release: Release; audit: AuditEntry; handedTo?: string }
  | { ok: false; reason: string };

export type LockResult = { acquired: true } | { acquired: false; position: number; holder: string };

/** Who holds an app and environment's lock, and since when (ms). */
export interface LockInfo {
  holder: string;
  since?: number;
}

/**
 * A permission check the store runs on the release as freshly read, before
 * each commit attempt: an event allowed on one revision may not be on the next.
 */
export type CommitGuard = (current: Release) => { ok: true } | { ok: false; reason: string };

export interface ReleaseRepository {
  nextId(): Promise<string>;
  create(release: Release, actor: string): Promise<AuditEntry>;
  get(id: string): Promise<Release | undefined>;
  active(): Promise<Release[]>;
  byApp(app: string, limit?: number): Promise<Release[]>;
  audit(id: string): Promise<AuditEntry[]>;
  apply(
    id: string,
    event: ReleaseEvent,
    actor?: string,
    now?: number,
    guard?: CommitGuard,
  ): Promise<CommitResult>;
  patch(id: string, change: (r: Release) => Release): Promise<Release | undefined>;
  acquire(release: Release): Promise<LockResult>;
  lockHolder(app: string, env: string): Promise<string | null>;
  lockInfo(app: string, env: string): Promise<LockInfo | null>;
  /** The locks of many app and environment pairs at once (in their order): a few round trips, not two a pair. */
  lockInfos(pairs: readonly (readonly [app: string, env: string])[]): Promise<(LockInfo | null)[]>;
  waiting(app: string, env: string): Promise<string[]>;
  once(key: string, ttlSeconds?: number): Promise<boolean>;
  /**
   * Runs `fn` while holding the mutex `key`, across every process sharing the
   * store; waits (polling) while another holds it. The lease is renewed while
   * `fn` runs, so only a holder that died lets it lapse.
   */
  exclusive<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/**
 * The app and environment's lock for an operation outside a release (a
 * rollback or sync a person asked for): taken only when no release holds or
 * waits for it; freeing it hands it to the next release in line.
 */
export interface OperationLocks {
  acquireOperation(
    app: string,
    env: string,
    id: string,
    ttlSeconds: number,
  ): Promise<{ acquired: true } | { acquired: false; holder: string }>;
  /** Frees the lock; returns the release it was handed to, which must be started. */
  releaseOperation(app: string, env: string, id: string): Promise<string | undefined>;
  /** Writes the operation's audit entry (its id in `releaseId`). */
  recordOperation(entry: AuditEntry): Promise<void>;
}

export interface VersionLookup {
  get(
    app: string,
    version: string,
  ): Promise<
    { passed: Record<string, number>; images: Record<string, { digest: string; image: string }> } | undefined
  >;
}

/** Starts and stops the work of a release on workers. Every call is idempotent. */
export interface WorkScheduler {
  startFlow(release: Release): Promise<void>;
  scheduleExpiry(release: Release, at: number): Promise<void>;
  startRollback(release: Release, reason: string): Promise<void>;
  /** Builds, syncs and pulls the release's image ahead while it waits; stops by itself once it need not. */
  schedulePrepare?(release: Release): Promise<void>;
}

/** A file attached to a thread message; `text` is the whole content. */
export interface Attachment {
  name: string;
  text: string;
  /** A binary file (a PNG chart), base64: uploaded instead of `text`, which is then its description. */
  bytes?: string;
}

/** Messages the domain sends, in chat-neutral terms; the chat adapter renders them. */
export type Outbound =
  /** Post the release's status card, or edit it in place once posted; rendered from the release as stored at send time. */
  | { kind: 'card'; releaseId: string }
  | { kind: 'reply'; releaseId: string; text: string; snippet?: string; file?: Attachment }
  | { kind: 'ephemeral'; channel: string; user: string; text: string }
  | {
      kind: 'message';
      channel: string;
      text: string;
      snippet?: string;
      file?: Attachment;
      /** Post in the thread of this release's card instead. */
      threadOf?: string;
      /** Post in the thread of the alert with this key (its first post) instead. */
      threadOfAlert?: string;
    }
  | {
      kind: 'alert';
      key: string;
      /** Where it goes (Slack channel id, none for an app served only on Matrix; `room` for Matrix when the route names one). */
      channel?: string;
      room?: string;
      /** The release in flight for the app and environment: the alert goes to its thread too, and offers Roll back. */
      releaseId?: string;
      title: string;
      fields: [string, string][];
      snippet?: string;
      /** A chart (PNG) posted in the alert's thread: the container's memory over the last minutes. */
      chart?: Attachment;
      count: number;
      silenceKey: string;
      /** What the Show logs button reads: the killed container's pod. */
      logs?: AlertLogsTarget;
    };

/** The pod an alert's Show logs button reads, and the alert whose thread gets the logs. */
export interface AlertLogsTarget {
  alertKey: string;
  app: string;
  environment: string;
  region: string;
  pod: string;
}

export interface Announcer {
  announce(message: Outbound): Promise<void>;
}

/** What a step may do while it runs: talk in the thread, and notice when it should stop. */
export interface StepIO {
  /**
   * A reply in the release's thread. `once` names what it reports: said at most once per release under
   * that name, so a step that repeats earlier work (the flow's sync after the pull-ahead's) does not
   * repeat its report.
   */
  say(text: string, extra?: { snippet?: string; file?: Attachment; once?: string }): Promise<void>;
  signal: AbortSignal;
}

export interface BuiltImage {
  image: string;
  digest: string;
  cached: boolean;
  commit?: string;
  /** The image the app was built FROM (the stack, normally), by digest. */
  stack?: PinnedImage;
  /** The stack's own base, when the stack says which. */
  base?: PinnedImage;
  /** The stack digest the build was given (FERRY_STACK), to pin on the version. */
  pinnedStack?: PinnedImage & { stackName: string };
}

/** What a version's record fixes for its build: the code (ref or commit) and the stack digest. */
export interface BuildPin {
  ref: string;
  stack?: PinnedImage & { stackName: string };
}

/** One region's rollout, as the deploy job drives it batch by batch. */
export interface RegionRollout {
  /** Replicas of the app in this region, and the image it runs now (for rollback). */
  prepare(): Promise<{ replicas: number; previousImage: string | null }>;
  /**
   * Makes exactly `pods` pods run the new image (cumulative), never with fewer
   * Ready pods than the replica count. Idempotent. A failure result (new pods
   * not Ready in time, crashing) is judged like a failing gate.
   */
  applyBatch(
    pods: number,
    batchIndex: number,
    limits?: { deadlineMs?: number; maxRestarts?: number },
  ): Promise<{ ok: true } | { ok: false; reason: string }>;
  /**
   * Pulls the new image onto the nodes that will run `pods` pods (those
   * running the app first); returns how many nodes pulled. `nodesAtOnce`
   * throttles it; `purpose` 'prepull' is the pull while a release waits.
   */
  prewarm?(pods: number, opts?: { nodesAtOnce?: number; purpose?: 'prewarm' | 'prepull' }): Promise<number>;
  /** Watches the new pods for `pauseMs`: Ready, no restarts or OOM kills beyond the plan's limit. */
  gate(
    pods: number,
    pauseMs: number,
    maxRestarts: number,
    deadlineMs: number,
  ): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Puts every pod back on the previous image. */
  rollback(): Promise<void>;
}

/** Where a batch is in its region's rollout. */
export interface BatchPosition {
  index: number;
  total: number;
  pods: number;
  replicas: number;
}

/** Judging a release beyond readiness: metric analysis and webhooks at the batch gates (src/analysis). */
export interface BatchJudge {
  /** Pre-rollout webhooks, before the region's first batch: a no stops the release before any pod changes. */
  beforeRollout(
    release: Release,
    region: string,
    io: StepIO,
  ): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** The batch's analysis and confirm-promotion webhooks, after the readiness gate passed. */
  judgeBatch(
    release: Release,
    region: string,
    batch: BatchPosition,
    io: StepIO,
  ): Promise<{ verdict: 'pass' | 'fail' | 'inconclusive'; reason: string }>;
  /** Post-rollout webhooks and the summary chart, after the region's last batch. */
  afterRollout(release: Release, region: string, io: StepIO): Promise<void>;
}

/** The real work of each step. Tests and the local run plug in the real builder, registries and clusters. */
export interface StepRunners {
  build(release: Release, io: StepIO, pin?: BuildPin): Promise<BuiltImage>;
  sync(release: Release, image: BuiltImage, io: StepIO): Promise<void>;
  rollout(release: Release, region: string, image: BuiltImage, io: StepIO): Promise<RegionRollout>;
  /** After the last batch everywhere: is every region still running the new image, healthy? */
  verify(
    release: Release,
    region: string,
    image: BuiltImage,
    io: StepIO,
  ): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Metric analysis and webhooks at the gates; without it a gate is readiness and restarts only. */
  judge?: BatchJudge;
}
