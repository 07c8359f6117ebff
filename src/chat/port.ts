// The chat port: what a chat platform adapter (src/chat/<platform>/) gives
// Ferry and gets from it. Nothing here names a platform. An adapter has three
// parts:
//   - a receiver: turns the platform's slash commands, buttons and dialogs into
//     ChatRequests, hands them to the ChatRequestHandler, and shows the
//     ChatAnswer to the person (or asks them for a reason when told to);
//   - a renderer: draws the neutral views (the release card, thread replies,
//     alerts, answers) in the platform's markup;
//   - an outbound client: a ChatDelivery that the notify queue calls with each
//     Outbound the domain announced (post, edit in place, thread, file).
// The notify queue's mechanics (order, retries, rate limits) stay in
// notifier.ts; a delivery only sends one message and says how a failure
// should be treated.
import type { AlertLogsTarget, Attachment, Outbound } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';

/**
 * Who asked, and where: the platform's own ids (Slack U…/C…, Matrix @user:server / !room:server).
 * The answer to a person's request (ChatReply) is plain text; the renderer escapes and formats it.
 * "ephemeral": only the person who asked sees it (where the platform can); "channel": everyone there.
 */
export type { Actor, Reply as ChatReply } from '../ports.ts';

import type { Actor, Reply as ChatReply } from '../ports.ts';

export const reply = (
  ok: boolean,
  text: string,
  releaseId?: string,
  visibility: ChatReply['visibility'] = 'ephemeral',
): ChatReply => ({ ok, text, visibility, ...(releaseId ? { releaseId } : {}) });

/** The buttons of a release card, by meaning; each platform draws and labels them. */
export const RELEASE_ACTIONS = [
  'approve',
  'reject',
  'pause',
  'resume',
  'abort',
  'promote',
  'rollback',
  /** Show logs: the app's newest pod in the release's environment, posted in the release's thread. */
  'logs',
] as const;
export type ReleaseAction = (typeof RELEASE_ACTIONS)[number];

/**
 * A request from a person, in neutral terms. `deliveryId` names one delivery
 * of it (a platform retry repeats it), so a request is acted on once.
 */
export type ChatRequest =
  | { kind: 'command'; text: string; actor: Actor; deliveryId: string }
  | {
      kind: 'release-action';
      action: ReleaseAction;
      releaseId: string;
      /** The card revision the button was drawn from: a click on an older card gets the card refreshed. */
      rev?: number;
      actor: Actor;
      deliveryId: string;
    }
  /** The reason a person gave for rejecting (after an `ask-reason` answer). */
  | { kind: 'reject-reason'; releaseId: string; reason: string; actor: Actor; deliveryId: string }
  /** The "silence" button of an alert. */
  | { kind: 'silence'; key: string; actor: Actor; deliveryId: string }
  /** The "Show logs" button of an alert: the killed container's pod, posted in the alert's thread. */
  | { kind: 'alert-logs'; target: AlertLogsTarget; actor: Actor; deliveryId: string };

/** What the core answers to a request. */
export type ChatAnswer =
  | { kind: 'reply'; reply: ChatReply }
  /** Ask the person why they reject `release` (Slack: a modal), then send a `reject-reason` request. */
  | { kind: 'ask-reason'; release: Release }
  /** Nothing to show: a repeated delivery, or a request that needs no answer. */
  | { kind: 'none' };

/** The core side of the receiver: chat-neutral, implemented once for every platform (commands/requests.ts). */
export interface ChatRequestHandler {
  handle(request: ChatRequest): Promise<ChatAnswer>;
  /**
   * For platforms whose acknowledgement can carry an answer (Slack's 3-second ack): the answer when
   * the config alone gives it (a command that does not parse, help, plan), else undefined — then
   * acknowledge at once and `handle` the request after.
   */
  answerInAck?(text: string, actor: Actor): Promise<ChatReply | undefined>;
}

/** How one failed send should be treated by the notify queue. */
export type DeliveryFailure =
  | { kind: 'ratelimited'; retryAfterMs: number }
  /** Its turn on the platform's pace is reserved, `afterMs` from now (SendLater). */
  | { kind: 'later'; afterMs: number }
  | { kind: 'transient'; detail: string }
  | { kind: 'permanent'; detail: string };

/**
 * Runs a named step of one queued message at most once: a message retried
 * after a failure in its second call does not post its first part twice.
 * Returns what the step returned the first time (a message id, say).
 */
export type OnceStep = (name: string, fn: () => Promise<string>) => Promise<string>;

/** The outbound client of a platform: sends one Outbound. */
export interface ChatDelivery {
  /** Sends `message`; throws what the platform threw (classify says what to do with it). */
  deliver(message: Outbound, once: OnceStep): Promise<void>;
  /** Sorts an error `deliver` threw: wait and retry in order, back off and retry, or drop. */
  classify(err: unknown): DeliveryFailure;
}

/** Thrown by a delivery for a message that can never be sent (no such room, no channel): it is dropped. */
export class Undeliverable extends Error {}

/**
 * Thrown by a delivery whose message's turn on the platform's pace is far off (`afterMs`): its place is
 * reserved, and the queue frees the message's slot until then rather than have it held while it waits.
 */
export class SendLater extends Error {
  readonly afterMs: number;
  constructor(afterMs: number) {
    super(`the platform's pace has this message's turn in ${afterMs} ms`);
    this.afterMs = afterMs;
  }
}

export type { Attachment, Outbound };
