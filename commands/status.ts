// /release status [<app> | <release-id>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';

export const statusSchema = z.strictObject({
  kind: z.literal('status'),
  app: z.string().optional(),
  releaseId: z.string().regex(RELEASE_ID).optional(),
});
export type StatusCommand = z.infer<typeof statusSchema>;

const USAGE = '/release status [<app> | <release-id>]';

export const status: CommandSpec<StatusCommand> = {
  name: 'status',
  usage: USAGE,
  summary: 'Releases in flight and in line, for everything, one app or one release.',
  schema: statusSchema,
  parse(words, ctx) {
    if (words.length > 1) return fail('usage', 'status takes one app or one release id.', USAGE);
    const word = words[0];
    if (word === undefined) return { ok: true, command: { kind: 'status' } };
    if (RELEASE_ID.test(word.toLowerCase().replace(/^#/, ''))) {
      const id = checkReleaseId(word, USAGE);
      return id.ok ? { ok: true, command: { kind: 'status', releaseId: id.command } } : id;
    }
    const app = checkApp(word, ctx, USAGE);
    return app.ok ? { ok: true, command: { kind: 'status', app: app.command } } : app;
  },
  format: (c) => ['status', c.releaseId ?? c.app].filter(Boolean).join(' '),
};
