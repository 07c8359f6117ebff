// The core side of every chat platform's receiver (src/chat/port.ts): a
// request from a person — a command, a card's button, a reason for rejecting,
// an alert's Silence button — becomes a call on the lifecycle or a command
// module, and an answer. Platforms differ only in how they receive and show.
//
// Each delivery is acted on once (its deliveryId, and user+action+release+card
// revision for double clicks), remembered for 10 minutes: platforms re-deliver
// requests they think were lost, and people double-click.

import type { ChatAnswer, ChatRequest, ChatRequestHandler, ReleaseAction } from '../src/chat/port.ts';
import type { FerryConfig } from '../src/domain/config.ts';
import { durationMs } from '../src/domain/duration.ts';
import { lookup } from '../src/domain/lookup.ts';
import { may, mayAskToReject, mayRollBackRelease, maySilence } from '../src/domain/policy.ts';
import { echo, mention } from '../src/domain/text.ts';
import { ephemeral, type Reply } from '../src/ports.ts';
import type { Actor, CommandPorts } from './command.ts';
import { handleCommand, handleText } from './handle.ts';
import { parseCommand } from './index.ts';

/** How long a delivery's identity is remembered (Slack retries for ~5 min). */
export const DEDUPE_TTL = 600;

export interface RequestPorts extends CommandPorts {
  /** Remembers a key for `ttlSeconds`; false when it was seen before. */
  once(key: string, ttlSeconds: number): Promise<boolean>;
  /** Silences alerts with a key (the watcher's silences). */
  silence(key: string, durationMs: number, by: string): Promise<unknown>;
}

const answer = (reply: Reply): ChatAnswer => ({ kind: 'reply', reply });
const NONE: ChatAnswer = { kind: 'none' };

export class CommandRequests implements ChatRequestHandler {
  private readonly ports: RequestPorts;
  /** Prefix of the dedupe keys (the platform's name: deliveries of two platforms never collide). */
  private readonly platform: string;
  /** Help answers of the config they were worked out from, by topic. */
  private help: { config: FerryConfig; replies: Map<string, Reply> } | undefined;

  constructor(ports: RequestPorts, platform = 'slack') {
    this.ports = ports;
    this.platform = platform;
  }

  private once(key: string): Promise<boolean> {
    return this.ports.once(`${this.platform}:${key}`, DEDUPE_TTL);
  }

  async answerInAck(text: string, actor: Actor): Promise<Reply | undefined> {
    // Parsing is pure and fast: a wrong command is answered in the ack itself, and nothing is queued.
    const config = this.ports.config();
    const parsed = parseCommand(text, { config });
    if (!parsed.ok) return ephemeral(false, parsed.error.message);
    // Answers that need no state (help, plan, apps) come from the config alone: they are the ack.
    const k = parsed.command.kind;
    if (k === 'help') {
      // The same for everyone until the config changes: worked out (and rendered, by the platform) once.
      if (this.help?.config !== config) this.help = { config, replies: new Map() };
      const topic = parsed.command.topic ?? '';
      let reply = this.help.replies.get(topic);
      if (!reply) {
        reply = await handleCommand(parsed.command, actor, this.ports);
        this.help.replies.set(topic, reply);
      }
      return reply;
    }
    if (k === 'plan' || k === 'apps') return handleCommand(parsed.command, actor, this.ports);
    return undefined;
  }

  async handle(req: ChatRequest): Promise<ChatAnswer> {
    switch (req.kind) {
      case 'command': {
        // The redelivery check is the first store call: an unreachable store fails here, and is answered.
        if (!(await this.once(`cmd:${req.deliveryId}`))) return NONE;
        return answer(await handleText(req.text, req.actor, this.ports));
      }
      case 'release-action':
        return this.onAction(req);
      case 'reject-reason': {
        if (!(await this.once(`view:${req.deliveryId}`))) return NONE;
        const r = await this.ports.lifecycle.reject(req.releaseId, req.actor.userId, req.reason);
        return r.ok ? NONE : answer(ephemeral(false, r.text, req.releaseId));
      }
      case 'silence': {
        if (!(await this.once(`act:${req.deliveryId}`))) return NONE;
        const config = this.ports.config();
        const allowed = maySilence(config, req.actor.userId, req.key);
        if (!allowed.ok) return answer(ephemeral(false, allowed.reason));
        await this.ports.silence(req.key, durationMs(config.alerts.silenceFor), req.actor.userId);
        return answer(ephemeral(true, `Silenced for ${config.alerts.silenceFor}: \`${req.key}\`.`));
      }
      case 'alert-logs': {
        if (!(await this.once(`act:${req.deliveryId}`))) return NONE;
        const t = req.target;
        const config = this.ports.config();
        // The button's value names them; names Ferry does not know are refused before the policy quotes them.
        if (!lookup(config.apps, t.app) || !lookup(config.environments, t.environment))
          return answer(ephemeral(false, `Ferry does not know ${echo(t.app)} in ${echo(t.environment)}.`));
        const allowed = may(config, req.actor.userId, 'logs', t.app, t.environment);
        if (!allowed.ok) return answer(ephemeral(false, allowed.reason));
        if (!this.ports.logs) return answer(ephemeral(false, 'Logs are not set up in this installation.'));
        // The same reader as `/release logs`, on the killed container's pod, into the alert's thread.
        return answer(
          await this.ports.logs.read(
            { app: t.app, environment: t.environment, region: t.region, pod: t.pod },
            req.actor,
            { alertKey: t.alertKey },
          ),
        );
      }
    }
  }

  private async onAction(req: Extract<ChatRequest, { kind: 'release-action' }>): Promise<ChatAnswer> {
    const user = req.actor.userId;
    // The same delivery again (a platform retry), or the same click twice on the same card.
    if (!(await this.once(`act:${req.deliveryId}`))) return NONE;
    // Show logs changes nothing: a second click a minute later is a fresh read, not a double click.
    if (
      req.action !== 'logs' &&
      !(await this.once(`click:${user}:${req.action}:${req.releaseId}:${req.rev ?? ''}`))
    )
      return NONE;
    const rel = await this.ports.releases.get(req.releaseId);
    if (!rel) return answer(ephemeral(false, `There is no release ${req.releaseId} any more.`));
    const stale = req.rev !== undefined && req.rev < rel.rev;
    const config = this.ports.config();
    let result: { ok: boolean; text: string };
    const action: ReleaseAction = req.action;
    switch (action) {
      case 'approve':
        result = await this.ports.lifecycle.approve(rel.id, user);
        break;
      case 'reject': {
        const allowed = mayAskToReject(config, rel, user);
        if (allowed.ok) return { kind: 'ask-reason', release: rel };
        result = { ok: false, text: allowed.reason };
        break;
      }
      case 'pause':
      case 'resume':
      case 'abort':
      case 'promote':
        result = await this.ports.lifecycle.steer(action, rel.id, user);
        break;
      case 'logs': {
        const allowed = may(config, user, 'logs', rel.app, rel.environment);
        if (!allowed.ok) result = { ok: false, text: allowed.reason };
        else if (!this.ports.logs) result = { ok: false, text: 'Logs are not set up in this installation.' };
        else {
          // The same reader as `/release logs`: the newest pod of the app there, into the release's thread.
          const reply = await this.ports.logs.read(
            {
              app: rel.app,
              environment: rel.environment,
              ...(rel.regions[0] ? { region: rel.regions[0] } : {}),
            },
            req.actor,
            { releaseId: rel.id },
          );
          // Reading logs changes no state: an outdated card is no reason to refresh it.
          return answer(reply);
        }
        break;
      }
      case 'rollback': {
        const allowed = mayRollBackRelease(config, rel, user);
        if (!allowed.ok) result = { ok: false, text: allowed.reason };
        else {
          await this.ports.lifecycle.rollback(rel.id, `rolled back by ${mention(user)}`);
          result = { ok: true, text: `Rolling ${rel.id} back.` };
        }
        break;
      }
    }
    if (result.ok) return NONE;
    // An outdated card: say so and bring it up to date.
    if (stale) {
      await this.ports.announcer.announce({ kind: 'card', releaseId: rel.id });
      return answer(
        ephemeral(
          false,
          `${result.text}\n_That card was out of date; it now shows the current state._`,
          rel.id,
        ),
      );
    }
    return answer(ephemeral(false, result.text, rel.id));
  }
}
