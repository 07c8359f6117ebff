// One Ferry on several chat platforms at once: a ChatDelivery that hands each
// Outbound to every platform's delivery, so a release has a card (edited in
// place) and a thread on each of them, whichever platform it was asked for,
// approved or steered on.
//
// - Release messages (card, reply, alert, a message in a release's thread) go
//   to every platform; each draws it from the same stored release, so the
//   cards agree. A platform without a room for the app skips it.
// - Answers to one person (ephemeral) and messages for one conversation go
//   only to the platform that conversation is on: the delivery that `owns`
//   the channel id (Matrix room ids start with "!"), else the first one.
// - Steps are named per platform, so a retry after one platform's 429 does
//   not send again what another platform already took. A platform that
//   refuses a message for good (no such room) does not stop the others.
import type { Logger } from '../logging.ts';
import type { ChatDelivery, DeliveryFailure, OnceStep, Outbound } from './port.ts';
import { Undeliverable } from './port.ts';

export interface MirroredPlatform {
  name: string;
  delivery: ChatDelivery;
  /** Whether a channel id is this platform's (for messages addressed to one conversation). */
  owns(channel: string): boolean;
}

/** A failure of one platform's delivery, kept with the platform so `classify` can ask it. */
class PlatformFailure extends Error {
  readonly platform: MirroredPlatform;
  readonly failure: unknown;
  constructor(platform: MirroredPlatform, failure: unknown) {
    super(`${platform.name}: ${(failure as Error)?.message ?? String(failure)}`);
    this.platform = platform;
    this.failure = failure;
  }
}

export class MirroredDelivery implements ChatDelivery {
  private readonly platforms: MirroredPlatform[];
  private readonly log: Logger;

  constructor(platforms: MirroredPlatform[], log: Logger) {
    if (platforms.length === 0) throw new Error('MirroredDelivery needs at least one platform');
    this.platforms = platforms;
    this.log = log;
  }

  /** The platforms a message goes to. */
  targets(m: Outbound): MirroredPlatform[] {
    const oneConversation = m.kind === 'ephemeral' || (m.kind === 'message' && !m.threadOf);
    if (!oneConversation) return this.platforms;
    const owner = this.platforms.find((p) => p.owns(m.channel));
    // A message into a Slack channel is mirrored (platforms map it to the app's room); one
    // into another platform's conversation, or a person's answer, stays on that platform.
    if (m.kind === 'message' && owner === this.platforms[0]) return this.platforms;
    return [owner ?? (this.platforms[0] as MirroredPlatform)];
  }

  async deliver(m: Outbound, once: OnceStep): Promise<void> {
    let refused: PlatformFailure | undefined;
    for (const p of this.targets(m)) {
      try {
        await p.delivery.deliver(m, (name, fn) => once(`${p.name}:${name}`, fn));
      } catch (err) {
        const f = p.delivery.classify(err);
        if (err instanceof Undeliverable || f.kind === 'permanent') {
          this.log.warn(
            { platform: p.name, kind: m.kind, error: (err as Error).message },
            'platform refused a message',
          );
          refused = new PlatformFailure(p, err);
          continue;
        }
        // Wait or back off: the whole message is retried; what other platforms took is not sent again.
        throw new PlatformFailure(p, err);
      }
    }
    if (refused && this.targets(m).length === 1) throw new Undeliverable(refused.message);
  }

  classify(err: unknown): DeliveryFailure {
    if (err instanceof PlatformFailure) return err.platform.delivery.classify(err.failure);
    if (err instanceof Undeliverable) return { kind: 'permanent', detail: err.message };
    return { kind: 'transient', detail: (err as Error)?.message ?? String(err) };
  }
}
