// /release versions <app>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, fail } from '../src/domain/grammar.ts';

export const versionsSchema = z.strictObject({ kind: z.literal('versions'), app: z.string() });
export type VersionsCommand = z.infer<typeof versionsSchema>;

const USAGE = '/release versions <app>';

export const versions: CommandSpec<VersionsCommand> = {
  name: 'versions',
  usage: USAGE,
  summary: "An app's versions: code ref, image digest per environment, and where each is deployed.",
  schema: versionsSchema,
  parse(words, ctx) {
    if (words.length > 1) return fail('usage', 'versions takes just the app name.', USAGE);
    const app = checkApp(words[0], ctx, USAGE);
    return app.ok ? { ok: true, command: { kind: 'versions', app: app.command } } : app;
  },
  format: (c) => `versions ${c.app}`,
};
