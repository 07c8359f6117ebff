// /release pause <release-id>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';

export const pauseSchema = z.strictObject({
  kind: z.literal('pause'),
  releaseId: z.string().regex(RELEASE_ID),
});
export type PauseCommand = z.infer<typeof pauseSchema>;

const USAGE = '/release pause <release-id>';

export const pause: CommandSpec<PauseCommand> = {
  name: 'pause',
  usage: USAGE,
  summary: 'Stop a rollout after the batch in progress; nothing more changes until resume.',
  schema: pauseSchema,
  parse(words) {
    if (words.length > 1) return fail('usage', 'pause takes just the release id.', USAGE);
    const id = checkReleaseId(words[0], USAGE);
    return id.ok ? { ok: true, command: { kind: 'pause', releaseId: id.command } } : id;
  },
  format: (c) => `pause ${c.releaseId}`,
};
