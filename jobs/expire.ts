// Expire job: a release nobody approved in time gives up its place.
import type { TimerData } from '../src/queue/scheduler.ts';
import type { JobContext } from './context.ts';

export async function expireJob(
  data: Extract<TimerData, { kind: 'expire' }>,
  ctx: JobContext,
): Promise<string> {
  await ctx.lifecycle.expire(data.releaseId);
  return 'checked';
}
