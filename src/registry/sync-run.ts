// One sync from the primary to several regions, phase by phase:
//
// 1. resolve   — the images' manifests in the source, while every target is
//                pinged and asked for the tags' current digests (in parallel:
//                a tag already at the source's digest is up to date);
// 2. plan      — one job per distinct blob, naming every (target, repository)
//                that needs it;
// 3. place     — for every job and target at once (batched, parallel, bounded
//                per registry): a blob known in another repository of the
//                target is mounted first; otherwise HEAD tells whether it is
//                there; what is left needs bytes;
// 4. copy      — each blob needing bytes is read once and teed into every
//                target's upload (big blobs first); the other repositories of
//                a target get it by mount afterwards;
// 5. manifests — per target and image as soon as its blobs are there
//                (children, then the tag), so a tag never points at a partial
//                image while other images are still copying.

import { setTimeout as sleepMs } from 'node:timers/promises';
import { type Limiter, limiter } from '../concurrency.ts';
import { type TeeContext, type TeeResult, teeBlob, type UploadPlan } from './blob-tee.ts';
import {
  type Descriptor,
  isIndex,
  type Manifest,
  manifestBlobs,
  NotFoundError,
  type RegistryClient,
  type RegistryEndpoint,
  type UploadSession,
} from './client.ts';
import {
  DigestMismatchError,
  isAbortError,
  RegistryError,
  UnauthorizedError,
  UnreachableError,
} from './errors.ts';
import type { RegistryPool } from './pool.ts';
import type { ResumeStore } from './resume.ts';
import type { ImageToSync, SyncOptions, SyncProgress, SyncReport, TargetReport } from './sync-types.ts';

export interface ResolvedImage {
  repo: string;
  tag: string;
  top: Manifest;
  /** Child manifests of an index, deepest first. */
  children: Manifest[];
  blobs: Descriptor[];
}

/** Fetches a tag's manifest and, for an index, every child manifest (verified). */
export async function resolveImage(
  client: RegistryClient,
  repo: string,
  tag: string,
  signal?: AbortSignal,
): Promise<ResolvedImage> {
  const top = await client.getManifest(repo, tag, signal);
  const children: Manifest[] = [];
  const blobs = new Map<string, Descriptor>();
  const walk = async (m: Manifest, depth: number): Promise<void> => {
    if (depth > 4) throw new RegistryError(`index ${repo}:${tag} nests too deep`, { registry: client.name });
    if (isIndex(m)) {
      const kids = await Promise.all(m.json.manifests.map((d) => client.getManifest(repo, d.digest, signal)));
      for (const k of kids) {
        await walk(k, depth + 1);
        children.push(k);
      }
    } else {
      for (const d of manifestBlobs(m)) {
        // Foreign / non-distributable layers (Windows base layers) live at their `urls`, not in registries.
        if (d.urls?.length && /foreign|nondistributable/.test(d.mediaType)) continue;
        blobs.set(d.digest, d);
      }
    }
  };
  await walk(top, 0);
  return { repo, tag, top, children, blobs: [...blobs.values()] };
}

interface TargetState {
  ep: RegistryEndpoint;
  client: RegistryClient;
  report: TargetReport;
  /** Metadata requests to this registry (HEAD, mount, manifest PUT). */
  requests: Limiter;
  dead?: string;
  started: number;
  /** When the last piece of work for this target ended. */
  lastDone?: number;
  /** Digest each image's tag has in this target now (null: absent), from phase 1. */
  held: Map<string, string | null>;
}

type BlobOutcome = { ok: true } | { ok: false; error: string; cause?: unknown };

/** One distinct blob and everyone who needs it. */
interface BlobJob {
  desc: Descriptor;
  sourceRepo: string;
  /** Repositories of each target that must hold the blob. */
  needs: Map<TargetState, Set<string>>;
  /** From placement: uploads to make, and repositories to mount into once an upload is done. */
  uploads: UploadPlan<TargetState>[];
  mountsAfter: Map<TargetState, string[]>;
  outcome: Map<TargetState, BlobOutcome>;
  done?: Promise<void>;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function pick(img: { repo: string; tag: string }): { repo: string; tag: string } {
  return { repo: img.repo, tag: img.tag };
}

/** Worth another attempt: network trouble, 5xx, 408/429, an interrupted stream — not a refusal or bad content. */
export function isRetryable(err: unknown): boolean {
  if (
    err instanceof DigestMismatchError ||
    err instanceof UnauthorizedError ||
    err instanceof NotFoundError
  ) {
    return false;
  }
  if (err instanceof RegistryError && err.status !== undefined) {
    return err.status >= 500 || err.status === 408 || err.status === 429;
  }
  return true;
}

function emptyTargetReport(ep: RegistryEndpoint): TargetReport {
  return {
    target: ep.name,
    url: ep.url,
    ok: true,
    images: [],
    blobsCopied: 0,
    bytesCopied: 0,
    blobsSkipped: 0,
    bytesSkipped: 0,
    blobsMounted: 0,
    bytesMounted: 0,
    blobsResumed: 0,
    bytesResumed: 0,
    manifestsPushed: 0,
    timeMs: 0,
    errors: [],
  };
}

export class SyncRun {
  private readonly t0 = Date.now();
  private readonly signal: AbortSignal | undefined;
  private readonly src: RegistryClient;
  private readonly targets: TargetState[];
  private readonly report: SyncReport;
  private readonly blobStreams: Limiter;
  private readonly sourceRequests: Limiter;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly tee: TeeContext;

  private readonly opts: SyncOptions;
  private readonly pool: RegistryPool;

  constructor(opts: SyncOptions, pool: RegistryPool, resume: ResumeStore) {
    this.opts = opts;
    this.pool = pool;
    this.signal = opts.signal;
    this.src = pool.client(opts.source);
    const perRegistry = Math.max(1, opts.requestsPerRegistry ?? 16);
    this.targets = opts.targets.map((ep) => ({
      ep,
      client: pool.client(ep),
      report: emptyTargetReport(ep),
      requests: limiter(perRegistry),
      started: Date.now(),
      held: new Map(),
    }));
    this.report = {
      ok: true,
      source: opts.source.name,
      sourceBytesRead: 0,
      sourceBlobReads: 0,
      images: [],
      targets: this.targets.map((t) => t.report),
      errors: [],
      timeMs: 0,
    };
    this.blobStreams = limiter(opts.concurrency ?? 4);
    this.sourceRequests = limiter(perRegistry);
    this.retries = Math.max(0, opts.retries ?? 2);
    this.retryDelayMs = opts.retryDelayMs ?? 500;
    this.tee = {
      source: this.src,
      resume,
      signal: this.signal,
      emit: (e) => this.emit(e),
      onSourceBytes: (n) => {
        this.report.sourceBytesRead += n;
      },
      onSourceRead: () => {
        this.report.sourceBlobReads++;
      },
    };
  }

  async run(): Promise<SyncReport> {
    const unique = [...new Map(this.opts.images.map((i) => [`${i.repo}:${i.tag}`, i])).values()];
    const [resolved] = await Promise.all([
      Promise.all(unique.map((img) => this.resolve(img))),
      Promise.all(this.targets.map((t) => this.probe(t, unique))),
    ]);
    const images = resolved.filter((r): r is ResolvedImage => r !== undefined);
    const pending = this.outOfDate(images);
    const jobs = this.plan(pending);
    await Promise.all([...jobs.values()].map((job) => this.place(job)));
    // Big blobs first: the long transfers start early, small ones fill the gaps.
    for (const job of [...jobs.values()].sort((a, b) => b.desc.size - a.desc.size)) {
      job.done = this.blobStreams(() => this.copy(job)).catch(() => {});
    }
    await Promise.all(
      [...pending].flatMap(([t, list]) => list.map((img) => this.pushManifests(t, img, jobs))),
    );
    if (this.signal?.aborted) throw this.signal.reason;
    return this.finish(images);
  }

  private emit(e: SyncProgress): void {
    try {
      this.opts.onProgress?.(e);
    } catch {
      // a progress listener must not break the sync
    }
  }

  private killTarget(t: TargetState, err: unknown): void {
    if (t.dead) return;
    t.dead = errText(err);
    t.report.ok = false;
    t.report.errors.push(t.dead);
    this.emit({ type: 'target-failed', target: t.ep.name, error: t.dead });
  }

  /** Records an error; an unreachable target is given up for the rest of the sync. Rethrows an abort. */
  private targetError(t: TargetState, err: unknown): string {
    if (isAbortError(err) || this.signal?.aborted) throw err;
    if (err instanceof UnreachableError) this.killTarget(t, err);
    return errText(err);
  }

  // ---------------------------------------------------------------- 1. resolve

  private async resolve(img: ImageToSync): Promise<ResolvedImage | undefined> {
    try {
      const r = await this.sourceRequests(() => resolveImage(this.src, img.repo, img.tag, this.signal));
      this.report.sourceBytesRead += [r.top, ...r.children].reduce((s, m) => s + m.bytes.byteLength, 0);
      const bytes = r.blobs.reduce((s, b) => s + b.size, 0);
      this.report.images.push({ ...pick(img), digest: r.top.digest, blobs: r.blobs.length, bytes });
      this.emit({ type: 'image-resolved', ...pick(img), digest: r.top.digest, blobs: r.blobs.length, bytes });
      return r;
    } catch (err) {
      if (isAbortError(err) || this.signal?.aborted) throw err;
      this.report.errors.push(`${img.repo}:${img.tag}: ${errText(err)}`);
      this.report.images.push({ ...pick(img), blobs: 0, bytes: 0, error: errText(err) });
      for (const t of this.targets) {
        t.report.images.push({
          ...pick(img),
          status: 'failed',
          error: `not readable from source: ${errText(err)}`,
        });
      }
      return undefined;
    }
  }

  /** Pings a target, then asks it for every tag's digest (one HEAD each, in parallel). */
  private async probe(t: TargetState, images: ImageToSync[]): Promise<void> {
    try {
      await t.client.ping(
        AbortSignal.any([AbortSignal.timeout(15_000), ...(this.signal ? [this.signal] : [])]),
      );
    } catch (err) {
      if (this.signal?.aborted) throw err;
      this.killTarget(
        t,
        isAbortError(err)
          ? new UnreachableError(`registry ${t.ep.name} (${t.ep.url}) did not answer within 15 s`, {
              registry: t.ep.name,
              cause: err,
            })
          : err,
      );
      return;
    }
    await Promise.all(
      images.map((img) =>
        t.requests(async () => {
          if (t.dead) return;
          try {
            const have = await t.client.headManifest(img.repo, img.tag, this.signal);
            t.held.set(`${img.repo}:${img.tag}`, have?.digest ?? null);
          } catch (err) {
            const msg = this.targetError(t, err);
            if (!t.dead) t.report.images.push({ ...pick(img), status: 'failed', error: msg });
          }
        }),
      ),
    );
  }

  /** Per target, the images whose tag does not have the source's digest yet. */
  private outOfDate(images: ResolvedImage[]): Map<TargetState, ResolvedImage[]> {
    const pending = new Map<TargetState, ResolvedImage[]>();
    for (const t of this.targets) {
      if (t.dead) continue;
      for (const img of images) {
        const key = `${img.repo}:${img.tag}`;
        if (!t.held.has(key)) continue; // the HEAD failed: already reported
        if (t.held.get(key) === img.top.digest) {
          t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'up-to-date' });
          for (const b of img.blobs) {
            t.report.blobsSkipped++;
            t.report.bytesSkipped += b.size;
          }
          this.emit({
            type: 'image-done',
            target: t.ep.name,
            ...pick(img),
            digest: img.top.digest,
            upToDate: true,
          });
          continue;
        }
        pending.set(t, [...(pending.get(t) ?? []), img]);
      }
    }
    return pending;
  }

  // ---------------------------------------------------------------- 2. plan

  private plan(pending: Map<TargetState, ResolvedImage[]>): Map<string, BlobJob> {
    const jobs = new Map<string, BlobJob>();
    for (const [t, list] of pending) {
      for (const img of list) {
        for (const d of img.blobs) {
          let job = jobs.get(d.digest);
          if (!job) {
            job = {
              desc: d,
              sourceRepo: img.repo,
              needs: new Map(),
              uploads: [],
              mountsAfter: new Map(),
              outcome: new Map(),
            };
            jobs.set(d.digest, job);
          }
          const repos = job.needs.get(t) ?? new Set<string>();
          repos.add(img.repo);
          job.needs.set(t, repos);
        }
      }
    }
    return jobs;
  }

  // ---------------------------------------------------------------- 3. place

  private async place(job: BlobJob): Promise<void> {
    await Promise.all(
      [...job.needs].map(async ([t, repos]) => {
        if (t.dead) {
          job.outcome.set(t, { ok: false, error: t.dead });
          return;
        }
        try {
          await this.placeOn(job, t, [...repos]);
        } catch (err) {
          job.outcome.set(t, { ok: false, error: this.targetError(t, err) });
        }
      }),
    );
  }

  /** Mount first where a holder is known, else HEAD; leaves in `job` what still needs bytes. */
  private async placeOn(job: BlobJob, t: TargetState, repos: string[]): Promise<void> {
    const { digest, size } = job.desc;
    let holder = this.pool.holderOf(t.ep.url, digest);
    const missing: string[] = [];
    const sessions: { repo: string; session: UploadSession }[] = [];
    const present = (repo: string) => {
      t.report.blobsSkipped++;
      t.report.bytesSkipped += size;
      this.pool.rememberHolder(t.ep.url, digest, repo);
      this.emit({ type: 'blob-skipped', target: t.ep.name, repo, digest, size });
    };
    const mount = async (repo: string, from: string) => {
      const m = await t.requests(() => t.client.mountBlob(repo, digest, from, this.signal));
      if (m.mounted) {
        t.report.blobsMounted++;
        t.report.bytesMounted += size;
        this.pool.rememberHolder(t.ep.url, digest, repo);
        this.emit({ type: 'blob-mounted', target: t.ep.name, repo, digest, size, from });
      } else {
        sessions.push({ repo, session: m.session });
      }
    };
    if (holder !== undefined && !repos.includes(holder)) {
      // Known in another repository of this target (an earlier sync put it there): one POST each.
      const from = holder;
      await Promise.all(repos.map((r) => mount(r, from)));
    } else {
      await Promise.all(
        repos.map(async (r) => {
          if ((await t.requests(() => t.client.headBlob(r, digest, this.signal))) !== null) present(r);
          else missing.push(r);
        }),
      );
      if (missing.length === 0) return;
      holder = repos.find((r) => !missing.includes(r));
      if (holder !== undefined) {
        const from = holder;
        await Promise.all(missing.map((r) => mount(r, from)));
      } else {
        job.uploads.push(this.uploadPlan(t, missing[0]!));
        if (missing.length > 1) job.mountsAfter.set(t, missing.slice(1));
        return;
      }
    }
    // Mounts refused (the holder lost it): upload into the first session, mount the rest after.
    const [first, ...rest] = sessions;
    if (!first) return;
    job.uploads.push(this.uploadPlan(t, first.repo, first.session));
    await Promise.all(rest.map((s) => t.client.cancelUpload(s.session)));
    if (rest.length > 0)
      job.mountsAfter.set(
        t,
        rest.map((s) => s.repo),
      );
  }

  private uploadPlan(t: TargetState, repo: string, session?: UploadSession): UploadPlan<TargetState> {
    return {
      target: t,
      client: t.client,
      url: t.ep.url,
      name: t.ep.name,
      repo,
      ...(session ? { session } : {}),
    };
  }

  // ---------------------------------------------------------------- 4. copy

  private async copy(job: BlobJob): Promise<void> {
    if (this.signal?.aborted) throw this.signal.reason;
    const { digest } = job.desc;
    // Copy, retrying transient failures; an interrupted upload continues from the registry's offset.
    let todo = job.uploads.filter((p) => !p.target.dead);
    for (const p of job.uploads)
      if (p.target.dead) job.outcome.set(p.target, { ok: false, error: p.target.dead });
    for (let attempt = 0; todo.length > 0; attempt++) {
      const results = await teeBlob(this.tee, job.desc, job.sourceRepo, todo);
      const again: UploadPlan<TargetState>[] = [];
      for (const plan of todo) {
        const r = results.get(plan.target);
        if (!r) continue;
        this.account(plan, digest, r);
        if (r.ok) continue;
        if (attempt < this.retries && isRetryable(r.cause) && !this.signal?.aborted) {
          again.push(this.uploadPlan(plan.target, plan.repo));
          this.emit({ type: 'blob-retry', target: plan.name, digest, attempt: attempt + 1, error: r.error });
        } else {
          this.targetError(plan.target, r.cause ?? new Error(r.error));
          job.outcome.set(plan.target, { ok: false, error: r.error });
        }
      }
      if (again.length > 0)
        await sleepMs(this.retryDelayMs * 2 ** attempt, undefined, { signal: this.signal });
      todo = again;
    }
    await Promise.all([...job.mountsAfter].map(([t, repos]) => this.mountAfterUpload(job, t, repos)));
    for (const t of job.needs.keys()) if (!job.outcome.has(t)) job.outcome.set(t, { ok: true });
  }

  /** Counts an upload's bytes in its target's report; a committed one makes its repository a holder. */
  private account(plan: UploadPlan<TargetState>, digest: string, r: TeeResult): void {
    const rep = plan.target.report;
    rep.bytesCopied += r.sent;
    if (!r.ok) return;
    this.pool.rememberHolder(plan.url, digest, plan.repo);
    rep.blobsCopied++;
    if (r.resumedFrom > 0) {
      rep.blobsResumed++;
      rep.bytesResumed += r.resumedFrom;
    }
  }

  /** The target's other repositories get the blob it now holds by mount (a copy if refused). */
  private async mountAfterUpload(job: BlobJob, t: TargetState, repos: string[]): Promise<void> {
    if (job.outcome.has(t)) return;
    const { digest, size } = job.desc;
    const from = this.pool.holderOf(t.ep.url, digest);
    try {
      for (const r of repos) {
        const m = from ? await t.requests(() => t.client.mountBlob(r, digest, from, this.signal)) : undefined;
        if (m?.mounted) {
          t.report.blobsMounted++;
          t.report.bytesMounted += size;
          this.emit({ type: 'blob-mounted', target: t.ep.name, repo: r, digest, size, from: from! });
          continue;
        }
        // Mount refused: copy it again into this repository.
        const plan = this.uploadPlan(t, r, m && !m.mounted ? m.session : undefined);
        const res = (await teeBlob(this.tee, job.desc, job.sourceRepo, [plan])).get(t);
        if (res) this.account(plan, digest, res);
        if (res && !res.ok) throw res.cause ?? new Error(res.error);
      }
    } catch (err) {
      job.outcome.set(t, { ok: false, error: this.targetError(t, err) });
    }
  }

  // ---------------------------------------------------------------- 5. manifests

  private async pushManifests(t: TargetState, img: ResolvedImage, jobs: Map<string, BlobJob>): Promise<void> {
    const fail = (error: string) => {
      t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'failed', error });
      t.report.ok = false;
      this.emit({ type: 'image-failed', target: t.ep.name, ...pick(img), error });
    };
    await Promise.all(img.blobs.map((b) => jobs.get(b.digest)?.done));
    if (this.signal?.aborted) return;
    if (t.dead) return fail(t.dead);
    for (const b of img.blobs) {
      const o = jobs.get(b.digest)?.outcome.get(t) ?? { ok: false, error: 'not copied' };
      if (!o.ok) return fail(`blob ${b.digest}: ${o.error}`);
    }
    try {
      await t.requests(async () => {
        for (const child of img.children) {
          await t.client.putManifest(img.repo, child.digest, child, this.signal);
          t.report.manifestsPushed++;
        }
        await t.client.putManifest(img.repo, img.tag, img.top, this.signal);
        t.report.manifestsPushed++;
      });
      t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'copied' });
      t.lastDone = Math.max(t.lastDone ?? 0, Date.now());
      this.emit({
        type: 'image-done',
        target: t.ep.name,
        ...pick(img),
        digest: img.top.digest,
        upToDate: false,
      });
    } catch (err) {
      if (this.signal?.aborted) return;
      fail(`manifest: ${this.targetError(t, err)}`);
    }
  }

  private finish(images: ResolvedImage[]): SyncReport {
    for (const t of this.targets) {
      if (t.dead && !t.report.errors.includes(t.dead)) t.report.errors.push(t.dead);
      if (t.dead) {
        for (const img of images) {
          if (!t.report.images.some((i) => i.repo === img.repo && i.tag === img.tag)) {
            t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'failed', error: t.dead });
          }
        }
      }
      for (const i of t.report.images) {
        if (i.status === 'failed') {
          t.report.ok = false;
          if (i.error && !t.dead) t.report.errors.push(`${i.repo}:${i.tag}: ${i.error}`);
        }
      }
      t.report.timeMs = (t.lastDone ?? Date.now()) - t.started;
    }
    this.report.ok = this.report.errors.length === 0 && this.targets.every((t) => t.report.ok);
    this.report.timeMs = Date.now() - this.t0;
    return this.report;
  }
}
