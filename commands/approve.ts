// /release approve <release-id> [reason…]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const approveSchema = z.strictObject({
  kind: z.literal('approve'),
  releaseId: z.string().regex(RELEASE_ID),
  reason: z.string().optional(),
});
export type ApproveCommand = z.infer<typeof approveSchema>;

const USAGE = '/release approve <release-id> [reason…]';

const grammar: CommandSpec<ApproveCommand> = {
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

export const approve: CommandModule<ApproveCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'approve' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.approve(cmd.releaseId, actor.userId);
    return ephemeral(r.ok, r.text, cmd.releaseId);
  },
};
