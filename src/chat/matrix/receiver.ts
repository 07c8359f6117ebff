// The Matrix receiver: reads the bot's /sync and turns what people do into
// Ferry's chat-neutral requests (port.ts), then shows the answer.
//
//   "!release …" in a room      → a command, same grammar as Slack's /release.
//                                  The answer goes into a thread on that
//                                  message, mentioning the person (Matrix has
//                                  no ephemeral messages); an answer for the
//                                  whole room is a plain reply.
//   ✅ / ❌ on a release card     → approve / reject (a reject asks why: the
//                                  person types `!release reject rN <reason>`).
//   📜 on a release card          → Show logs: the newest pod's output in the thread.
//   🔕 on an alert               → silence it.
//   📜 on an OOM alert           → Show logs: the killed container's pod's output
//                                  in the alert's thread.
//   ↩️ on an alert               → Roll back the release in flight it names
//                                  (the Slack button's request, so the same
//                                  check of who may roll back).
// A reaction is matched with or without the emoji variation selector (U+FE0F).
//
// Answers to reactions go to the person's direct room with Ferry. Who may do
// what is the domain's business (the request handler): a reaction from
// someone who may not approve is refused there, and nothing changes. The
// sender of an event is the one its homeserver authenticated; it is mapped to
// the person's acting id through `people` (src/domain/people.ts).
import type { FerryConfig } from '../../domain/config.ts';
import { personOnPlatform } from '../../domain/people.ts';
import type { Logger } from '../../logging.ts';
import { redactText } from '../../logs/redact.ts';
import type { Actor, ChatAnswer, ChatReply, ChatRequest, ChatRequestHandler } from '../port.ts';
import type { MatrixChat, MatrixEvent, SyncBatch } from './client.ts';
import type { MatrixDelivery } from './delivery.ts';
import { whoIsIn } from './delivery.ts';
import {
  APPROVE_KEYS,
  asMatrixCommands,
  fromFerryText,
  isReaction,
  LOGS_KEYS,
  REJECT_KEYS,
  ROLLBACK_KEYS,
  SILENCE_KEYS,
} from './render.ts';

export interface MatrixReceiverDeps {
  client: MatrixChat;
  delivery: MatrixDelivery;
  config: () => FerryConfig;
  handler: ChatRequestHandler;
  log: Logger;
  /** The command word (default "!release"). */
  command?: string;
}

type RoomEvent = MatrixEvent & { room_id: string };

/** The text of a message without the quoted reply fallback ("> …" lines) clients put first. */
export function commandText(body: string, command: string): string | undefined {
  const lines = body.split('\n');
  while (lines.length && lines[0]?.startsWith('>')) lines.shift();
  const text = lines.join('\n').trim();
  const lower = text.toLowerCase();
  const word = command.toLowerCase();
  if (lower !== word && !lower.startsWith(`${word} `) && !lower.startsWith(`${word}\n`)) return undefined;
  return text.slice(command.length).trim();
}

export class MatrixReceiver {
  private readonly d: MatrixReceiverDeps;
  private readonly command: string;

  constructor(deps: MatrixReceiverDeps) {
    this.d = deps;
    this.command = deps.command ?? '!release';
  }

  start(): void {
    this.d.client.startSync((batch) => this.onBatch(batch));
  }

  stop(): Promise<void> {
    return this.d.client.stopSync();
  }

  /** The acting id of a Matrix user: the person's, or the Matrix id itself for someone not in `people`. */
  actorOf(matrixId: string): string {
    return personOnPlatform(this.d.config(), 'matrix', matrixId)?.actorId ?? matrixId;
  }

  async onBatch(batch: SyncBatch): Promise<void> {
    for (const room of batch.invites) {
      try {
        await this.d.client.join(room);
      } catch (err) {
        this.d.log.warn({ room, err: (err as Error).message }, 'could not join a room Ferry was invited to');
      }
    }
    for (const e of batch.events) {
      if (e.sender === this.d.client.userId) continue;
      try {
        await this.onEvent(e);
      } catch (err) {
        this.d.log.error({ event: e.event_id, err: (err as Error).message }, 'Matrix event failed');
      }
    }
  }

  private async onEvent(e: RoomEvent): Promise<void> {
    if (e.type === 'm.room.message') return this.onMessage(e);
    if (e.type === 'm.reaction') return this.onReaction(e);
  }

  private async onMessage(e: RoomEvent): Promise<void> {
    const c = e.content as { msgtype?: string; body?: unknown; 'm.relates_to'?: Record<string, unknown> };
    if (c.msgtype !== 'm.text' || typeof c.body !== 'string') return;
    // An edit of a command is not a new command.
    if (c['m.relates_to']?.rel_type === 'm.replace') return;
    const text = commandText(c.body, this.command);
    if (text === undefined) return;
    // A command typed in a thread is answered in that thread (threads do not nest).
    const rel = c['m.relates_to'];
    const threadRoot =
      rel?.rel_type === 'm.thread' && typeof rel.event_id === 'string' ? rel.event_id : e.event_id;
    const actor: Actor = { userId: this.actorOf(e.sender), channel: e.room_id };
    const answer = await this.d.handler.handle({
      kind: 'command',
      text,
      actor,
      deliveryId: `matrix:${e.event_id}`,
    });
    await this.show(answer, actor, { room: e.room_id, threadRoot });
  }

  private async onReaction(e: RoomEvent): Promise<void> {
    const rel = (e.content as { 'm.relates_to'?: { rel_type?: string; event_id?: string; key?: string } })[
      'm.relates_to'
    ];
    if (rel?.rel_type !== 'm.annotation' || !rel.event_id || !rel.key) return;
    const actor: Actor = { userId: this.actorOf(e.sender), channel: e.room_id };
    const deliveryId = `matrix:${e.event_id}`;
    const key = rel.key;
    const releaseId = await this.d.delivery.releaseOfCard(rel.event_id);
    let request: ChatRequest | undefined;
    if (releaseId) {
      if (isReaction(key, APPROVE_KEYS))
        request = { kind: 'release-action', action: 'approve', releaseId, actor, deliveryId };
      else if (isReaction(key, REJECT_KEYS))
        request = { kind: 'release-action', action: 'reject', releaseId, actor, deliveryId };
      else if (isReaction(key, LOGS_KEYS))
        request = { kind: 'release-action', action: 'logs', releaseId, actor, deliveryId };
    } else {
      // An alert: its reactions are its Slack buttons, acting on what the alert was posted about.
      const alert = await this.d.delivery.alertOfEvent(rel.event_id);
      if (!alert) return;
      if (isReaction(key, SILENCE_KEYS))
        request = { kind: 'silence', key: alert.silenceKey, actor, deliveryId };
      else if (isReaction(key, LOGS_KEYS) && alert.logs)
        request = { kind: 'alert-logs', target: alert.logs, actor, deliveryId };
      else if (isReaction(key, ROLLBACK_KEYS) && alert.releaseId)
        // The Roll back button's path: the same request, so the same check of who may roll back.
        request = {
          kind: 'release-action',
          action: 'rollback',
          releaseId: alert.releaseId,
          actor,
          deliveryId,
        };
    }
    if (!request) return;
    const answer = await this.d.handler.handle(request);
    // A reaction on a card that did what it asked needs no words: the card shows it. (An alert's
    // ↩️ is answered: the card it changed is in another room.)
    if (answer.kind === 'reply' && answer.reply.ok && request.kind === 'release-action' && releaseId) return;
    await this.show(answer, actor, { dmOf: e.sender });
  }

  /** Shows an answer: in a thread of the room, or in the person's direct room. */
  private async show(
    answer: ChatAnswer,
    actor: Actor,
    where: { room: string; threadRoot: string } | { dmOf: string },
  ): Promise<void> {
    let r: ChatReply;
    if (answer.kind === 'none') return;
    if (answer.kind === 'ask-reason')
      r = {
        ok: true,
        visibility: 'ephemeral',
        text: `Say why you reject ${answer.release.id}: \`${this.command} reject ${answer.release.id} <reason>\`.`,
      };
    else r = answer.reply;
    const text = asMatrixCommands(redactText(r.text, this.d.config().redaction), this.command);
    const who = whoIsIn(this.d.config());
    if ('dmOf' in where) {
      const room = await this.d.delivery.directRoom(where.dmOf);
      await this.d.client.sendMessage(room, {
        ...fromFerryText(r.ok ? text : `⚠️ ${text}`, who),
        msgtype: 'm.notice',
      });
      return;
    }
    if (r.visibility === 'channel') {
      await this.d.client.sendMessage(where.room, { ...fromFerryText(text, who), msgtype: 'm.notice' });
      return;
    }
    // For the person who asked: in the thread, addressed to them (their client notifies them).
    const m = fromFerryText(`<@${actor.userId}> ${r.ok ? '' : '⚠️ '}${text}`, who);
    await this.d.client.sendMessage(
      where.room,
      { ...m, msgtype: 'm.notice' },
      { threadRoot: where.threadRoot },
    );
  }
}
