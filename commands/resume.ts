// /release resume <release-id>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const resumeSchema = z.strictObject({
  kind: z.literal('resume'),
  releaseId: z.string().regex(RELEASE_ID),
});
export type ResumeCommand = z.infer<typeof resumeSchema>;

const USAGE = '/release resume <release-id>';

const grammar: CommandSpec<ResumeCommand> = {
  name: 'resume',
  usage: USAGE,
  summary: 'Continue a paused release, or promote the next batch where the plan waits for a person.',
  schema: resumeSchema,
  parse(words) {
    if (words.length > 1) return fail('usage', 'resume takes just the release id.', USAGE);
    const id = checkReleaseId(words[0], USAGE);
    return id.ok ? { ok: true, command: { kind: 'resume', releaseId: id.command } } : id;
  },
  format: (c) => `resume ${c.releaseId}`,
};

export const resume: CommandModule<ResumeCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'steer' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.steer('resume', cmd.releaseId, actor.userId);
    return ephemeral(r.ok, r.text, cmd.releaseId);
  },
};
