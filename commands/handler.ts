// What a command handler gets and gives back. Handlers are chat-neutral:
// they take who asked and where, call the domain, and return text for the
// person (shown to them alone unless `visibility` says otherwise). The Slack
// adapter turns this into an ephemeral reply, the CLI into stdout.
import type { FerryConfig } from '../src/config/schema.ts';
import type { Lifecycle } from '../src/domain/lifecycle.ts';
import type { Announcer, ReleaseRepository } from '../src/domain/ports.ts';
import type { VersionRepository } from '../src/domain/version.ts';
import type { AdoptCommand } from './adopt.ts';
import type { LogsCommand } from './logs.ts';
import type { RebuildCommand } from './rebuild.ts';
import type { RollbackCommand } from './rollback.ts';
import type { SyncCommand } from './sync.ts';

export interface Actor {
  userId: string;
  channel: string;
}

export interface CommandReply {
  ok: boolean;
  text: string;
  /** "ephemeral": only the person who typed it sees it; "channel": everyone in the channel. */
  visibility: 'ephemeral' | 'channel';
  releaseId?: string;
}

/** Work that lives outside the lifecycle core; an installation without it answers that it is not set up. */
export interface RollbackService {
  request(cmd: RollbackCommand, actor: Actor): Promise<CommandReply>;
}
export interface LogService {
  read(cmd: LogsCommand, actor: Actor): Promise<CommandReply>;
}
export interface SyncService {
  request(cmd: SyncCommand, actor: Actor): Promise<CommandReply>;
}
export interface AdoptionService {
  request(cmd: AdoptCommand, actor: Actor): Promise<CommandReply>;
}
export interface RebuildService {
  request(cmd: RebuildCommand, actor: Actor): Promise<CommandReply>;
}

export interface CommandServices {
  config: () => FerryConfig;
  lifecycle: Lifecycle;
  releases: ReleaseRepository;
  versions: Pick<VersionRepository, 'get' | 'list' | 'deploys'>;
  announcer: Announcer;
  rollbacks?: RollbackService;
  logs?: LogService;
  syncs?: SyncService;
  adoptions?: AdoptionService;
  rebuilds?: RebuildService;
}

export const ephemeral = (ok: boolean, text: string, releaseId?: string): CommandReply => ({
  ok,
  text,
  visibility: 'ephemeral',
  ...(releaseId ? { releaseId } : {}),
});
