// /release plan <app> <version> [to <env>] [in …] [<factor>…] — a dry run: the plan, nothing queued.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { explainPlan, planRelease } from '../src/domain/plan.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';
import { formatReleaseWords, parseReleaseWords, releaseSchema } from './release.ts';

export const planSchema = releaseSchema.extend({ kind: z.literal('plan') });
export type PlanCommand = z.infer<typeof planSchema>;

export const PLAN_USAGE = '/release plan <app> <version> [to <env>] [in <region>[,<region>…]] [<factor>…]';

const grammar: CommandSpec<PlanCommand> = {
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

export const plan: CommandModule<PlanCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'a dry run: nothing is stored or started' },
  async handle(cmd, { ports }) {
    const p = planRelease(cmd, ports.config());
    if (!p.ok) return ephemeral(false, p.error.message);
    return ephemeral(true, `Plan (nothing started):\n\`\`\`\n${explainPlan(p.plan).join('\n')}\n\`\`\``);
  },
};
