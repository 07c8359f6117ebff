// Kept for callers of the earlier names: the handler types now live in
// command.ts (the ports) and src/ports.ts (actor and reply).

export type { Reply as CommandReply } from '../src/ports.ts';
export { ephemeral } from '../src/ports.ts';
export type { Actor, CommandPorts, CommandPorts as CommandServices } from './command.ts';
