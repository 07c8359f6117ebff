// What one command is: its grammar (parse/format/usage/summary, from the
// domain's CommandSpec), the permission it needs and its handler. Each
// commands/<name>.ts exports one of these; commands/index.ts lists them.
//
// Handlers are chat-neutral: they take who asked and where, call the domain
// and the ports (CommandPorts) only, and return plain text for the person.
import type { FerryConfig } from '../src/domain/config.ts';
import type { CommandSpec } from '../src/domain/grammar.ts';
import type { Lifecycle } from '../src/domain/lifecycle.ts';
import type { Announcer, ReleaseRepository } from '../src/domain/ports.ts';
import type { VersionRepository } from '../src/domain/version.ts';
import type {
  Action,
  Actor,
  Adopter,
  LogReader,
  OperationQueue,
  Rebuilder,
  Reply,
  RollbackPlanner,
} from '../src/ports.ts';

export type { Actor, Reply };

/** Everything a handler may call. The optional parts are absent where an installation has no clusters. */
export interface CommandPorts {
  config: () => FerryConfig;
  lifecycle: Lifecycle;
  releases: ReleaseRepository;
  versions: Pick<VersionRepository, 'get' | 'list' | 'deploys'>;
  announcer: Announcer;
  /** Long work (rollback, sync, log collection) goes to the worker through this queue. */
  operations?: OperationQueue;
  rollbacks?: RollbackPlanner;
  logs?: LogReader;
  adoptions?: Adopter;
  rebuilds?: Rebuilder;
}

/** One app and environment a permission is asked for. */
export interface Target {
  app: string;
  environment: string;
}

/**
 * What a person must be allowed to run a command. The domain policy decides:
 * - `action`: `may(config, user, action, app, env)` for every target, checked before the handler runs;
 * - `release`: a rule on a stored release (request, approve, reject, steer), which the lifecycle checks
 *   with the policy when it has read the release;
 * - `anyone`: the command only reads.
 */
export type Permission<T> =
  | { kind: 'anyone'; why: string }
  | {
      kind: 'action';
      action: Action;
      /** The apps and environments the command acts on; none means there is nothing to act on. */
      targets(command: T, ports: CommandPorts): Target[] | Promise<Target[]>;
    }
  | { kind: 'release'; rule: 'request' | 'approve' | 'reject' | 'steer' };

/** What a handler knows besides its command. */
export interface HandlerContext {
  actor: Actor;
  ports: CommandPorts;
  /** The grammar of every command (for help). */
  specs: readonly CommandSpec<{ kind: string }>[];
}

export interface CommandModule<T extends { kind: string }> extends CommandSpec<T> {
  permission: Permission<T>;
  handle(command: T, ctx: HandlerContext): Promise<Reply>;
}

/** The environment a command names, or the app's default one. */
export function environmentOf(config: FerryConfig, app: string, environment?: string): string | undefined {
  return environment ?? config.apps[app]?.defaultEnvironment;
}

export const when = (at: number) => new Date(at).toISOString().replace('T', ' ').slice(0, 16);
