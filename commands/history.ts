// /release history <app> [to <env>]
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, checkEnvironment, readOptions } from '../src/domain/grammar.ts';
import type { AuditEntry } from '../src/domain/release.ts';
import { oneLine } from '../src/domain/release.ts';
import { literal, mention } from '../src/domain/text.ts';
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, when } from './command.ts';

export const historySchema = z.strictObject({
  kind: z.literal('history'),
  app: z.string(),
  environment: z.string().optional(),
});
export type HistoryCommand = z.infer<typeof historySchema>;

const USAGE = '/release history <app> [to <env>]';

const grammar: CommandSpec<HistoryCommand> = {
  name: 'history',
  usage: USAGE,
  summary: "An app's releases and every transition, with who and when.",
  schema: historySchema,
  parse(words, ctx) {
    const app = checkApp(words[0], ctx, USAGE);
    if (!app.ok) return app;
    const opts = readOptions(words.slice(1), ['to'], USAGE);
    if (!opts.ok) return opts;
    const to = opts.command.values.get('to');
    if (to === undefined) return { ok: true, command: { kind: 'history', app: app.command } };
    const env = checkEnvironment(to, ctx, USAGE);
    return env.ok
      ? { ok: true, command: { kind: 'history', app: app.command, environment: env.command } }
      : env;
  },
  format: (c) => ['history', c.app, ...(c.environment ? ['to', c.environment] : [])].join(' '),
};

function auditLine(a: AuditEntry): string {
  const who = a.actor === 'ferry' ? 'Ferry' : `${mention(a.actor)}`;
  return `${when(a.at)}  ${a.releaseId}  ${a.from ?? '—'} → ${a.to}  by ${who}${a.detail ? ` — ${literal(a.detail)}` : ''}`;
}

export const history: CommandModule<HistoryCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'it only reads' },
  async handle(cmd, { ports: s }) {
    const releases = (await s.releases.byApp(cmd.app, 20)).filter(
      (r) => !cmd.environment || r.environment === cmd.environment,
    );
    if (releases.length === 0)
      return ephemeral(
        true,
        `${cmd.app} has no releases${cmd.environment ? ` to ${cmd.environment}` : ''} yet.`,
      );
    const lines: string[] = [];
    for (const r of releases) {
      lines.push(`*${oneLine(r)}*`);
      for (const a of await s.releases.audit(r.id)) lines.push(auditLine(a));
    }
    return ephemeral(true, lines.join('\n'));
  },
};
