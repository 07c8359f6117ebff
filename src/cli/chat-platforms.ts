// Which chat platforms a Ferry process serves (`--chat slack`, `--chat matrix`,
// `--chat slack,matrix`) and how their deliveries share the one notify queue.
// The entry points are the only place that imports more than one adapter.
import { MirroredDelivery } from '../chat/mirror.ts';
import type { ChatDelivery } from '../chat/port.ts';
import { notifierClient } from '../chat/slack/app.ts';
import { type ChatClient, SlackDelivery } from '../chat/slack/delivery.ts';
import { redactingClient } from '../chat/slack/redacting-client.ts';
import type { ChatPlatformName } from '../domain/config.ts';
import type { Runtime } from '../runtime.ts';

export type ChatPlatform = ChatPlatformName;

/** `--chat slack,matrix` → ['slack', 'matrix']; the default is Slack alone. */
export function parseChatPlatforms(value: string | undefined): ChatPlatform[] {
  if (!value) return ['slack'];
  const names = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const n of names)
    if (n !== 'slack' && n !== 'matrix') throw new Error(`unknown chat platform "${n}": slack or matrix`);
  return [...new Set(names)] as ChatPlatform[];
}

/** Why a Ferry on `platforms` cannot serve the apps named: none has a place to post there. */
export function noPlaceMessage(apps: string[], platforms: ChatPlatform[]): string {
  const needs = platforms.map((p) => (p === 'slack' ? 'channels: (Slack)' : 'rooms: (Matrix)')).join(' or ');
  return `${apps.join(', ')} ${apps.length === 1 ? 'has' : 'have'} no place to post on ${platforms.join(' and ')}: give ${apps.length === 1 ? 'it' : 'each'} ${needs} in the config, or start with --chat naming the platform ${apps.length === 1 ? 'it is' : 'they are'} on.`;
}

/** Slack's delivery for the notify queue (what startBot builds for itself when it runs the queue). */
export function slackDelivery(rt: Runtime, token: string, apiUrl?: string): SlackDelivery {
  return new SlackDelivery({
    config: rt.config,
    releases: rt.backgroundReleases,
    store: rt.store,
    ...(rt.prefix ? { prefix: rt.prefix } : {}),
    client: redactingClient(
      notifierClient(token, apiUrl) as unknown as ChatClient,
      () => rt.config().redaction,
    ),
    log: rt.log.child({ part: 'notifier' }),
  });
}

/** Matrix room ids start with "!": messages for one Matrix conversation stay on Matrix. */
const isMatrixRoom = (channel: string) => channel.startsWith('!');

/** Slack and Matrix on one notify queue: every release's card and thread on both. */
export function slackAndMatrix(rt: Runtime, slack: ChatDelivery, matrix: ChatDelivery): ChatDelivery {
  return new MirroredDelivery(
    [
      { name: 'slack', delivery: slack, owns: (c) => !isMatrixRoom(c) },
      { name: 'matrix', delivery: matrix, owns: isMatrixRoom },
    ],
    rt.log.child({ part: 'notifier' }),
  );
}
