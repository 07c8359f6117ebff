// What a test or `ferry start` can configure, and the inputs of the simulated user actions.
import type { SlackRateLimitOptions } from './rate-limits.ts';
import type { EmulatorChannel, EmulatorUser } from './types.ts';

export interface SlackEmulatorOptions {
  /** Enforce Slack's Web API rate limits (rate-limits.ts): true for Slack's figures, or own ones. */
  rateLimits?: boolean | SlackRateLimitOptions;
  port?: number;
  host?: string;
  signingSecret: string;
  botToken: string;
  appToken?: string;
  /** Request URL for slash commands, interactivity and events (HTTP mode), e.g. http://127.0.0.1:3000/slack/events */
  botEventsUrl?: string;
  users?: EmulatorUser[];
  channels?: EmulatorChannel[];
  team?: { id: string; domain: string; name: string };
  bot?: { userId: string; botId: string; appId: string; name: string };
  /** Legacy verification token sent in payloads' `token` field. */
  verificationToken?: string;
  /** How long Slack waits for an ack (default 3000 ms). */
  ackTimeoutMs?: number;
  /** How long a trigger_id can be exchanged with views.open (Slack: 3 s). */
  triggerTtlMs?: number;
  /** Server ping interval on Socket Mode connections (default 10 s; Bolt times out after 30 s without one). */
  socketPingIntervalMs?: number;
  /** When the app uses Socket Mode and no connection is open, how long a delivery waits for one (default 10 s). */
  socketWaitMs?: number;
}

export interface InjectRule {
  /** Web API method (e.g. 'chat.postMessage'); all methods when omitted. */
  method?: string;
  /** 429 answers `{ok:false,error:'ratelimited'}` with Retry-After; 5xx answers an HTML error page. */
  status?: 429 | 500 | 502 | 503 | 504;
  /** Seconds, for 429 (default 1). */
  retryAfter?: number;
  /** How many calls this rule applies to. */
  times: number;
  /** Delay the answer by this long (slow Slack). */
  delayMs?: number;
}

/** Overrides for the request signature: forged (another secret) or mis-dated (stale, future) requests. */
export interface SigningOverrides {
  /** Sign with this secret instead of the real one (forged request). */
  signingSecret?: string;
  /** Request timestamp in seconds (stale or future-dated requests). */
  timestamp?: number;
}

export interface SlashCommandInput extends SigningOverrides {
  userId: string;
  channelId: string;
  command?: string;
  text?: string;
}

export interface ClickButtonInput extends SigningOverrides {
  userId: string;
  channelId: string;
  messageTs: string;
  actionId: string;
  value?: string;
  blockId?: string;
  /** For a select menu: the chosen option's value. */
  selectedValue?: string;
}

export interface SubmitViewInput extends SigningOverrides {
  userId: string;
  viewId: string;
  /** { [block_id or action_id]: value } or { [block_id]: { [action_id]: value } } */
  values?: Record<string, string | Record<string, string>>;
}

export const DEFAULT_USERS: EmulatorUser[] = [
  { id: 'U_ALICE', name: 'alice', realName: 'Alice Developer', tz: 'Europe/Berlin' },
  { id: 'U_BOB', name: 'bob', realName: 'Bob Approver', tz: 'Europe/London' },
  { id: 'U_CAROL', name: 'carol', realName: 'Carol Admin', isAdmin: true, tz: 'America/New_York' },
  { id: 'U_DAVE', name: 'dave', realName: 'Dave Oncall', tz: 'Asia/Singapore' },
];

export const DEFAULT_CHANNELS: EmulatorChannel[] = [
  { id: 'C_RELEASES', name: 'releases', purpose: 'Releases and approvals' },
  { id: 'C_PAYMENTS_ALERTS', name: 'payments-alerts', purpose: 'Alerts for the payments app' },
  { id: 'C_CHECKOUT_ALERTS', name: 'checkout-alerts', purpose: 'Alerts for the checkout app' },
  { id: 'C_GENERAL', name: 'general', purpose: 'Company-wide' },
  { id: 'C_RANDOM', name: 'random', botMember: false },
];
