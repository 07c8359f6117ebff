// What every operation job (a rollback or sync a person asked for outside a
// release) does around its work: take the app and environment's lock — only
// when no release holds it or waits for it — write an audit entry with the
// outcome, free the lock (starting the next release in line) and post the
// outcome through the notify queue.
import type { AuditEntry } from '../src/domain/release.ts';
import type { Actor } from '../src/ports.ts';
import type { JobContext } from './context.ts';

export interface OperationResult {
  ok: boolean;
  /** The report for the channel. */
  text: string;
  /** One line for the audit trail. */
  detail: string;
}

/** Thrown when the lock is busy: the job is retried later by the worker (BullMQ backoff). */
export class LockBusy extends Error {}

export async function underLock(
  ctx: JobContext,
  op: {
    id: string;
    kind: 'rollback' | 'sync';
    app: string;
    environments: string[];
    actor: Actor;
    ttlMs: number;
  },
  work: () => Promise<OperationResult>,
): Promise<OperationResult> {
  const locks = ctx.locks;
  if (!locks) throw new Error('operations need the store’s operation locks');
  const taken: string[] = [];
  try {
    for (const env of op.environments) {
      const lock = await locks.acquireOperation(op.app, env, op.id, Math.ceil(op.ttlMs / 1000) + 60);
      if (!lock.acquired)
        throw new LockBusy(`${op.app} in ${env} is held by ${lock.holder}; the ${op.kind} waits for it`);
      taken.push(env);
    }
    const at = Date.now();
    const result = await work().catch(
      (err: Error): OperationResult => ({
        ok: false,
        text: `The ${op.kind} of ${op.app} failed: ${err.message}`,
        detail: err.message,
      }),
    );
    const entry: AuditEntry = {
      releaseId: op.id,
      at,
      actor: op.actor.userId,
      from: null,
      to: result.ok ? 'succeeded' : 'failed',
      event: op.kind,
      detail: `${op.app} in ${op.environments.join(', ')}: ${result.detail}`,
    };
    await locks.recordOperation(entry);
    const channel = ctx.config().apps[op.app]?.channels?.releases ?? op.actor.channel;
    await ctx.announcer.announce({ kind: 'message', channel, text: result.text });
    return result;
  } finally {
    for (const env of taken) {
      const next = await locks.releaseOperation(op.app, env, op.id);
      if (next) await ctx.lifecycle.start(next);
    }
  }
}
