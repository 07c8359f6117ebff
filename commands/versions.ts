// /release versions <app>
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkApp, fail } from '../src/domain/grammar.ts';
import { literal } from '../src/domain/text.ts';
import { ephemeral } from '../src/ports.ts';
import { type CommandModule, when } from './command.ts';

export const versionsSchema = z.strictObject({ kind: z.literal('versions'), app: z.string() });
export type VersionsCommand = z.infer<typeof versionsSchema>;

const USAGE = '/release versions <app>';

const grammar: CommandSpec<VersionsCommand> = {
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

export const versions: CommandModule<VersionsCommand> = {
  ...grammar,
  permission: { kind: 'anyone', why: 'it only reads' },
  async handle(cmd, { ports: s }) {
    const config = s.config();
    const versions = await s.versions.list(cmd.app);
    if (versions.length === 0) return ephemeral(true, `${cmd.app} has no built versions yet.`);
    const lines: string[] = [];
    for (const v of versions) {
      lines.push(
        `*${literal(v.version)}* (ref ${literal(v.ref)}${v.commit ? `, commit ${literal(v.commit.slice(0, 10))}` : ''}${v.rebuildOf ? `, rebuild of ${literal(v.rebuildOf)} on stack ${v.stack?.stackName}` : ''})`,
      );
      for (const [env, img] of Object.entries(v.images)) {
        const passed = v.passed[env] ? `passed ${when(v.passed[env] as number)}` : 'not passed';
        // Full digests: a person compares them with the registry's.
        const on = img.stack ? `; stack ${img.stack.name}@${img.stack.digest}` : '; stack not recorded';
        const base = img.base ? `; base ${img.base.name}@${img.base.digest}` : '';
        lines.push(`  ${env}: ${img.digest.slice(0, 19)}… ${passed}${on}${base}`);
      }
    }
    for (const env of Object.keys(config.environments)) {
      for (const region of config.environments[env]?.regions ?? []) {
        const d = (await s.versions.deploys(cmd.app, env, region, 1))[0];
        if (d) lines.push(`deployed in ${env}/${region}: ${d.version} (${d.releaseId}, ${when(d.at)})`);
      }
    }
    return ephemeral(true, lines.join('\n'));
  },
};
