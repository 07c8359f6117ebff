// The Matrix side of Ferry in one process: logs the bot in (keeping its
// session in Redis, so a restart is the same device and Synapse's
// transaction-id deduplication still holds), makes sure it is in every room
// the config names, reads /sync through the receiver and — unless another
// process does — consumes the notify queue with the Matrix delivery (or with a
// mirror of several platforms, src/chat/mirror.ts).

import { MatrixError, Method } from 'matrix-js-sdk';
import type { FerryConfig } from '../../domain/config.ts';
import { platformIdOf } from '../../domain/people.ts';
import type { Logger } from '../../logging.ts';
import { isStoreUnreachable, STORE_UNREACHABLE } from '../../queue/connection.ts';
import type { Runtime } from '../../runtime.ts';
import { type Notifier, startRuntimeNotifier } from '../notifier.ts';
import { type ChatDelivery, type ChatRequestHandler, reply } from '../port.ts';
import { loginWithPassword, MatrixChat } from './client.ts';
import { MatrixDelivery } from './delivery.ts';
import { MatrixReceiver } from './receiver.ts';

export interface MatrixBotOptions {
  runtime: Runtime;
  /** MATRIX_HOMESERVER_URL */
  homeserverUrl: string;
  /** MATRIX_USER: the bot's user id (@ferry:example.org). */
  userId: string;
  /** MATRIX_ACCESS_TOKEN, or MATRIX_PASSWORD to log in. */
  accessToken?: string;
  password?: string;
  /** The command word (default !release). */
  command?: string;
  /** Consume the notify queue here (default true) — with this delivery instead of Matrix's alone. */
  notifier?: boolean;
  delivery?: (matrix: MatrixDelivery) => ChatDelivery;
  /** Create the config's rooms (aliases on the bot's own server) when missing, and invite the people: the local flow. */
  createRooms?: boolean;
  /** Answers requests (commands/requests.ts, wired by src/cli/bot.ts). */
  handler: ChatRequestHandler;
  /** Told each time a call waits out a 429. */
  onRateLimited?: (waitMs: number, path: string) => void;
  log?: Logger;
}

export interface RunningMatrixBot {
  client: MatrixChat;
  delivery: MatrixDelivery;
  receiver: MatrixReceiver;
  notifier?: Notifier;
  /** Room ids of the configured rooms, by the id or alias the config gives. */
  rooms: Map<string, string>;
  stop(): Promise<void>;
}

/** The bot's session: reused across restarts (same device), renewed when the token no longer works. */
async function session(
  rt: Runtime,
  opts: MatrixBotOptions,
): Promise<{ accessToken: string; deviceId?: string }> {
  if (opts.accessToken) return { accessToken: opts.accessToken };
  if (!opts.password) throw new Error('the Matrix bot needs MATRIX_ACCESS_TOKEN or MATRIX_PASSWORD');
  const key = `${rt.prefix ?? 'ferry'}:matrix:session:${opts.userId}`;
  const stored = await rt.store.hgetall(key);
  if (stored.accessToken) {
    const probe = new MatrixChat({
      baseUrl: opts.homeserverUrl,
      userId: opts.userId,
      accessToken: stored.accessToken,
    });
    try {
      await probe.request(Method.Get, '/account/whoami');
      return { accessToken: stored.accessToken, ...(stored.deviceId ? { deviceId: stored.deviceId } : {}) };
    } catch (err) {
      if (!(err instanceof MatrixError) || err.httpStatus !== 401) throw err;
    } finally {
      await probe.close();
    }
  }
  const localpart = opts.userId.replace(/^@/, '').split(':')[0] as string;
  const s = await loginWithPassword(opts.homeserverUrl, localpart, opts.password, stored.deviceId);
  await rt.store.hset(key, 'accessToken', s.accessToken, 'deviceId', s.deviceId);
  return { accessToken: s.accessToken, deviceId: s.deviceId };
}

/** Every room the config names for Matrix. */
export function configuredRooms(config: FerryConfig): string[] {
  const rooms = new Set<string>();
  for (const app of Object.values(config.apps))
    if (app.rooms) {
      rooms.add(app.rooms.releases);
      rooms.add(app.rooms.alerts);
    }
  return [...rooms];
}

/** People with a Matrix id. */
export function matrixPeople(config: FerryConfig): string[] {
  return Object.values(config.people)
    .map((e) => platformIdOf(e, 'matrix'))
    .filter((id): id is string => Boolean(id));
}

async function ensureRoom(
  client: MatrixChat,
  idOrAlias: string,
  create: boolean,
  invite: string[],
  log: Logger,
): Promise<string> {
  try {
    return await client.join(idOrAlias);
  } catch (err) {
    const server = client.userId.split(':').slice(1).join(':');
    const ours = idOrAlias.startsWith('#') && idOrAlias.endsWith(`:${server}`);
    if (!create || !ours || !(err instanceof MatrixError) || err.httpStatus !== 404) throw err;
    const localpart = idOrAlias.slice(1, -(server.length + 1));
    // A room anyone on the server may join and read (the local flow's #releases and alert rooms).
    const room = await client.createRoom({ alias: localpart, name: localpart, preset: 'public_chat' });
    // One by one: a person on a server this one cannot reach does not stop the others' invites.
    for (const person of invite)
      await client
        .invite(room, person)
        .catch((e: Error) => log.warn({ person, err: e.message }, 'invite failed'));
    return room;
  }
}

/** What a person reads when their request failed inside Ferry: no internals. */
export const REQUEST_FAILED =
  'Something went wrong inside Ferry; nothing was started. Try again in a minute.';

/** A failed request is answered (the store unreachable, or a failure inside Ferry) rather than dropped. */
function answeringFailures(handler: ChatRequestHandler, log: Logger): ChatRequestHandler {
  return {
    async handle(req) {
      try {
        return await handler.handle(req);
      } catch (err) {
        log.error({ err: (err as Error).message, kind: req.kind }, 'chat request failed');
        return {
          kind: 'reply',
          reply: reply(false, isStoreUnreachable(err) ? STORE_UNREACHABLE : REQUEST_FAILED),
        };
      }
    },
  };
}

export async function startMatrixBot(opts: MatrixBotOptions): Promise<RunningMatrixBot> {
  const rt = opts.runtime;
  const log = opts.log ?? rt.log.child({ part: 'matrix' });
  const s = await session(rt, opts);
  const client = new MatrixChat({
    baseUrl: opts.homeserverUrl,
    userId: opts.userId,
    accessToken: s.accessToken,
    store: rt.store,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    log,
    ...(opts.onRateLimited ? { onRateLimited: opts.onRateLimited } : {}),
  });
  const config = rt.config();
  const rooms = new Map<string, string>();
  const people = matrixPeople(config).filter((p) => p !== opts.userId);
  for (const r of configuredRooms(config)) {
    try {
      rooms.set(r, await ensureRoom(client, r, opts.createRooms ?? false, people, log));
    } catch (err) {
      // A room the bot is not invited to yet: it joins when invited (the receiver accepts invites).
      log.warn({ room: r, err: (err as Error).message }, 'could not join a configured Matrix room');
    }
  }
  const delivery = new MatrixDelivery({
    config: rt.config,
    releases: rt.backgroundReleases,
    store: rt.store,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    client,
    log,
    ...(opts.command ? { command: opts.command } : {}),
  });
  const handler = answeringFailures(opts.handler, log);
  const receiver = new MatrixReceiver({
    client,
    delivery,
    config: rt.config,
    handler,
    log,
    ...(opts.command ? { command: opts.command } : {}),
  });
  receiver.start();
  const notifier =
    opts.notifier === false
      ? undefined
      : startRuntimeNotifier(rt, opts.delivery ? opts.delivery(delivery) : delivery);
  return {
    client,
    delivery,
    receiver,
    rooms,
    ...(notifier ? { notifier } : {}),
    async stop() {
      await notifier?.close();
      await receiver.stop();
      await client.close();
    },
  };
}
