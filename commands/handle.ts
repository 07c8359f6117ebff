// Runs a command: parse errors and refusals come back as replies; nothing is
// stored or queued for them. Each command's own module (commands/<name>.ts)
// says what permission it needs and does the work; this only checks the
// permission with the domain policy and dispatches.
import { may } from '../src/domain/policy.ts';
import { ephemeral, type Reply } from '../src/ports.ts';
import type { Actor, CommandPorts } from './command.ts';
import { COMMAND_LIST, type Command, commandModule, parseCommand } from './index.ts';

export { describeRelease } from './describe.ts';

export async function handleText(text: string, actor: Actor, ports: CommandPorts): Promise<Reply> {
  const parsed = parseCommand(text, { config: ports.config() });
  if (!parsed.ok) return ephemeral(false, parsed.error.message);
  return handleCommand(parsed.command, actor, ports);
}

export async function handleCommand(cmd: Command, actor: Actor, ports: CommandPorts): Promise<Reply> {
  const module = commandModule(cmd.kind);
  const permission = module.permission;
  if (permission.kind === 'action') {
    const config = ports.config();
    for (const t of await permission.targets(cmd, ports)) {
      const allowed = may(config, actor.userId, permission.action, t.app, t.environment);
      if (!allowed.ok) return ephemeral(false, allowed.reason);
    }
  }
  return module.handle(cmd, { actor, ports, specs: COMMAND_LIST });
}
