// /release reject <release-id> <reason…>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const rejectSchema = z.strictObject({
  kind: z.literal('reject'),
  releaseId: z.string().regex(RELEASE_ID),
  reason: z.string().min(1),
});
export type RejectCommand = z.infer<typeof rejectSchema>;

const USAGE = '/release reject <release-id> <reason…>';

const grammar: CommandSpec<RejectCommand> = {
  name: 'reject',
  usage: USAGE,
  summary: 'Reject a release waiting for approval; the reason is shown to the requester.',
  schema: rejectSchema,
  parse(words) {
    const id = checkReleaseId(words[0], USAGE);
    if (!id.ok) return id;
    const reason = words.slice(1).join(' ');
    // A rejection without a reason leaves the requester guessing.
    if (!reason)
      return fail(
        'usage',
        `Say why ${id.command} is rejected, e.g. \`/release reject ${id.command} needs the DB migration first\`.`,
        USAGE,
      );
    return { ok: true, command: { kind: 'reject', releaseId: id.command, reason } };
  },
  format: (c) => `reject ${c.releaseId} ${c.reason}`,
};

export const reject: CommandModule<RejectCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'reject' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.reject(cmd.releaseId, actor.userId, cmd.reason);
    return ephemeral(r.ok, r.text, cmd.releaseId);
  },
};
