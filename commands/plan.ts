// /release plan <app> <version> [to <env>] [in …] [<factor>…] — a dry run: the plan, nothing queued.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { formatReleaseWords, parseReleaseWords, releaseSchema } from './release.ts';

export const planSchema = releaseSchema.extend({ kind: z.literal('plan') });
export type PlanCommand = z.infer<typeof planSchema>;

export const PLAN_USAGE = '/release plan <app> <version> [to <env>] [in <region>[,<region>…]] [<factor>…]';

export const plan: CommandSpec<PlanCommand> = {
  name: 'plan',
  usage: PLAN_USAGE,
  summary: 'Show the plan a release would follow, without starting it.',
  schema: planSchema,
  parse(words, ctx) {
    const r = parseReleaseWords(words, ctx, PLAN_USAGE);
    return r.ok ? { ok: true, command: { kind: 'plan', ...r.command } } : r;
  },
  format: (c) => `plan ${formatReleaseWords(c)}`,
};
