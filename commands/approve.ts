// /release approve <release-id> [reason…]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';

export const approveSchema = z.strictObject({
  kind: z.literal('approve'),
  releaseId: z.string().regex(RELEASE_ID),
  reason: z.string().optional(),
});
export type ApproveCommand = z.infer<typeof approveSchema>;

const USAGE = '/release approve <release-id> [reason…]';

export const approve: CommandSpec<ApproveCommand> = {
  name: 'approve',
  usage: USAGE,
  summary: 'Approve a release waiting for approval.',
  schema: approveSchema,
  parse(words) {
    const id = checkReleaseId(words[0], USAGE);
    if (!id.ok) return id;
    const reason = words.slice(1).join(' ');
    return { ok: true, command: { kind: 'approve', releaseId: id.command, ...(reason ? { reason } : {}) } };
  },
  format: (c) => ['approve', c.releaseId, ...(c.reason ? [c.reason] : [])].join(' '),
};
