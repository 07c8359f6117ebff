// Queue names and job ids. A job id is derived from the release and the step,
// so submitting the same release twice creates nothing new (BullMQ ignores an
// add whose id exists, in any state).
export const QUEUES = {
  /** build → sync → deploy per region → finish, as one BullMQ flow per release. */
  release: 'ferry-release',
  /** Timers: approval expiry. */
  timers: 'ferry-timers',
  /** Outbound chat messages, in order. */
  notify: 'ferry-notify',
  /** Operations a person asked for outside a release: rollback of an app, image sync (jobs/). */
  ops: 'ferry-ops',
  /** Build, sync and pull ahead while a release waits (jobs/prepare.ts); low priority, few at once. */
  prepare: 'ferry-prepare',
} as const;

export type StepName = 'build' | 'sync' | 'deploy' | 'finish' | 'rollback';

export function jobId(releaseId: string, step: string, attempt = 0): string {
  // BullMQ job ids may not contain ':' followed by digits only; keep them plain.
  return attempt ? `${releaseId}.${step}.${attempt}` : `${releaseId}.${step}`;
}
