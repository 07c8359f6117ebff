// The Slack adapter: a @slack/bolt App that serves `/release` and the
// buttons and modals of Ferry's messages, over HTTP (POST /slack/events) or
// Socket Mode. Slack types stay in this folder: the commands, the domain and
// the jobs see only text, user ids and release ids.
//
// Every request is acked first and worked on after (Slack gives 3 s); the
// answer goes to the person alone (response_url / chat.postEphemeral).
// Slack re-delivers requests it thinks were lost and people double-click, so
// each delivery is deduplicated on its identity (trigger_id, action_ts, the
// view id, and user+action+release+card revision for double clicks) with a
// 10-minute Redis key — never by dropping retries blindly, since the first
// delivery may never have arrived.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AllMiddlewareArgs,
  App,
  type BlockAction,
  type ButtonAction,
  LogLevel,
  type RespondFn,
  type SlackActionMiddlewareArgs,
  type SlackCommandMiddlewareArgs,
} from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import { handleCommand, handleText } from '../../../commands/handle.ts';
import type { CommandServices } from '../../../commands/handler.ts';
import { parseCommand } from '../../../commands/index.ts';
import { durationMs } from '../../domain/duration.ts';
import { may, mayApprove } from '../../domain/policy.ts';
import { ownerOfWorkload } from '../../domain/workload.ts';
import { type RedactionPattern, redactText } from '../../logs/redact.ts';
import { isStoreUnreachable, STORE_UNREACHABLE } from '../../queue/connection.ts';
import type { Runtime } from '../../runtime.ts';
import { Silences } from '../../watch/silence.ts';
import { type Notifier, startNotifier } from '../notifier.ts';
import { type ChatClient, SlackDelivery } from './delivery.ts';
import { VerifyingReceiver } from './receiver.ts';
import { redactingClient } from './redacting-client.ts';
import { type ActionId, parseButtonValue, renderEphemeral } from './render.ts';
import { REJECT_CALLBACK, REJECT_INPUT, rejectModal } from './views.ts';

export interface BotOptions {
  runtime: Runtime;
  /** SLACK_BOT_TOKEN */
  token: string;
  /** SLACK_SIGNING_SECRET (HTTP mode). */
  signingSecret: string;
  /** SLACK_APP_TOKEN: Socket Mode when set and socketMode is not false. */
  appToken?: string;
  socketMode?: boolean;
  /** SLACK_API_URL: another Web API base (the emulator). */
  apiUrl?: string;
  /** HTTP port (0 picks a free one). Default 3000. */
  port?: number;
  /**
   * Listen with SO_REUSEPORT: several bot processes of one network namespace (pods on the
   * host network of one node) share the port and the kernel spreads the connections.
   */
  reusePort?: boolean;
  /** Slash command name (default /release). */
  command?: string;
  /** Run the notify queue consumer in this process (default true). */
  notifier?: boolean;
  /** Optional command services (rollback, logs, sync) on top of the lifecycle. */
  services?: Pick<CommandServices, 'rollbacks' | 'logs' | 'syncs' | 'adoptions'>;
  logLevel?: LogLevel;
  /** Commands worked on at once after their ack (default 16). */
  workConcurrency?: number;
}

export interface RunningBot {
  app: App;
  /** HTTP mode: the Request URL for slash commands and interactivity. */
  url?: string;
  port?: number;
  notifier?: Notifier;
  stop(): Promise<void>;
}

/** Runs at most `n` tasks at once; the rest wait in line (FIFO). */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** How long a delivery's identity is remembered (Slack retries for ~5 min). */
const DEDUPE_TTL = 600;

type ButtonArgs = SlackActionMiddlewareArgs<BlockAction<ButtonAction>> & AllMiddlewareArgs;

export function createBotApp(opts: BotOptions): App {
  const rt = opts.runtime;
  const socketMode = opts.socketMode ?? Boolean(opts.appToken);
  const clientOptions = {
    ...(opts.apiUrl ? { slackApiUrl: opts.apiUrl } : {}),
    // Interactive calls (ephemerals, views.open) retry briefly; the notify queue does its own.
    retryConfig: { retries: 2, factor: 1.5, minTimeout: 200, maxTimeout: 1000 },
  };
  const app = socketMode
    ? new App({
        token: opts.token,
        appToken: opts.appToken,
        socketMode: true,
        logLevel: opts.logLevel ?? LogLevel.WARN,
        clientOptions,
      })
    : new App({
        token: opts.token,
        logLevel: opts.logLevel ?? LogLevel.WARN,
        clientOptions,
        // Ferry's receiver verifies every request (signature, and a timestamp within 5 minutes either
        // way) before Bolt sees it; see receiver.ts.
        receiver: new VerifyingReceiver({
          signingSecret: opts.signingSecret,
          logLevel: opts.logLevel ?? LogLevel.WARN,
          processBeforeResponse: false,
          onRefused: (reason, path) =>
            rt.log.child({ part: 'slack' }).warn({ reason, path }, 'request refused'),
          customRoutes: [
            {
              path: '/healthz',
              method: ['GET'],
              handler: (_req, res) => {
                res.writeHead(200, { 'content-type': 'text/plain' });
                res.end('ok');
              },
            },
          ],
        }),
      });

  const services: CommandServices = {
    config: rt.config,
    lifecycle: rt.lifecycle,
    releases: rt.releases,
    versions: rt.versions,
    announcer: rt.announcer,
    ...opts.services,
  };
  const log = rt.log.child({ part: 'slack' });
  const once = (key: string) => rt.releases.once(`slack:${key}`, DEDUPE_TTL);
  const afterAck = limiter(opts.workConcurrency ?? 16);

  // ---------------------------------------------------------------- /release
  const onCommand = async ({ ack, command, respond, client, context }: CommandArgs) => {
    const text = command.text.trim();
    // Parsing is pure and fast: a wrong command is answered in the ack itself, and nothing is queued.
    const parsed = parseCommand(text, { config: rt.config() });
    if (!parsed.ok) {
      const r = renderEphemeral(parsed.error.message, false);
      await ack({ response_type: 'ephemeral', text: r.text, blocks: r.blocks });
      return;
    }
    // Answers that need no state (help, plan) are computed from the config alone: they are the ack.
    if (parsed.command.kind === 'help' || parsed.command.kind === 'plan') {
      const reply = await handleCommand(
        parsed.command,
        { userId: command.user_id, channel: command.channel_id },
        services,
      );
      const r = renderEphemeral(reply.text, reply.ok);
      await ack({ response_type: 'ephemeral', text: r.text, blocks: r.blocks });
      return;
    }
    await ack();
    // The work after the ack runs with bounded concurrency, so a burst of commands cannot starve the
    // acks of the requests behind it (Slack's 3 s); answers go to response_url, valid for 30 minutes.
    await afterAck(() => work(command, text, respond, client, context.retryNum));
  };
  app.command(opts.command ?? '/release', answeredEvenOnFailure(log, onCommand));

  async function work(
    command: { trigger_id: string; user_id: string; channel_id: string },
    text: string,
    respond: RespondFn,
    client: WebClient,
    retryNum: number | undefined,
  ): Promise<void> {
    try {
      // The redelivery check is the first Redis call: inside the error handling, so an unreachable
      // store is answered too.
      if (!(await once(`cmd:${command.trigger_id}`))) {
        log.info({ trigger: command.trigger_id, retry: retryNum }, 'repeated slash command ignored');
        return;
      }
      const reply = await handleText(
        text,
        { userId: command.user_id, channel: command.channel_id },
        services,
      );
      await answer(
        respond,
        client,
        command.channel_id,
        command.user_id,
        reply.text,
        reply.ok,
        reply.visibility,
        rt.config().redaction,
      );
    } catch (err) {
      log.error({ err: (err as Error).message, text }, 'command failed');
      await answer(
        respond,
        client,
        command.channel_id,
        command.user_id,
        isStoreUnreachable(err) ? STORE_UNREACHABLE : COMMAND_FAILED,
        false,
        'ephemeral',
        rt.config().redaction,
      );
    }
  }

  // ---------------------------------------------------------------- card buttons
  const releaseActions: ActionId[] = ['approve', 'reject', 'pause', 'resume', 'abort', 'promote', 'rollback'];
  for (const actionId of releaseActions) {
    app.action<BlockAction<ButtonAction>>(actionId, async (args) => {
      await args.ack();
      try {
        await onButton(actionId, args);
      } catch (err) {
        log.error({ err: (err as Error).message, actionId }, 'button failed');
        await tell(args, isStoreUnreachable(err) ? STORE_UNREACHABLE : ACTION_FAILED);
      }
    });
  }

  async function tell(args: ButtonArgs, text: string, ok = false): Promise<void> {
    const channel = args.body.channel?.id ?? args.body.container?.channel_id;
    // Error texts may carry command output: through the one redactor on the way out.
    const r = renderEphemeral(redactText(text, rt.config().redaction), ok);
    if (channel) {
      try {
        await args.client.chat.postEphemeral({
          channel,
          user: args.body.user.id,
          text: r.text,
          blocks: r.blocks,
        });
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'postEphemeral failed; using response_url');
      }
    }
    await args.respond({
      response_type: 'ephemeral',
      replace_original: false,
      text: r.text,
      blocks: r.blocks,
    });
  }

  async function onButton(actionId: ActionId, args: ButtonArgs): Promise<void> {
    const { body, client } = args;
    const action = body.actions[0];
    const v = parseButtonValue(action?.value);
    if (!action || !v) return;
    const user = body.user.id;
    // The same delivery again (Slack retry), or the same click twice on the same card.
    if (!(await once(`act:${action.action_ts}`))) return;
    if (!(await once(`click:${user}:${actionId}:${v.id}:${v.rev ?? ''}`))) return;
    const rel = await rt.releases.get(v.id);
    if (!rel) {
      await tell(args, `There is no release ${v.id} any more.`);
      return;
    }
    const stale = v.rev !== undefined && v.rev < rel.rev;
    const config = rt.config();
    let result: { ok: boolean; text: string };
    switch (actionId) {
      case 'approve':
        result = await rt.lifecycle.approve(v.id, user);
        break;
      case 'reject': {
        const allowed = mayApprove(config, rel, user);
        if (!allowed.ok && rel.requestedBy !== user) {
          result = { ok: false, text: allowed.reason.replace('Approvals for', 'Rejections of') };
          break;
        }
        if (rel.state !== 'awaiting-approval' && rel.state !== 'queued') {
          result = {
            ok: false,
            text: `${rel.id} is ${rel.state}; only a release waiting for approval can be rejected.`,
          };
          break;
        }
        const channel = body.channel?.id ?? body.container?.channel_id ?? '';
        await client.views.open({ trigger_id: body.trigger_id, view: rejectModal(rel, channel) });
        return;
      }
      case 'pause':
      case 'resume':
      case 'abort':
      case 'promote':
        result = await rt.lifecycle.steer(actionId, v.id, user);
        break;
      case 'rollback': {
        const allowed = may(config, user, 'rollback', rel.app, rel.environment);
        if (!allowed.ok) result = { ok: false, text: allowed.reason };
        else if (rel.state !== 'failed')
          result = {
            ok: false,
            text: `${rel.id} is ${rel.state}; only a failed release is rolled back from its card.`,
          };
        else {
          await rt.lifecycle.rollback(v.id, `rolled back by <@${user}>`);
          result = { ok: true, text: `Rolling ${rel.id} back.` };
        }
        break;
      }
      default:
        return;
    }
    if (!result.ok) {
      // An outdated card: say so and bring it up to date.
      if (stale) {
        await rt.announcer.announce({ kind: 'card', releaseId: rel.id });
        await tell(args, `${result.text}\n_That card was out of date; it now shows the current state._`);
      } else await tell(args, result.text);
    }
  }

  // ---------------------------------------------------------------- the reject modal
  app.view(REJECT_CALLBACK, async ({ ack, view, body, client }) => {
    const reason = (view.state.values[REJECT_INPUT.block]?.[REJECT_INPUT.action]?.value ?? '').trim();
    if (reason.length < 3) {
      await ack({ response_action: 'errors', errors: { [REJECT_INPUT.block]: 'Say why, in a few words.' } });
      return;
    }
    await ack();
    let meta: { id?: string; channel?: string };
    try {
      meta = JSON.parse(view.private_metadata) as { id?: string; channel?: string };
    } catch {
      return;
    }
    if (!meta.id) return;
    let r: { ok: boolean; text: string };
    try {
      if (!(await once(`view:${view.id}`))) return;
      r = await rt.lifecycle.reject(meta.id, body.user.id, reason);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reject failed');
      r = {
        ok: false,
        text: isStoreUnreachable(err)
          ? STORE_UNREACHABLE
          : `Ferry could not do that: ${(err as Error).message}.`,
      };
    }
    if (!r.ok && meta.channel) {
      const e = renderEphemeral(redactText(r.text, rt.config().redaction), false);
      await client.chat
        .postEphemeral({ channel: meta.channel, user: body.user.id, text: e.text, blocks: e.blocks })
        .catch((err: Error) => log.warn({ err: err.message }, 'postEphemeral failed'));
    }
  });

  // ---------------------------------------------------------------- alerts
  app.action<BlockAction<ButtonAction>>('silence', async (args) => {
    await args.ack();
    try {
      await onSilence(args);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'silence failed');
      await tell(
        args,
        isStoreUnreachable(err) ? STORE_UNREACHABLE : `Ferry could not do that: ${(err as Error).message}.`,
      );
    }
  });

  async function onSilence(args: ButtonArgs): Promise<void> {
    const key = args.body.actions[0]?.value;
    if (!key || !(await once(`act:${args.body.actions[0]?.action_ts}`))) return;
    const config = rt.config();
    const user = args.body.user.id;
    // Silence keys name the workload (oom/<region>/<namespace>/<owner>/<container>): the app is
    // the one deployed in that namespace; the person must be allowed to silence its alerts.
    const [, region, namespace = '', owner] = key.split('/');
    const found = ownerOfWorkload(config, {
      ...(region ? { region } : {}),
      namespace,
      ...(owner ? { owner } : {}),
    });
    const owning = found ? [found.app] : [];
    const apps = owning.length ? owning : Object.keys(config.apps);
    const envs = Object.keys(config.environments);
    const allowed = apps.some((a) => envs.some((e) => may(config, user, 'silence', a, e).ok));
    if (!allowed) {
      await tell(args, `You may not silence alerts of ${apps.join(', ')}.`);
      return;
    }
    await new Silences(rt.store, rt.prefix ?? 'ferry').silence(
      key,
      durationMs(config.alerts.silenceFor),
      user,
    );
    await tell(args, `Silenced for ${config.alerts.silenceFor}: \`${key}\`.`, true);
  }

  app.error(async (err) => {
    log.error({ err: err.message, code: (err as { code?: string }).code }, 'bolt error');
  });

  return app;
}

/** What a person reads when their command failed inside Ferry: no internals, no stack. */
export const COMMAND_FAILED =
  'Something went wrong inside Ferry; nothing was started. Try again in a minute.';

/** A click that failed inside Ferry: it may have been recorded before the failure, so the card is the truth. */
export const ACTION_FAILED =
  'Something went wrong inside Ferry. The card shows what was recorded; try again in a minute.';

type CommandArgs = SlackCommandMiddlewareArgs & AllMiddlewareArgs;

/**
 * Every slash command is acked and answered, even when something inside throws: Slack shows a
 * timeout for a command that is never acked, and the person would not know whether anything began.
 */
export function answeredEvenOnFailure(
  log: { error(obj: object, msg: string): void },
  listener: (args: CommandArgs) => Promise<void>,
): (args: CommandArgs) => Promise<void> {
  return async (args) => {
    let acked = false;
    const ack: CommandArgs['ack'] = async (response) => {
      acked = true;
      await args.ack(response);
    };
    try {
      await listener({ ...args, ack });
    } catch (err) {
      log.error({ err: (err as Error).message, text: args.command.text }, 'command failed');
      const r = renderEphemeral(COMMAND_FAILED, false);
      const reply = { response_type: 'ephemeral' as const, text: r.text, blocks: r.blocks };
      if (!acked) await args.ack(reply);
      else await args.respond(reply).catch(() => undefined);
    }
  };
}

/** The answer to a command: via response_url, or chat.postEphemeral when that fails (5 uses, 30 min). */
async function answer(
  respond: RespondFn,
  client: WebClient,
  channel: string,
  user: string,
  text: string,
  ok: boolean,
  visibility: 'ephemeral' | 'channel' = 'ephemeral',
  patterns: readonly RedactionPattern[] = [],
): Promise<void> {
  // Replies may carry stored failure reasons or command output: through the one redactor on the way out.
  const r = renderEphemeral(redactText(text, patterns), ok);
  try {
    await respond({
      response_type: visibility === 'channel' ? 'in_channel' : 'ephemeral',
      text: r.text,
      blocks: r.blocks,
    });
  } catch {
    await client.chat.postEphemeral({ channel, user, text: r.text, blocks: r.blocks });
  }
}

/** A WebClient for the notify queue: no retries and no waiting on 429 — the queue decides. */
export function notifierClient(token: string, apiUrl?: string): WebClient {
  return new WebClient(token, {
    ...(apiUrl ? { slackApiUrl: apiUrl } : {}),
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
    logLevel: LogLevel.ERROR,
    timeout: 10_000,
  });
}

/** Starts the bot in this process: Bolt (HTTP or Socket Mode) and the notify queue consumer. */
export async function startBot(opts: BotOptions): Promise<RunningBot> {
  const rt = opts.runtime;
  const app = createBotApp(opts);
  const socketMode = opts.socketMode ?? Boolean(opts.appToken);
  let url: string | undefined;
  let port: number | undefined;
  if (socketMode) await app.start();
  else {
    const server = (await app.start(
      opts.reusePort ? { port: opts.port ?? 3000, reusePort: true } : (opts.port ?? 3000),
    )) as Server;
    port = (server.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}/slack/events`;
  }
  const notifier =
    opts.notifier === false
      ? undefined
      : startNotifier({
          store: rt.store,
          connection: rt.queue,
          queue: rt.announcer.queue,
          ...(rt.prefix ? { prefix: rt.prefix } : {}),
          delivery: new SlackDelivery({
            config: rt.config,
            // The notifier is a background consumer: it waits out a Redis restart (the command path fails fast).
            releases: rt.backgroundReleases,
            store: rt.store,
            ...(rt.prefix ? { prefix: rt.prefix } : {}),
            client: redactingClient(
              notifierClient(opts.token, opts.apiUrl) as unknown as ChatClient,
              () => rt.config().redaction,
            ),
            log: rt.log.child({ part: 'notifier' }),
          }),
          log: rt.log.child({ part: 'notifier' }),
        });
  return {
    app,
    ...(url ? { url } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(notifier ? { notifier } : {}),
    async stop() {
      await notifier?.close();
      await app.stop();
    },
  };
}
