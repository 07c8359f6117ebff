// One blob, read once from the source and streamed into an upload on every
// target that needs it (a tee at the pace of the slowest live target).
//
// - an upload session remembered from an interrupted attempt is continued
//   from the offset the registry holds; the source is read from the lowest
//   such offset (Range), each branch skipping what its target already has;
// - the blob is verified against its digest while streaming: a corrupt
//   source fails every upload before anything is committed;
// - a stream cut short ends the uploads cleanly, so each registry keeps what
//   it received and the session is remembered for the retry.

import type { Descriptor, RegistryClient, UploadSession } from './client.ts';
import {
  DigestMismatchError,
  describeCause,
  isAbortError,
  RegistryError,
  UnreachableError,
} from './errors.ts';
import { Branch, pump } from './fanout.ts';
import { type ResumeStore, resumeKey } from './resume.ts';
import type { SyncProgress } from './sync-types.ts';

/** A target of one blob copy: where to upload, and the session a refused mount left open, if any. */
export interface UploadPlan<T> {
  target: T;
  client: RegistryClient;
  /** The target's URL (the resume key's first part). */
  url: string;
  name: string;
  repo: string;
  session?: UploadSession;
}

export interface TeeContext {
  source: RegistryClient;
  resume: ResumeStore;
  signal: AbortSignal | undefined;
  emit: (e: SyncProgress) => void;
  /** Called for each chunk read from the source, and once per source read opened. */
  onSourceBytes: (n: number) => void;
  onSourceRead: () => void;
}

interface LiveUpload<T> {
  plan: UploadPlan<T>;
  key: string;
  session: UploadSession;
  resumedFrom: number;
  branch?: Branch;
  patch?: Promise<UploadSession>;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Rethrows an abort; anything else becomes a failed outcome. */
function failure(
  err: unknown,
  signal: AbortSignal | undefined,
): { ok: false; error: string; cause: unknown } {
  if (isAbortError(err) || signal?.aborted) throw err;
  return { ok: false, error: errText(err), cause: err };
}

/** What became of one target's upload. */
export type TeeResult =
  | { ok: true; sent: number; resumedFrom: number }
  | { ok: false; sent: number; error: string; cause?: unknown };

/**
 * Copies `blob` (from `sourceRepo`) into every plan's repository; the result
 * per target. Rejects only when the sync is aborted.
 */
export async function teeBlob<T>(
  ctx: TeeContext,
  blob: Descriptor,
  sourceRepo: string,
  plans: UploadPlan<T>[],
): Promise<Map<T, TeeResult>> {
  const results = new Map<T, TeeResult>();
  const live = await openSessions(ctx, blob, plans, results);
  if (live.length === 0) return results;
  const { digest, size } = blob;
  const start = Math.min(...live.map((l) => l.session.offset));
  ctx.emit({ type: 'blob-copying', targets: live.map((l) => l.plan.name), digest, size, resumeFrom: start });

  let body: ReadableStream<Uint8Array> | undefined;
  let bodyStart = 0;
  if (start < size) {
    try {
      const got = await ctx.source.getBlob(sourceRepo, digest, {
        offset: start,
        expectedSize: size,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      body = got.body;
      bodyStart = got.offset;
      ctx.onSourceRead();
    } catch (err) {
      if (isAbortError(err) || ctx.signal?.aborted) throw err;
      // Source problem: the sessions stay open (and remembered) for a retry.
      for (const l of live) {
        remember(ctx, l, l.session, size);
        results.set(l.plan.target, {
          ok: false,
          sent: 0,
          error: `reading ${digest} from source: ${errText(err)}`,
          cause: err,
        });
      }
      return results;
    }
  }

  const streamed: Awaited<ReturnType<typeof pump>> = body
    ? await streamInto(ctx, blob, body, bodyStart, live)
    : { ended: 'complete', read: 0 };
  const corrupt = streamed.error instanceof DigestMismatchError;
  // A corrupt source fails every upload (nothing gets committed); anything else ends them cleanly
  // so the registry keeps what it received and a retry continues from there.
  for (const l of live) {
    if (corrupt) l.branch?.fail(streamed.error);
    else l.branch?.close();
  }
  await Promise.all(
    live.map(async (l) => {
      let sent = 0;
      try {
        const session = l.patch ? await l.patch : l.session;
        sent = session.offset - l.session.offset;
        if (corrupt) throw streamed.error;
        if (streamed.ended !== 'complete' || session.offset !== size) {
          remember(ctx, l, session, size);
          if (ctx.signal?.aborted) return;
          const why = streamed.error
            ? describeCause(streamed.error)
            : `source ended at ${session.offset}/${size}`;
          throw new RegistryError(
            `copy of ${digest} interrupted (${why}); a retry continues from byte ${session.offset}`,
            { registry: l.plan.name },
          );
        }
        await l.plan.client.completeUpload(session, digest, undefined, ctx.signal);
        ctx.resume.delete(l.key);
        results.set(l.plan.target, { ok: true, sent, resumedFrom: l.resumedFrom });
        ctx.emit({ type: 'blob-copied', target: l.plan.name, repo: l.plan.repo, digest, size, sent });
      } catch (err) {
        if (corrupt || err instanceof DigestMismatchError) {
          await l.plan.client.cancelUpload(l.session);
          ctx.resume.delete(l.key);
        }
        if (ctx.signal?.aborted) return;
        results.set(l.plan.target, { sent, ...failure(err, ctx.signal) });
      }
    }),
  );
  return results;
}

/** Opens (or resumes) an upload session per plan; failures go to `failed`. */
async function openSessions<T>(
  ctx: TeeContext,
  blob: Descriptor,
  plans: UploadPlan<T>[],
  results: Map<T, TeeResult>,
): Promise<LiveUpload<T>[]> {
  const live: LiveUpload<T>[] = [];
  await Promise.all(
    plans.map(async (plan) => {
      const key = resumeKey(plan.url, plan.repo, blob.digest);
      try {
        let session = plan.session;
        let resumedFrom = 0;
        const saved = ctx.resume.get(key);
        if (saved && saved.size === blob.size) {
          try {
            const s = await plan.client.uploadStatus(
              { repo: plan.repo, location: saved.location, offset: saved.offset },
              ctx.signal,
            );
            if (s.offset === saved.offset && s.offset <= blob.size) {
              if (session) await plan.client.cancelUpload(session);
              session = s;
              resumedFrom = s.offset;
            }
          } catch (err) {
            if (isAbortError(err) || ctx.signal?.aborted) throw err;
            if (err instanceof UnreachableError) throw err;
            // the session is gone (expired, registry restarted): start over
          }
          if (resumedFrom === 0) ctx.resume.delete(key);
        }
        session ??= await plan.client.startUpload(plan.repo, ctx.signal);
        live.push({ plan, key, session, resumedFrom });
      } catch (err) {
        results.set(plan.target, { sent: 0, ...failure(err, ctx.signal) });
      }
    }),
  );
  return live;
}

/** Pumps the source body into one streamed PATCH per live upload. */
async function streamInto<T>(
  ctx: TeeContext,
  blob: Descriptor,
  body: ReadableStream<Uint8Array>,
  bodyStart: number,
  live: LiveUpload<T>[],
): Promise<Awaited<ReturnType<typeof pump>>> {
  for (const l of live) {
    if (l.session.offset >= blob.size) continue;
    const branch = new Branch(l.session.offset - bodyStart);
    l.branch = branch;
    l.patch = l.plan.client.patchUpload(l.session, branch.stream, { sentBytes: () => branch.pushed });
    l.patch.catch((err) => branch.kill(err));
  }
  let sinceEmit = 0;
  let total = bodyStart;
  return pump(
    body,
    live.flatMap((l) => (l.branch ? [l.branch] : [])),
    {
      stop: () => ctx.signal?.aborted === true,
      onChunk: (n) => {
        total += n;
        sinceEmit += n;
        ctx.onSourceBytes(n);
        if (sinceEmit >= 1024 * 1024 || total === blob.size) {
          sinceEmit = 0;
          ctx.emit({ type: 'blob-progress', digest: blob.digest, bytes: total, size: blob.size });
        }
      },
    },
  );
}

function remember<T>(ctx: TeeContext, l: LiveUpload<T>, session: UploadSession, size: number): void {
  ctx.resume.set(l.key, { location: session.location, offset: session.offset, size, savedAt: Date.now() });
}
