// Image sync: copies images (tags, with every child of a multi-platform
// index) from the primary registry to several regional registries at once.
//
// - a blob a target repository already has is skipped (HEAD); one the target
//   holds in another repository is mounted, not sent;
// - each missing blob is read from the source ONCE per sync and teed into the
//   uploads of every target that needs it, at the pace of the slowest target;
// - blobs stream (never held whole in memory) and are verified against their
//   digest before any upload is committed;
// - manifests go last (children, then the tag), so a tag never points at a
//   partial image;
// - an aborted sync ends its uploads cleanly and remembers the sessions: the
//   retry continues each blob from the offset the registry holds;
// - one target failing (unreachable, refusing) fails that target alone.

import { setTimeout as sleepMs } from 'node:timers/promises';
import {
  type Descriptor,
  isIndex,
  type Manifest,
  manifestBlobs,
  NotFoundError,
  RegistryClient,
  type RegistryEndpoint,
  type UploadSession,
} from './client.ts';
import {
  DigestMismatchError,
  describeCause,
  isAbortError,
  RegistryError,
  UnauthorizedError,
  UnreachableError,
} from './errors.ts';
import { Branch, pump } from './fanout.ts';
import { MemoryResumeStore, type ResumeStore, resumeKey } from './resume.ts';

export type { RegistryEndpoint } from './client.ts';
export { FileResumeStore, MemoryResumeStore, type ResumeStore } from './resume.ts';

export interface ImageToSync {
  repo: string;
  tag: string;
}

export type SyncProgress =
  | { type: 'image-resolved'; repo: string; tag: string; digest: string; blobs: number; bytes: number }
  | { type: 'blob-skipped'; target: string; repo: string; digest: string; size: number }
  | { type: 'blob-mounted'; target: string; repo: string; digest: string; size: number; from: string }
  | { type: 'blob-copying'; targets: string[]; digest: string; size: number; resumeFrom: number }
  | { type: 'blob-progress'; digest: string; bytes: number; size: number }
  | { type: 'blob-copied'; target: string; repo: string; digest: string; size: number; sent: number }
  | { type: 'blob-retry'; target: string; digest: string; attempt: number; error: string }
  | { type: 'image-done'; target: string; repo: string; tag: string; digest: string; upToDate: boolean }
  | { type: 'image-failed'; target: string; repo: string; tag: string; error: string }
  | { type: 'target-failed'; target: string; error: string };

export interface SyncOptions {
  source: RegistryEndpoint;
  targets: RegistryEndpoint[];
  images: ImageToSync[];
  /** Blobs copied at the same time (each to every target). Default 4. */
  concurrency?: number;
  onProgress?: (event: SyncProgress) => void;
  /** Aborting ends in-flight uploads cleanly and records them in `resume`; the promise rejects. */
  signal?: AbortSignal;
  /** Where open upload sessions are kept for a retry. Default: one store for the process. */
  resume?: ResumeStore;
  /** Extra attempts for a blob whose copy to a target failed for a transient reason. Default 2. */
  retries?: number;
  /** Delay before the first retry, doubled each time. Default 500 ms. */
  retryDelayMs?: number;
}

export interface ImageResult {
  repo: string;
  tag: string;
  digest?: string;
  status: 'copied' | 'up-to-date' | 'failed';
  error?: string;
}

export interface TargetReport {
  target: string;
  url: string;
  ok: boolean;
  images: ImageResult[];
  /** Blobs uploaded (fully or the rest of a resumed upload) and the bytes sent for them. */
  blobsCopied: number;
  bytesCopied: number;
  /** Blobs the target repository already had. */
  blobsSkipped: number;
  bytesSkipped: number;
  /** Blobs linked from another repository of the target (no bytes sent). */
  blobsMounted: number;
  bytesMounted: number;
  /** Blobs continued from an earlier, interrupted upload, and the bytes not sent again. */
  blobsResumed: number;
  bytesResumed: number;
  manifestsPushed: number;
  timeMs: number;
  errors: string[];
}

export interface SyncReport {
  ok: boolean;
  source: string;
  /** Bytes (blobs and manifests) read from the source registry. */
  sourceBytesRead: number;
  /** Blob reads from the source (one per blob copied, whatever the number of targets). */
  sourceBlobReads: number;
  images: { repo: string; tag: string; digest?: string; blobs: number; bytes: number; error?: string }[];
  targets: TargetReport[];
  /** Source-side problems (image missing in the source…). */
  errors: string[];
  timeMs: number;
}

const defaultResume = new MemoryResumeStore();

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleepMs(ms, undefined, signal ? { signal } : {});
}

/** Clients are kept per endpoint so tokens and challenges are reused across syncs. */
const clients = new Map<string, RegistryClient>();
export function clientFor(ep: RegistryEndpoint): RegistryClient {
  const key = JSON.stringify([ep.name, ep.url, ep.username ?? '', ep.password ?? '', ep.insecure ?? false]);
  let c = clients.get(key);
  if (!c) {
    c = new RegistryClient(ep);
    clients.set(key, c);
    if (clients.size > 200) clients.delete(clients.keys().next().value!);
  }
  return c;
}

/** Per target, repositories known to hold a blob (mount candidates), kept across syncs. */
const knownHolders = new Map<string, Map<string, string>>();
function rememberHolder(targetUrl: string, digest: string, repo: string): void {
  let m = knownHolders.get(targetUrl);
  if (!m) {
    m = new Map();
    knownHolders.set(targetUrl, m);
  }
  m.delete(digest);
  m.set(digest, repo);
  if (m.size > 50_000) m.delete(m.keys().next().value!);
}

function limiter(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface ResolvedImage {
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
  dead?: string;
  started: number;
  /** When the last piece of work for this target ended. */
  lastDone?: number;
}

type BlobOutcome = { ok: true } | { ok: false; error: string; cause?: unknown };

interface UploadPlan {
  t: TargetState;
  repo: string;
  session?: UploadSession;
}

/**
 * Copies `images` from `source` to every target. Never throws for a failing
 * target or image (see the report); rejects only when `signal` aborts.
 */
export async function syncImages(opts: SyncOptions): Promise<SyncReport> {
  const t0 = Date.now();
  const signal = opts.signal;
  const emit = (e: SyncProgress) => {
    try {
      opts.onProgress?.(e);
    } catch {
      // a progress listener must not break the sync
    }
  };
  const resume = opts.resume ?? defaultResume;
  const src = clientFor(opts.source);
  const report: SyncReport = {
    ok: true,
    source: opts.source.name,
    sourceBytesRead: 0,
    sourceBlobReads: 0,
    images: [],
    targets: [],
    errors: [],
    timeMs: 0,
  };
  const targets: TargetState[] = opts.targets.map((ep) => ({
    ep,
    client: clientFor(ep),
    started: Date.now(),
    report: {
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
    },
  }));
  report.targets = targets.map((t) => t.report);

  const killTarget = (t: TargetState, err: unknown) => {
    if (t.dead) return;
    t.dead = errText(err);
    t.report.ok = false;
    t.report.errors.push(t.dead);
    emit({ type: 'target-failed', target: t.ep.name, error: t.dead });
  };
  const retries = Math.max(0, opts.retries ?? 2);
  const retryDelayMs = opts.retryDelayMs ?? 500;
  /** A failed outcome (rethrows an abort). */
  const failure = (err: unknown): BlobOutcome => {
    if (isAbortError(err) || signal?.aborted) throw err;
    return { ok: false, error: errText(err), cause: err };
  };
  /** Records an error; an unreachable target is given up for the rest of the sync. */
  const targetError = (t: TargetState, err: unknown): string => {
    if (isAbortError(err) || signal?.aborted) throw err;
    if (err instanceof UnreachableError) killTarget(t, err);
    return errText(err);
  };

  // 1. Resolve the images in the source; check the targets answer, in parallel.
  const unique = [...new Map(opts.images.map((i) => [`${i.repo}:${i.tag}`, i])).values()];
  const limit = limiter(Math.max(1, opts.concurrency ?? 4));
  const [resolved] = await Promise.all([
    Promise.all(
      unique.map((img) =>
        limit(async () => {
          try {
            const r = await resolveImage(src, img.repo, img.tag, signal);
            report.sourceBytesRead += [r.top, ...r.children].reduce((s, m) => s + m.bytes.byteLength, 0);
            const bytes = r.blobs.reduce((s, b) => s + b.size, 0);
            report.images.push({
              repo: img.repo,
              tag: img.tag,
              digest: r.top.digest,
              blobs: r.blobs.length,
              bytes,
            });
            emit({ type: 'image-resolved', ...img, digest: r.top.digest, blobs: r.blobs.length, bytes });
            return r;
          } catch (err) {
            if (isAbortError(err) || signal?.aborted) throw err;
            const msg = `${img.repo}:${img.tag}: ${errText(err)}`;
            report.errors.push(msg);
            report.images.push({ repo: img.repo, tag: img.tag, blobs: 0, bytes: 0, error: errText(err) });
            for (const t of targets) {
              t.report.images.push({
                ...img,
                status: 'failed',
                error: `not readable from source: ${errText(err)}`,
              });
            }
            return undefined;
          }
        }),
      ),
    ),
    Promise.all(
      targets.map(async (t) => {
        try {
          await t.client.ping(AbortSignal.any([AbortSignal.timeout(15_000), ...(signal ? [signal] : [])]));
        } catch (err) {
          if (signal?.aborted) throw err;
          killTarget(
            t,
            isAbortError(err)
              ? new UnreachableError(`registry ${t.ep.name} (${t.ep.url}) did not answer within 15 s`, {
                  registry: t.ep.name,
                  cause: err,
                })
              : err,
          );
        }
      }),
    ),
  ]);
  const images = resolved.filter((r): r is ResolvedImage => r !== undefined);

  // 2. Per target and image: up to date already (same digest under the tag)?
  const pending = new Map<TargetState, ResolvedImage[]>();
  await Promise.all(
    targets.flatMap((t) =>
      images.map((img) =>
        limit(async () => {
          if (t.dead) return;
          try {
            const have = await t.client.headManifest(img.repo, img.tag, signal);
            if (have?.digest === img.top.digest) {
              t.report.images.push({
                repo: img.repo,
                tag: img.tag,
                digest: img.top.digest,
                status: 'up-to-date',
              });
              for (const b of img.blobs) {
                t.report.blobsSkipped++;
                t.report.bytesSkipped += b.size;
              }
              emit({
                type: 'image-done',
                target: t.ep.name,
                ...pick(img),
                digest: img.top.digest,
                upToDate: true,
              });
              return;
            }
            const list = pending.get(t) ?? [];
            list.push(img);
            pending.set(t, list);
          } catch (err) {
            const msg = targetError(t, err);
            if (!t.dead) t.report.images.push({ ...pick(img), status: 'failed', error: msg });
          }
        }),
      ),
    ),
  );

  // 3. Blob jobs: one per digest, for every (target, repository) that needs it.
  interface BlobJob {
    desc: Descriptor;
    sourceRepo: string;
    needs: Map<TargetState, Set<string>>;
    done?: Promise<Map<TargetState, BlobOutcome>>;
  }
  const jobs = new Map<string, BlobJob>();
  for (const [t, list] of pending) {
    for (const img of list) {
      for (const d of img.blobs) {
        let job = jobs.get(d.digest);
        if (!job) {
          job = { desc: d, sourceRepo: img.repo, needs: new Map() };
          jobs.set(d.digest, job);
        }
        const repos = job.needs.get(t) ?? new Set<string>();
        repos.add(img.repo);
        job.needs.set(t, repos);
      }
    }
  }

  const blobLimit = limiter(Math.max(1, opts.concurrency ?? 4));
  // Big blobs first: the long transfers start early, small ones fill the gaps.
  for (const job of [...jobs.values()].sort((a, b) => b.desc.size - a.desc.size)) {
    job.done = blobLimit(() => runBlobJob(job));
  }

  async function runBlobJob(job: BlobJob): Promise<Map<TargetState, BlobOutcome>> {
    const out = new Map<TargetState, BlobOutcome>();
    const { digest, size } = job.desc;
    if (signal?.aborted) throw signal.reason;
    const uploads: UploadPlan[] = [];
    const mountsAfter: { t: TargetState; repos: string[] }[] = [];
    await Promise.all(
      [...job.needs].map(async ([t, repoSet]) => {
        if (t.dead) {
          out.set(t, { ok: false, error: t.dead });
          return;
        }
        try {
          const repos = [...repoSet];
          const present = await Promise.all(repos.map((r) => t.client.headBlob(r, digest, signal)));
          const missing: string[] = [];
          let holder: string | undefined;
          repos.forEach((r, i) => {
            if (present[i] !== null) {
              holder ??= r;
              t.report.blobsSkipped++;
              t.report.bytesSkipped += size;
              rememberHolder(t.ep.url, digest, r);
              emit({ type: 'blob-skipped', target: t.ep.name, repo: r, digest, size });
            } else missing.push(r);
          });
          if (missing.length === 0) return;
          if (holder === undefined) {
            const known = knownHolders.get(t.ep.url)?.get(digest);
            if (known !== undefined && !missing.includes(known)) holder = known;
          }
          if (holder !== undefined) {
            // Mount into every missing repository; a refused mount leaves a session to upload into.
            for (const r of missing) {
              const m = await t.client.mountBlob(r, digest, holder, signal);
              if (m.mounted) {
                t.report.blobsMounted++;
                t.report.bytesMounted += size;
                rememberHolder(t.ep.url, digest, r);
                emit({ type: 'blob-mounted', target: t.ep.name, repo: r, digest, size, from: holder });
              } else {
                const first = uploads.find((u) => u.t === t);
                if (first) {
                  await t.client.cancelUpload(m.session);
                  mountsAfter.push({ t, repos: [r] });
                } else {
                  uploads.push({ t, repo: r, session: m.session });
                }
              }
            }
            return;
          }
          uploads.push({ t, repo: missing[0]! });
          if (missing.length > 1) mountsAfter.push({ t, repos: missing.slice(1) });
        } catch (err) {
          out.set(t, { ok: false, error: targetError(t, err) });
        }
      }),
    );

    // Copy, retrying transient failures; an interrupted upload continues from the registry's offset.
    let todo = uploads;
    for (let attempt = 0; todo.length > 0; attempt++) {
      const results = await copyBlob(job, todo);
      const again: UploadPlan[] = [];
      for (const plan of todo) {
        const r = results.get(plan.t);
        if (!r || r.ok) continue;
        if (attempt < retries && isRetryable(r.cause) && !signal?.aborted) {
          again.push({ t: plan.t, repo: plan.repo });
          emit({ type: 'blob-retry', target: plan.t.ep.name, digest, attempt: attempt + 1, error: r.error });
        } else {
          targetError(plan.t, r.cause ?? new Error(r.error));
          out.set(plan.t, { ok: false, error: r.error });
        }
      }
      if (again.length > 0) await sleep(retryDelayMs * 2 ** attempt, signal);
      todo = again;
    }
    for (const { t, repos } of mountsAfter) {
      if (out.has(t)) continue;
      const from = knownHolders.get(t.ep.url)?.get(digest);
      try {
        for (const r of repos) {
          const m = from ? await t.client.mountBlob(r, digest, from, signal) : undefined;
          if (m?.mounted) {
            t.report.blobsMounted++;
            t.report.bytesMounted += size;
            emit({ type: 'blob-mounted', target: t.ep.name, repo: r, digest, size, from: from! });
          } else {
            // Mount refused: copy it again into this repository.
            if (m) await t.client.cancelUpload(m.session);
            const res = await copyBlob(job, [{ t, repo: r }]);
            const o = res.get(t);
            if (o && !o.ok) throw o.cause ?? new Error(o.error);
          }
        }
      } catch (err) {
        out.set(t, { ok: false, error: targetError(t, err) });
      }
    }
    for (const t of job.needs.keys()) if (!out.has(t)) out.set(t, { ok: true });
    return out;
  }

  /** Reads the blob once from the source and streams it into every planned upload. */
  async function copyBlob(job: BlobJob, plans: UploadPlan[]): Promise<Map<TargetState, BlobOutcome>> {
    const { digest, size } = job.desc;
    const out = new Map<TargetState, BlobOutcome>();
    interface Live {
      plan: UploadPlan;
      key: string;
      session: UploadSession;
      resumedFrom: number;
      branch?: Branch;
      patch?: Promise<UploadSession>;
    }
    const live: Live[] = [];
    // Open (or resume) an upload session per target.
    await Promise.all(
      plans.map(async (plan) => {
        const { t, repo } = plan;
        const key = resumeKey(t.ep.url, repo, digest);
        try {
          let session = plan.session;
          let resumedFrom = 0;
          const saved = resume.get(key);
          if (saved && saved.size === size) {
            try {
              const s = await t.client.uploadStatus(
                { repo, location: saved.location, offset: saved.offset },
                signal,
              );
              if (s.offset === saved.offset && s.offset <= size) {
                if (session) await t.client.cancelUpload(session);
                session = s;
                resumedFrom = s.offset;
              }
            } catch (err) {
              if (isAbortError(err) || signal?.aborted) throw err;
              if (err instanceof UnreachableError) throw err;
              // the session is gone (expired, registry restarted): start over
            }
            if (resumedFrom === 0) resume.delete(key);
          }
          session ??= await t.client.startUpload(repo, signal);
          live.push({ plan, key, session, resumedFrom });
        } catch (err) {
          out.set(t, failure(err));
        }
      }),
    );
    if (live.length === 0) return out;
    const start = Math.min(...live.map((l) => l.session.offset));
    emit({
      type: 'blob-copying',
      targets: live.map((l) => l.plan.t.ep.name),
      digest,
      size,
      resumeFrom: start,
    });

    let body: ReadableStream<Uint8Array> | undefined;
    let actualStart = 0;
    if (start < size) {
      try {
        const got = await src.getBlob(job.sourceRepo, digest, { offset: start, expectedSize: size, signal });
        body = got.body;
        actualStart = got.offset;
        report.sourceBlobReads++;
      } catch (err) {
        if (isAbortError(err) || signal?.aborted) throw err;
        // Source problem: the sessions stay open (and remembered) for a retry.
        for (const l of live) {
          resume.set(l.key, {
            location: l.session.location,
            offset: l.session.offset,
            size,
            savedAt: Date.now(),
          });
          out.set(l.plan.t, {
            ok: false,
            error: `reading ${digest} from source: ${errText(err)}`,
            cause: err,
          });
        }
        return out;
      }
    }

    let result: Awaited<ReturnType<typeof pump>> = { ended: 'complete', read: 0 };
    if (body) {
      for (const l of live) {
        if (l.session.offset >= size) continue;
        const branch = new Branch(l.session.offset - actualStart);
        l.branch = branch;
        l.patch = l.plan.t.client.patchUpload(l.session, branch.stream, { sentBytes: () => branch.pushed });
        l.patch.catch((err) => branch.kill(err));
      }
      let sinceEmit = 0;
      let total = actualStart;
      result = await pump(
        body,
        live.flatMap((l) => (l.branch ? [l.branch] : [])),
        {
          stop: () => signal?.aborted === true,
          onChunk: (n) => {
            total += n;
            sinceEmit += n;
            report.sourceBytesRead += n;
            if (sinceEmit >= 1024 * 1024 || total === size) {
              sinceEmit = 0;
              emit({ type: 'blob-progress', digest, bytes: total, size });
            }
          },
        },
      );
    }
    const corrupt = result.error instanceof DigestMismatchError;
    // A corrupt source fails every upload (nothing gets committed); anything else ends them cleanly
    // so the registry keeps what it received and a retry continues from there.
    for (const l of live) {
      if (corrupt) l.branch?.fail(result.error);
      else l.branch?.close();
    }
    await Promise.all(
      live.map(async (l) => {
        const { t } = l.plan;
        try {
          let session = l.session;
          if (l.patch) session = await l.patch;
          const sent = session.offset - l.session.offset;
          t.report.bytesCopied += sent;
          if (corrupt) throw result.error;
          if (result.ended !== 'complete' || session.offset !== size) {
            resume.set(l.key, {
              location: session.location,
              offset: session.offset,
              size,
              savedAt: Date.now(),
            });
            if (signal?.aborted) return;
            const why = result.error
              ? describeCause(result.error)
              : `source ended at ${session.offset}/${size}`;
            throw new RegistryError(
              `copy of ${digest} interrupted (${why}); a retry continues from byte ${session.offset}`,
              {
                registry: t.ep.name,
              },
            );
          }
          await t.client.completeUpload(session, digest, undefined, signal);
          resume.delete(l.key);
          rememberHolder(t.ep.url, digest, l.plan.repo);
          t.report.blobsCopied++;
          if (l.resumedFrom > 0) {
            t.report.blobsResumed++;
            t.report.bytesResumed += l.resumedFrom;
          }
          emit({ type: 'blob-copied', target: t.ep.name, repo: l.plan.repo, digest, size, sent });
        } catch (err) {
          if (corrupt || err instanceof DigestMismatchError) {
            await t.client.cancelUpload(l.session);
            resume.delete(l.key);
          }
          if (signal?.aborted) return;
          out.set(t, failure(err));
        }
      }),
    );
    return out;
  }

  // 4. Manifests last: per target and image, once all its blobs are there.
  await Promise.allSettled([...jobs.values()].map((j) => j.done));
  if (signal?.aborted) throw signal.reason;
  await Promise.all(
    [...pending].flatMap(([t, list]) =>
      list.map(async (img) => {
        const fail = (error: string) => {
          t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'failed', error });
          t.report.ok = false;
          emit({ type: 'image-failed', target: t.ep.name, ...pick(img), error });
        };
        if (t.dead) return fail(t.dead);
        for (const b of img.blobs) {
          const outcome = await jobs
            .get(b.digest)!
            .done!.catch((err: unknown) => ({ ok: false, error: errText(err) }) as const);
          const o = outcome instanceof Map ? outcome.get(t) : outcome;
          if (o && !o.ok) return fail(`blob ${b.digest}: ${o.error}`);
        }
        try {
          await limit(async () => {
            for (const child of img.children) {
              await t.client.putManifest(img.repo, child.digest, child, signal);
              t.report.manifestsPushed++;
            }
            await t.client.putManifest(img.repo, img.tag, img.top, signal);
            t.report.manifestsPushed++;
          });
          t.report.images.push({ ...pick(img), digest: img.top.digest, status: 'copied' });
          t.lastDone = Math.max(t.lastDone ?? 0, Date.now());
          emit({
            type: 'image-done',
            target: t.ep.name,
            ...pick(img),
            digest: img.top.digest,
            upToDate: false,
          });
        } catch (err) {
          fail(`manifest: ${targetError(t, err)}`);
        }
      }),
    ),
  );
  if (signal?.aborted) throw signal.reason;

  for (const t of targets) {
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
  report.ok = report.errors.length === 0 && targets.every((t) => t.report.ok);
  report.timeMs = Date.now() - t0;
  return report;
}

/** Worth another attempt: network trouble, 5xx, 408/429, an interrupted stream — not a refusal or bad content. */
function isRetryable(err: unknown): boolean {
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

function pick(img: { repo: string; tag: string }): { repo: string; tag: string } {
  return { repo: img.repo, tag: img.tag };
}

/** Whether `repo:tag` resolves in the registry (a pull-through cache fetches it from upstream on the way). */
export async function imageExists(
  endpoint: RegistryEndpoint,
  repo: string,
  tag: string,
  signal?: AbortSignal,
): Promise<boolean> {
  return (await clientFor(endpoint).headManifest(repo, tag, signal)) !== null;
}

export interface EnsureResult {
  /** Digest of the image in the origin (and now in the region). */
  digest: string;
  /** True when the region lacked the image (or had another digest under the tag) and it was copied. */
  copied: boolean;
  report?: SyncReport;
}

/**
 * Back-to-source for the deploy step: makes sure `region` serves `repo:tag`
 * with the origin's digest, copying it from `origin` when it does not.
 * Throws when the origin lacks the image or the copy fails.
 */
export async function ensureImage(opts: {
  origin: RegistryEndpoint;
  region: RegistryEndpoint;
  repo: string;
  tag: string;
  signal?: AbortSignal;
  onProgress?: (e: SyncProgress) => void;
  resume?: ResumeStore;
}): Promise<EnsureResult> {
  const origin = clientFor(opts.origin);
  const want = await origin.headManifest(opts.repo, opts.tag, opts.signal);
  if (!want) {
    throw new NotFoundError(
      `image ${opts.repo}:${opts.tag} is not in the origin registry ${opts.origin.name}; build and push it first`,
      { registry: opts.origin.name, status: 404 },
    );
  }
  const have = await clientFor(opts.region).headManifest(opts.repo, opts.tag, opts.signal);
  if (have?.digest === want.digest) return { digest: want.digest, copied: false };
  const report = await syncImages({
    source: opts.origin,
    targets: [opts.region],
    images: [{ repo: opts.repo, tag: opts.tag }],
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.resume ? { resume: opts.resume } : {}),
  });
  if (!report.ok) {
    const why = [...report.errors, ...report.targets.flatMap((t) => t.errors)].join('; ');
    throw new RegistryError(
      `could not copy ${opts.repo}:${opts.tag} from ${opts.origin.name} to ${opts.region.name}: ${why}`,
      { registry: opts.region.name },
    );
  }
  return { digest: want.digest, copied: true, report };
}
