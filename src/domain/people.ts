// A person's identities. In ferry.yaml a person is one Slack id or one id per
// chat platform; inside Ferry each person acts under exactly one id, so a
// release requested in Slack and approved in Matrix still knows it was the
// same person (no self-approval, each person counts once). That id is the
// Slack id when there is one — releases, audit entries and approvals stored
// before Matrix existed keep naming the same people — else the Matrix id.
import type { FerryConfig } from './config.ts';

export type Platform = 'slack' | 'matrix';
type PersonEntry = FerryConfig['people'][string];

/** The id a person acts under inside Ferry. */
export function actorIdOf(entry: PersonEntry): string {
  if (typeof entry === 'string') return entry;
  return (entry.slack ?? entry.matrix) as string;
}

/** The person's id on a platform, if they have one there. */
export function platformIdOf(entry: PersonEntry, platform: Platform): string | undefined {
  if (typeof entry === 'string') return platform === 'slack' ? entry : undefined;
  return entry[platform];
}

/** The person (name and acting id) behind a platform user id. */
export function personOnPlatform(
  config: FerryConfig,
  platform: Platform,
  platformId: string,
): { name: string; actorId: string } | undefined {
  for (const [name, entry] of Object.entries(config.people))
    if (platformIdOf(entry, platform) === platformId) return { name, actorId: actorIdOf(entry) };
  return undefined;
}

/** The person (name and entry) acting under `actorId`. */
export function personByActor(
  config: FerryConfig,
  actorId: string,
): { name: string; entry: PersonEntry } | undefined {
  for (const [name, entry] of Object.entries(config.people))
    if (actorIdOf(entry) === actorId) return { name, entry };
  return undefined;
}
