// Image sync a person asked for (`/release sync`): copies a version's images
// to regional registries under the app's locks (every environment the version
// was built for), writes an audit entry and posts the report in the app's
// releases channel.
import { formatDuration } from '../src/domain/duration.ts';
import { literal, mention } from '../src/domain/text.ts';
import type { Operation } from '../src/ports.ts';
import type { JobContext } from './context.ts';
import { underLock } from './operation.ts';

export type SyncOperation = Extract<Operation, { kind: 'sync' }> & { id: string };

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** How long a sync may hold the locks before they expire on their own (a worker that died). */
const SYNC_TTL_MS = 30 * 60_000;

export async function syncImagesJob(op: SyncOperation, ctx: JobContext): Promise<string> {
  const sync = ctx.operations?.sync;
  if (!sync) throw new Error('this worker has no sync runner');
  const { app, version } = op.request;
  const r = await underLock(
    ctx,
    { id: op.id, kind: 'sync', app, environments: op.environments, actor: op.actor, ttlMs: SYNC_TTL_MS },
    async () => {
      const t0 = Date.now();
      const out = await sync(op.request);
      if (!out.built)
        return {
          ok: false,
          text: `${app} ${version} has not been built yet, so there is nothing to sync.`,
          detail: 'not built',
        };
      const lines = out.targets.map(
        (t) =>
          `${t.tag} → ${t.target}: ${t.ok ? `${mb(t.bytesCopied)} copied, ${mb(t.bytesPresent)} already there, ${formatDuration(t.timeMs)}` : `FAILED — ${literal(t.errors.join('; '))}`}`,
      );
      return {
        ok: out.ok,
        text: `Sync of ${app} ${version} requested by ${mention(op.actor.userId)} (${formatDuration(Date.now() - t0)}):\n${lines.join('\n') || 'no region to sync to'}`,
        detail: out.targets.map((t) => `${t.target} ${t.ok ? 'ok' : 'failed'}`).join(', ') || 'no region',
      };
    },
  );
  return r.ok ? 'synced' : `sync failed: ${r.detail}`;
}
