// Where an alert goes: by the app's owner team and the environment, as the
// `alerts.routes` of ferry.yaml say (the first route that matches decides).
// With no routes, every alert goes to the app's alerts channel, as before.
import type { FerryConfig } from './config.ts';
import { lookup } from './lookup.ts';

export interface AlertDestination {
  /** The Slack channel id (none for an app served only on Matrix). */
  channel?: string;
  /** The Matrix room, when the destination has one. */
  room?: string;
  /** What decided it: the app's own channel, or its owner team's. */
  via: 'app' | 'team';
  /** The owner team, when the alert went to it. */
  team?: string;
}

/** The owner team of an app: the first of its owners (groups) that has a `teams` entry. */
export function ownerTeamOf(config: FerryConfig, app: string): string | undefined {
  const a = lookup(config.apps, app);
  return a?.owners.find((o) => lookup(config.teams, o) !== undefined);
}

const matches = (patterns: string[], name: string | undefined) =>
  patterns.includes('*') || (name !== undefined && patterns.includes(name));

/**
 * The destination of an alert about `app` in `environment` (unknown: only routes for every
 * environment match). Undefined when Ferry does not know the app.
 */
export function alertDestination(
  config: FerryConfig,
  app: string,
  environment: string | undefined,
): AlertDestination | undefined {
  const a = lookup(config.apps, app);
  if (!a) return undefined;
  const own: AlertDestination = {
    ...(a.channels ? { channel: a.channels.alerts } : {}),
    ...(a.rooms?.alerts ? { room: a.rooms.alerts } : {}),
    via: 'app',
  };
  const route = config.alerts.routes.find(
    (r) => matches(r.environments, environment) && matches(r.apps, app),
  );
  if (!route || route.to === 'app') return own;
  const team = ownerTeamOf(config, app);
  const t = team ? lookup(config.teams, team) : undefined;
  // A team route for an app without a team that has a channel: its own channel rather than nowhere.
  if (!team || !t) return own;
  return {
    ...(t.alerts ? { channel: t.alerts } : {}),
    ...(t.alertsRoom ? { room: t.alertsRoom } : {}),
    via: 'team',
    team,
  };
}
