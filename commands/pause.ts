// /release pause <release-id>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export const pauseSchema = z.strictObject({
  kind: z.literal('pause'),
  releaseId: z.string().regex(RELEASE_ID),
});
export type PauseCommand = z.infer<typeof pauseSchema>;

const USAGE = '/release pause <release-id>';

const grammar: CommandSpec<PauseCommand> = {
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

export const pause: CommandModule<PauseCommand> = {
  ...grammar,
  permission: { kind: 'release', rule: 'steer' },
  async handle(cmd, { actor, ports }) {
    const r = await ports.lifecycle.steer('pause', cmd.releaseId, actor.userId);
    return ephemeral(r.ok, r.text, cmd.releaseId);
  },
};
