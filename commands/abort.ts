// /release abort <release-id>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const abortSchema = z.strictObject({
  kind: z.literal('abort'),
  releaseId: z.string().regex(RELEASE_ID),
});
export type AbortCommand = z.infer<typeof abortSchema>;

const USAGE = '/release abort <release-id>';

const grammar: CommandSpec<AbortCommand> = {
  name: 'abort',
  usage: USAGE,
  summary: 'Stop a release where it is and roll back what it changed.',
  schema: abortSchema,
  parse(words) {
    if (words.length > 1) return fail('usage', 'abort takes just the release id.', USAGE);
    const id = checkReleaseId(words[0], USAGE);
    return id.ok ? { ok: true, command: { kind: 'abort', releaseId: id.command } } : id;
  },
  format: (c) => `abort ${c.releaseId}`,
};

export const abort: CommandModule<AbortCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'steer' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.steer('abort', cmd.releaseId, actor.userId);
    return ephemeral(r.ok, r.text, cmd.releaseId);
  },
};
