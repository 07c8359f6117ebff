// Matrix's outbound client for the notify queue: each Outbound the domain
// announced, rendered as HTML with a plain body and sent to the app's rooms.
//
//   card     posted once in the app's releases room (m.notice), then edited in
//            place (m.replace) as the release moves; if someone redacted it,
//            a new card is posted and becomes the card (an edit of a redacted
//            event shows nowhere).
//   reply    in the card's thread (m.thread); a snippet as a code block, and
//            when it did not fit, the whole text as an m.file upload. A
//            binary attachment (a PNG chart) is an m.image upload, its text
//            the body clients without images show.
//   message  in its release's thread, or its alert's thread, or in the room it
//            names (a Matrix room id), or in the releases room of the app
//            whose Slack channel it names.
//   ephemeral in a direct room with the person (Matrix has no ephemerals),
//            marked m.direct in the bot's account data.
//   alert    in the app's alert room; repeats edit it with the count; the
//            memory chart (m.image) in its thread. What the alert is about
//            (silence key, pod for Show logs, release to roll back) is kept
//            by its event id for the reactions on it.
//
// Apps without `rooms:` in the config are not Matrix's: their messages are
// skipped here (the Slack delivery sends them). Where each card went is kept
// in Redis (<prefix>:matrix:card:<release>), and the reverse (card event →
// release) for the reactions. Every send has a transaction id named after the
// job's step, so a retried job never posts twice.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConnectionError, MatrixError } from 'matrix-js-sdk';
import type { FerryConfig } from '../../domain/config.ts';
import { personByActor, platformIdOf } from '../../domain/people.ts';
import type { AlertLogsTarget, Attachment, Outbound } from '../../domain/ports.ts';
import type { Release } from '../../domain/release.ts';
import { ownerOfWorkload } from '../../domain/workload.ts';
import type { Logger } from '../../logging.ts';
import { redactText } from '../../logs/redact.ts';
import { type ChatDelivery, type DeliveryFailure, type OnceStep, Undeliverable } from '../port.ts';
import type { MatrixChat, MessageContent } from './client.ts';
import { retryAfterMs } from './client.ts';
import { asMatrixCommands, renderAlert, renderCard, renderText, type WhoIs } from './render.ts';

type Once = OnceStep;

export interface MatrixDeliveryDeps {
  config: () => FerryConfig;
  releases: { get(id: string): Promise<Release | undefined> };
  store: Redis;
  prefix?: string;
  client: MatrixChat;
  log: Logger;
  /** The command word people type (default !release), shown on cards. */
  command?: string;
}

const WEEK = 7 * 86_400;

/** Sorts an error of a Matrix call: 429 waits, 5xx and network errors back off, other 4xx drop. */
export function classifyMatrix(err: unknown): DeliveryFailure {
  if (err instanceof Undeliverable) return { kind: 'permanent', detail: err.message };
  const wait = retryAfterMs(err);
  if (wait !== undefined) return { kind: 'ratelimited', retryAfterMs: wait };
  if (err instanceof MatrixError || (err as { httpStatus?: number }).httpStatus) {
    const status = (err as { httpStatus?: number }).httpStatus ?? 500;
    const code = (err as MatrixError).errcode ?? `HTTP ${status}`;
    return status >= 500 || status === 408
      ? { kind: 'transient', detail: code }
      : { kind: 'permanent', detail: `${code}: ${(err as Error).message}` };
  }
  if (err instanceof ConnectionError) return { kind: 'transient', detail: err.message };
  return { kind: 'transient', detail: (err as Error).message ?? String(err) };
}

/** How people named by their Ferry id show in Matrix: name, and Matrix id to mention. */
export function whoIsIn(config: FerryConfig): WhoIs {
  return (actorId) => {
    if (actorId === 'ferry') return { name: 'Ferry' };
    const p = personByActor(config, actorId);
    if (p) {
      const matrixId = platformIdOf(p.entry, 'matrix');
      return { name: p.name, ...(matrixId ? { matrixId } : {}) };
    }
    // Someone not in the people list: a Matrix id is still shown (and mentioned) as itself.
    return actorId.startsWith('@') ? { name: actorId, matrixId: actorId } : { name: actorId };
  };
}

const hashOf = (m: MessageContent) =>
  createHash('sha1')
    .update(JSON.stringify([m.body, m.html ?? '']))
    .digest('hex')
    .slice(0, 16);

export class MatrixDelivery implements ChatDelivery {
  private readonly d: MatrixDeliveryDeps;
  private readonly rooms = new Map<string, string>();

  constructor(deps: MatrixDeliveryDeps) {
    this.d = deps;
  }

  classify(err: unknown): DeliveryFailure {
    return classifyMatrix(err);
  }

  private key(...parts: string[]): string {
    return [this.d.prefix ?? 'ferry', 'matrix', ...parts].join(':');
  }

  private who(): WhoIs {
    return whoIsIn(this.d.config());
  }

  /** A room id for a configured room id or alias (aliases resolved once per process). */
  async room(idOrAlias: string): Promise<string> {
    const known = this.rooms.get(idOrAlias);
    if (known) return known;
    const id = await this.d.client.resolveRoom(idOrAlias);
    this.rooms.set(idOrAlias, id);
    return id;
  }

  /** Where a release's card is in Matrix, if it was posted there. */
  async cardOf(releaseId: string): Promise<{ room: string; event: string } | undefined> {
    const [room, event] = await this.d.store.hmget(this.key('card', releaseId), 'room', 'event');
    return room && event ? { room, event } : undefined;
  }

  /** The release whose card is `eventId` (a reaction's target). */
  releaseOfCard(eventId: string): Promise<string | null> {
    return this.d.store.get(this.key('card-event', eventId));
  }

  /** What the alert whose message is `eventId` is about (a reaction's target). */
  async alertOfEvent(eventId: string): Promise<AlertReference | undefined> {
    const stored = await this.d.store.get(this.key('alert-event', eventId));
    if (!stored) return undefined;
    // Before the reference was a record, only the silence key was kept.
    if (!stored.startsWith('{')) return { silenceKey: stored };
    return JSON.parse(stored) as AlertReference;
  }

  /** Where the alert with `key` was posted (its first post, kept for a day). */
  async alertAt(key: string): Promise<{ room: string; event: string } | undefined> {
    const [event, room] = await Promise.all([
      this.d.store.get(this.key('alert', key)),
      this.d.store.get(this.key('alert-room', key)),
    ]);
    return event && room ? { room, event } : undefined;
  }

  private async remember(releaseId: string, room: string, event: string): Promise<void> {
    await this.d.store
      .multi()
      .hset(this.key('card', releaseId), 'room', room, 'event', event)
      .expire(this.key('card', releaseId), 90 * 86_400)
      .set(this.key('card-event', event), releaseId, 'EX', 90 * 86_400)
      .exec();
  }

  async deliver(m: Outbound, once: Once): Promise<void> {
    switch (m.kind) {
      case 'card':
        await this.ensureCard(m.releaseId, true, once);
        return;
      case 'reply': {
        const card = await this.ensureCard(m.releaseId, false, once);
        if (!card) return;
        await this.post(
          card.room,
          card.event,
          m.text,
          m.snippet,
          m.file,
          `${m.releaseId}.txt`,
          once,
          'reply',
        );
        return;
      }
      case 'message': {
        let target: { room: string; thread?: string } | undefined;
        if (m.threadOf) {
          const card = await this.cardOf(m.threadOf);
          if (card) target = { room: card.room, thread: card.event };
        } else if (m.threadOfAlert) {
          // The alert's first post; gone (kept a day): the message goes to the room itself.
          const alert = await this.alertAt(m.threadOfAlert);
          if (alert) target = { room: alert.room, thread: alert.event };
        }
        target ??= await this.roomForChannel(m.channel);
        if (!target) return;
        await this.post(target.room, target.thread, m.text, m.snippet, m.file, 'ferry.txt', once, 'message');
        return;
      }
      case 'ephemeral': {
        const matrixId = this.matrixIdOf(m.user);
        if (!matrixId) return;
        const dm = await once('matrix:dm', () => this.directRoom(matrixId));
        const r = renderText(
          asMatrixCommands(redactText(m.text, this.d.config().redaction), this.d.command),
          this.who(),
        );
        await once('matrix:ephemeral', () =>
          this.d.client.sendMessage(dm, r.content, {
            txn: `eph:${m.user}:${hashOf(r.content)}:${Date.now()}`,
          }),
        );
        return;
      }
      case 'alert':
        await this.alert(m, once);
        return;
    }
  }

  /** The Matrix id of a person acting under `actorId` (or the id itself when it is one). */
  matrixIdOf(actorId: string): string | undefined {
    const p = personByActor(this.d.config(), actorId);
    if (p) return platformIdOf(p.entry, 'matrix');
    return actorId.startsWith('@') ? actorId : undefined;
  }

  /** The direct room Ferry talks to `matrixId` in, created (and the person invited) the first time. */
  async directRoom(matrixId: string): Promise<string> {
    const k = this.key('dm', matrixId);
    const known = await this.d.store.get(k);
    if (known) return known;
    const room = await this.d.client.createRoom({
      invite: [matrixId],
      isDirect: true,
      preset: 'trusted_private_chat',
      name: 'Ferry',
    });
    // Two workers racing: the first one's room is the room.
    const set = await this.d.store.set(k, room, 'NX');
    const chosen = set === 'OK' ? room : ((await this.d.store.get(k)) ?? room);
    // The invitee's client sees is_direct on the invite; the bot's side is its m.direct account data.
    // Not marked, the room still works: a failure here is logged, not the answer lost.
    await this.d.client
      .markDirect(matrixId, chosen)
      .catch((err: Error) => this.d.log.warn({ matrixId, err: err.message }, 'could not mark m.direct'));
    return chosen;
  }

  /** A message's room: a Matrix room id as it is; a Slack channel → the releases room of its app. */
  private async roomForChannel(channel: string): Promise<{ room: string } | undefined> {
    if (channel.startsWith('!')) return { room: channel };
    const config = this.d.config();
    for (const app of Object.values(config.apps)) {
      if (!app.rooms || !app.channels) continue;
      if (app.channels.releases === channel) return { room: await this.room(app.rooms.releases) };
      if (app.channels.alerts === channel) return { room: await this.room(app.rooms.alerts) };
    }
    return undefined;
  }

  private async post(
    room: string,
    thread: string | undefined,
    text: string,
    snippet: string | undefined,
    attachment: Attachment | undefined,
    fileName: string,
    once: Once,
    step: string,
  ): Promise<void> {
    // The last redaction before Matrix: texts and snippets may carry command output.
    const patterns = this.d.config().redaction;
    text = asMatrixCommands(redactText(text, patterns), this.d.command);
    snippet = snippet === undefined ? undefined : redactText(snippet, patterns);
    // A binary attachment (a chart) is an image beside the text; a text one is a file.
    const image = attachment?.bytes !== undefined ? attachment : undefined;
    const file =
      attachment && !image
        ? { name: attachment.name, text: redactText(attachment.text, patterns) }
        : undefined;
    const r = renderText(text, this.who(), snippet);
    await once(`matrix:${step}`, () =>
      this.d.client.sendMessage(room, r.content, {
        ...(thread ? { threadRoot: thread } : {}),
        txn: `${step}:${room}:${thread ?? ''}:${hashOf(r.content)}`,
      }),
    );
    const whole =
      file ?? (r.cut ? { name: fileName, text: snippet ? `${text}\n\n${snippet}` : text } : undefined);
    if (whole)
      await once(`matrix:${step}:file`, () =>
        this.d.client.sendFile(
          room,
          { name: safeFileName(whole.name), text: whole.text },
          {
            ...(thread ? { threadRoot: thread } : {}),
            txn: `${step}:file:${room}:${thread ?? ''}:${hashOf(r.content)}`,
          },
        ),
      );
    if (image)
      await this.postImage(
        room,
        thread,
        image,
        `${step}:image:${room}:${thread ?? ''}:${hashOf(r.content)}`,
        once,
        `matrix:${step}:image`,
      );
  }

  /** A PNG (base64 in the attachment) as an m.image, its redacted text the body. */
  private async postImage(
    room: string,
    thread: string | undefined,
    image: Attachment,
    txn: string,
    once: Once,
    step: string,
  ): Promise<void> {
    const description = redactText(image.text, this.d.config().redaction);
    await once(step, () =>
      this.d.client.sendImage(
        room,
        {
          name: safeFileName(image.name),
          bytes: Buffer.from(image.bytes ?? '', 'base64'),
          description,
          mimetype: mimetypeOf(image.name),
        },
        { ...(thread ? { threadRoot: thread } : {}), txn },
      ),
    );
  }

  /** Posts the card (first time) or edits it in place; returns where it is. */
  private async ensureCard(
    releaseId: string,
    edit: boolean,
    once: Once,
  ): Promise<{ room: string; event: string } | undefined> {
    const rel = await this.d.releases.get(releaseId);
    if (!rel) {
      this.d.log.warn({ releaseId }, 'card for an unknown release; dropped');
      return undefined;
    }
    const rooms = this.d.config().apps[rel.app]?.rooms;
    if (!rooms) return undefined; // not a Matrix app
    const known = await this.cardOf(releaseId);
    if (known) {
      if (edit) await this.editCard(rel, known);
      return known;
    }
    const room = await this.room(rooms.releases);
    const rendered = renderCard(rel, this.who(), this.d.command);
    const event = await once('matrix:card', () =>
      this.d.client.sendMessage(room, rendered, { txn: `card:${rel.id}` }),
    );
    await this.remember(rel.id, room, event);
    await this.d.store.set(this.key('card-hash', rel.id), hashOf(rendered), 'EX', WEEK);
    // The release may have moved while the card was posted: bring it up to date.
    const now = await this.d.releases.get(rel.id);
    if (now && now.rev !== rel.rev) await this.editCard(now, { room, event });
    return { room, event };
  }

  private async editCard(rel: Release, at: { room: string; event: string }): Promise<void> {
    const rendered = renderCard(rel, this.who(), this.d.command);
    const h = hashOf(rendered);
    const hk = this.key('card-hash', rel.id);
    if ((await this.d.store.get(hk)) === h) return;
    const edited = await this.d.client.edit(at.room, at.event, rendered, `edit:${rel.id}:${at.event}:${h}`);
    if (!edited) {
      // Someone redacted the card: post it anew, and that one is the card from now on (its thread too).
      const event = await this.d.client.sendMessage(at.room, rendered, {
        txn: `card:${rel.id}:after:${at.event}`,
      });
      await this.remember(rel.id, at.room, event);
      this.d.log.info({ releaseId: rel.id, old: at.event, event }, 'card was redacted; posted a new one');
    }
    await this.d.store.set(hk, h, 'EX', WEEK);
  }

  private async alert(a: Extract<Outbound, { kind: 'alert' }>, once: Once): Promise<void> {
    const config = this.d.config();
    // The app: the workload in the silence key (oom/<region>/<namespace>/<owner>/<container>), else
    // the app whose Slack alert channel this is.
    const [, region, namespace = '', owner] = a.silenceKey.split('/');
    const app =
      ownerOfWorkload(config, { ...(region ? { region } : {}), namespace, ...(owner ? { owner } : {}) })
        ?.app ??
      Object.keys(config.apps).find(
        (n) => a.channel && config.apps[n]?.channels?.alerts === a.channel && config.apps[n]?.rooms,
      );
    const rooms = app ? config.apps[app]?.rooms : undefined;
    // A route to a team's room (alerts.routes) names it; else the app's alert room.
    const target = a.room ?? rooms?.alerts;
    if (!target) return;
    const room = await this.room(target);
    const patterns = config.redaction;
    const r = renderAlert({
      ...a,
      fields: a.fields.map(([k, v]) => [k, redactText(v, patterns)] as [string, string]),
      ...(a.snippet ? { snippet: redactText(a.snippet, patterns) } : {}),
    });
    const ak = this.key('alert', a.key);
    const known = await this.d.store.get(ak);
    if (known) {
      await once('matrix:alert-update', async () => {
        const ok = await this.d.client.edit(room, known, r.content, `alert:${a.key}:${a.count}`);
        if (!ok) {
          const event = await this.d.client.sendMessage(room, r.content, {
            txn: `alert:${a.key}:${a.count}:new`,
          });
          await this.rememberAlert(a, room, event);
        } else {
          // The edited alert now offers what this repeat does (a release in flight may have started or ended).
          await this.d.store.set(
            this.key('alert-event', known),
            JSON.stringify(alertReference(a)),
            'KEEPTTL',
          );
        }
        return 'done';
      });
      return;
    }
    const event = await once('matrix:alert', () =>
      this.d.client.sendMessage(room, r.content, { txn: `alert:${a.key}:${a.count}` }),
    );
    await this.rememberAlert(a, room, event);
    if (r.cut && a.snippet) {
      const snippet = a.snippet;
      await once('matrix:alert:file', () =>
        this.d.client.sendFile(
          room,
          { name: `${safeFileName(a.key)}.log`, text: snippet },
          {
            threadRoot: event,
            txn: `alert:file:${a.key}:${a.count}`,
          },
        ),
      );
    }
    // The memory chart in the alert's thread, as Slack has it.
    if (a.chart)
      await this.postImage(
        room,
        event,
        a.chart,
        `alert:chart:${a.key}:${a.count}`,
        once,
        'matrix:alert:chart',
      );
    if (a.releaseId) {
      const card = await this.cardOf(a.releaseId);
      if (card)
        await once('matrix:alert:thread', () =>
          this.d.client.sendMessage(card.room, r.content, {
            threadRoot: card.event,
            txn: `alert:thread:${a.key}:${a.count}`,
          }),
        );
    }
  }

  /** The alert's post by its key (for repeats and threadOfAlert), and what it is about by its event (for reactions). */
  private async rememberAlert(
    a: Extract<Outbound, { kind: 'alert' }>,
    room: string,
    event: string,
  ): Promise<void> {
    const ref = alertReference(a);
    await this.d.store
      .multi()
      .set(this.key('alert', a.key), event, 'EX', 86_400)
      .set(this.key('alert-room', a.key), room, 'EX', 86_400)
      .set(this.key('alert-event', event), JSON.stringify(ref), 'EX', 86_400)
      .exec();
  }
}

/** What an alert message is about: what its reactions act on (Slack keeps the same in its buttons' values). */
export interface AlertReference {
  /** 🔕: silence it. */
  silenceKey: string;
  /** 📜: the killed container's pod, whose logs go into the alert's thread. */
  logs?: AlertLogsTarget;
  /** ↩️: the release in flight for the app and environment, to roll back. */
  releaseId?: string;
}

function alertReference(a: Extract<Outbound, { kind: 'alert' }>): AlertReference {
  return {
    silenceKey: a.silenceKey,
    ...(a.logs ? { logs: a.logs } : {}),
    ...(a.releaseId ? { releaseId: a.releaseId } : {}),
  };
}

/** The media type of an uploaded attachment, by its name (charts are PNG). */
function mimetypeOf(name: string): string {
  if (/\.png$/i.test(name)) return 'image/png';
  if (/\.svg$/i.test(name)) return 'image/svg+xml';
  if (/\.jpe?g$/i.test(name)) return 'image/jpeg';
  return 'application/octet-stream';
}

/** A file name that is neither markup nor a path. */
export function safeFileName(name: string): string {
  return name.replace(/[^\w.-]+/g, '_').slice(0, 120) || 'ferry.txt';
}
