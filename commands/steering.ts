// The shape of the commands that steer one release in flight (pause, resume,
// abort): the release id and nothing else, the `steer` rule, and the domain's
// Lifecycle.steer for the work. Each of those commands is its own module and
// says only its name and what it does.
import { z } from 'zod';
import type { CommandSpec } from '../src/domain/grammar.ts';
import { checkReleaseId, fail } from '../src/domain/grammar.ts';
import { RELEASE_ID } from '../src/domain/words.ts';
import { ephemeral } from '../src/ports.ts';
import type { CommandModule } from './command.ts';

export type SteeringAction = 'pause' | 'resume' | 'abort';

export function steeringSchema<K extends SteeringAction>(kind: K) {
  return z.strictObject({ kind: z.literal(kind), releaseId: z.string().regex(RELEASE_ID) });
}

export type SteeringCommand<K extends SteeringAction> = z.infer<ReturnType<typeof steeringSchema<K>>>;

/** `/release <kind> <release-id>`: grammar, permission and handler of a steering command. */
export function steeringCommand<K extends SteeringAction>(
  kind: K,
  summary: string,
  schema: ReturnType<typeof steeringSchema<K>>,
): CommandModule<SteeringCommand<K>> {
  const usage = `/release ${kind} <release-id>`;
  const grammar: CommandSpec<SteeringCommand<K>> = {
    name: kind,
    usage,
    summary,
    schema,
    parse(words) {
      if (words.length > 1) return fail('usage', `${kind} takes just the release id.`, usage);
      const id = checkReleaseId(words[0], usage);
      return id.ok ? { ok: true, command: { kind, releaseId: id.command } as SteeringCommand<K> } : id;
    },
    format: (c) => `${kind} ${c.releaseId}`,
  };
  return {
    ...grammar,
    permission: { kind: 'release', rule: 'steer' },
    async handle(cmd, { actor, ports }) {
      const r = await ports.lifecycle.steer(kind, cmd.releaseId, actor.userId);
      return ephemeral(r.ok, r.text, cmd.releaseId);
    },
  };
}
