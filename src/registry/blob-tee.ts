// One blob, read once from the source and streamed into an upload on every
// target that needs it (a tee at the pace of the slowest live target).
//
// - an upload session remembered from an interrupted attempt is continued
//   from the offset the registry holds; the source is read from the lowest
//   such offset (Range), each branch skipping what its target already has;
// - the blob is verified against its digest while streaming: a corrupt
//   source fails every upload before anything is committed;
// - a stream cut short ends the uploads cleanly, so each registry keeps what
//   it received and the session is remembered for the retry;
// - each target's upload is a series of PATCHes sized to its link
//   (upload-link.ts): a connection broken mid-blob loses one chunk at most
//   (the session is remembered at the offset the registry acknowledged), and
//   a chunk refused as too large (413: a proxy's body limit) is sent again,
//   smaller, from the registry's offset in another pass over the source.

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
  /** The session as opened (or resumed) for this pass. */
  session: UploadSession;
  /** The session after the last chunk the registry acknowledged. */
  acked: UploadSession;
  resumedFrom: number;
  branch?: Branch;
  patch?: Promise<UploadSession>;
  /** Size of the chunk the registry refused as too large (HTTP 413). */
  refused?: number;
  /** A chunk's request failed (as opposed to the source or the commit). */
  chunkFailed?: boolean;
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

/** One pass's outcome: a failure may ask for another pass (a chunk was refused as too large). */
type PassResult = TeeResult & { resumedFrom?: number; again?: boolean };

/**
 * Copies `blob` (from `sourceRepo`) into every plan's repository; the result
 * per target. Rejects only when the sync is aborted.
 *
 * Targets that refused a chunk as too large get another pass right away,
 * with smaller chunks, from the offset their registry holds (the source is
 * read again from there). This is not a retry of a failure: it is how an
 * unknown body limit is found, once per registry, so it does not use up the
 * sync's retries.
 */
export async function teeBlob<T>(
  ctx: TeeContext,
  blob: Descriptor,
  sourceRepo: string,
  plans: UploadPlan<T>[],
): Promise<Map<T, TeeResult>> {
  const results = new Map<T, TeeResult>();
  const first = new Map<T, number>();
  let todo = plans;
  while (todo.length > 0) {
    const pass = await teePass(ctx, blob, sourceRepo, todo);
    const again: UploadPlan<T>[] = [];
    for (const plan of todo) {
      const r = pass.get(plan.target);
      if (!r) continue;
      if (!first.has(plan.target)) first.set(plan.target, r.resumedFrom ?? 0);
      const sent = (results.get(plan.target)?.sent ?? 0) + r.sent;
      const { again: more, resumedFrom: _, ...rest } = r;
      // Bytes resumed are those an earlier sync left in the registry, not those an earlier pass sent.
      results.set(
        plan.target,
        rest.ok ? { ...rest, sent, resumedFrom: first.get(plan.target)! } : { ...rest, sent },
      );
      if (more && !ctx.signal?.aborted) {
        const { session: _s, ...fresh } = plan; // the remembered session is picked up by openSessions
        again.push(fresh);
      }
    }
    todo = again;
  }
  return results;
}

async function teePass<T>(
  ctx: TeeContext,
  blob: Descriptor,
  sourceRepo: string,
  plans: UploadPlan<T>[],
): Promise<Map<T, PassResult>> {
  const results = new Map<T, PassResult>();
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
      try {
        const session = l.patch ? await l.patch : l.session;
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
        const sent = session.offset - l.session.offset;
        results.set(l.plan.target, { ok: true, sent, resumedFrom: l.resumedFrom });
        ctx.emit({ type: 'blob-copied', target: l.plan.name, repo: l.plan.repo, digest, size, sent });
      } catch (err) {
        const sent = l.acked.offset - l.session.offset;
        if (corrupt || err instanceof DigestMismatchError) {
          await l.plan.client.cancelUpload(l.session);
          ctx.resume.delete(l.key);
        } else if (l.chunkFailed) {
          await keepForRetry(ctx, l, size);
        }
        if (ctx.signal?.aborted) return;
        const resumedFrom = l.resumedFrom;
        if (l.refused !== undefined && !corrupt) {
          const smaller = l.plan.client.uploadLink.refused(l.refused);
          if (smaller) {
            results.set(l.plan.target, { sent, resumedFrom, again: true, ...failure(err, ctx.signal) });
            return;
          }
          const msg = `registry ${l.plan.name} refuses upload bodies of ${l.refused} bytes (HTTP 413): raise the body limit of its proxy (nginx client_max_body_size) to at least 1 MiB`;
          results.set(l.plan.target, {
            sent,
            resumedFrom,
            ...failure(new RegistryError(msg, { registry: l.plan.name, status: 413 }), ctx.signal),
          });
          return;
        }
        results.set(l.plan.target, { sent, resumedFrom, ...failure(err, ctx.signal) });
      }
    }),
  );
  return results;
}

/**
 * After a failed chunk: asks the registry where the session stands (its
 * Range) and remembers it, so the next attempt sends only what is missing.
 * A registry that dropped the session (Distribution does after a PATCH that
 * broke mid-body, having kept part of it) makes the next attempt start over.
 */
async function keepForRetry<T>(ctx: TeeContext, l: LiveUpload<T>, size: number): Promise<void> {
  try {
    const s = await l.plan.client.uploadStatus(l.acked, ctx.signal);
    if (s.offset <= size) {
      remember(ctx, l, s, size);
      l.acked = s;
      return;
    }
  } catch (err) {
    if (isAbortError(err) || ctx.signal?.aborted) return;
  }
  ctx.resume.delete(l.key);
}

/** Opens (or resumes) an upload session per plan; failures go to `failed`. */
async function openSessions<T>(
  ctx: TeeContext,
  blob: Descriptor,
  plans: UploadPlan<T>[],
  results: Map<T, PassResult>,
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
        live.push({ plan, key, session, acked: session, resumedFrom });
      } catch (err) {
        results.set(plan.target, { sent: 0, ...failure(err, ctx.signal) });
      }
    }),
  );
  return live;
}

/** Pumps the source body into each live upload's chunks. */
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
    l.patch = sendChunks(l, branch, blob.size);
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

/**
 * Sends what the branch yields as PATCHes sized by the target's UploadLink.
 * A chunk's body is streamed from the branch as it arrives (nothing is held
 * beyond the branch's 1 MiB buffer, whatever the chunk size) and is sent
 * without Content-Length, as `docker push` streams a layer: when the source
 * stops early (a graceful stop, a source link cut) the chunk just ends short
 * and the registry keeps it. With a declared length the same stop would be a
 * broken request, after which Distribution drops the whole session.
 */
async function sendChunks<T>(l: LiveUpload<T>, branch: Branch, size: number): Promise<UploadSession> {
  const { client } = l.plan;
  const link = client.uploadLink;
  const reader = branch.stream.getReader();
  let carry: Uint8Array | undefined;
  let sourceEnded = false;
  try {
    while (!sourceEnded && l.acked.offset < size) {
      // Open a request only once there are bytes for it.
      if (!carry) {
        const r = await reader.read();
        if (r.done) break;
        carry = r.value;
      }
      const want = link.nextChunk(l.acked.offset, size);
      let taken = 0;
      const chunk = new ReadableStream<Uint8Array>(
        {
          pull: async (c) => {
            let piece = carry;
            carry = undefined;
            if (!piece) {
              const r = await reader.read();
              if (r.done) {
                sourceEnded = true;
                c.close();
                return;
              }
              piece = r.value;
            }
            const room = want - taken;
            if (piece.byteLength > room) {
              carry = piece.subarray(room);
              piece = piece.subarray(0, room);
            }
            taken += piece.byteLength;
            c.enqueue(piece);
            if (taken >= want) c.close();
          },
        },
        { highWaterMark: 0 },
      );
      const from = l.acked.offset;
      const t0 = performance.now();
      try {
        l.acked = await client.patchUpload(l.acked, chunk, { sentBytes: () => taken });
      } catch (err) {
        if (err instanceof RegistryError && err.status === 413) l.refused = want;
        else if (err instanceof UnreachableError && taken > 0 && branch.dead === undefined) link.broken();
        throw err;
      }
      if (l.acked.offset !== from + taken) {
        throw new RegistryError(
          `registry ${client.name} holds ${l.acked.offset} bytes of the upload after a chunk of ${taken} bytes from ${from}`,
          { registry: client.name },
        );
      }
      link.accepted(taken, performance.now() - t0);
    }
    return l.acked;
  } catch (err) {
    l.chunkFailed = true;
    await reader.cancel(err).catch(() => {});
    // A corrupt source fails the branch, and with it the request: say why.
    throw branch.dead instanceof DigestMismatchError ? branch.dead : err;
  } finally {
    reader.releaseLock();
  }
}

function remember<T>(ctx: TeeContext, l: LiveUpload<T>, session: UploadSession, size: number): void {
  ctx.resume.set(l.key, { location: session.location, offset: session.offset, size, savedAt: Date.now() });
}
