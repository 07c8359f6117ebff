// Data shapes kept by the Slack emulator. Field names follow Slack's wire format (snake_case) so that what
// tests and the console read is what the Web API returns.

export type Json = Record<string, unknown>;
export type Block = Json;

export interface EmulatorUser {
  id: string;
  name: string;
  realName: string;
  isAdmin?: boolean;
  isBot?: boolean;
  tz?: string;
  email?: string;
}

export interface EmulatorChannel {
  id: string;
  name: string;
  isPrivate?: boolean;
  /** Whether the bot is a member (default true): posting elsewhere fails with `not_in_channel`. */
  botMember?: boolean;
  topic?: string;
  purpose?: string;
}

export interface SlackFile {
  id: string;
  name: string;
  title: string;
  mimetype: string;
  filetype: string;
  pretty_type: string;
  user: string;
  size: number;
  created: number;
  url_private: string;
  url_private_download: string;
  permalink: string;
  alt_txt?: string;
  channels: string[];
  /** ts of the share message per channel. */
  shares: Record<string, { ts: string; thread_ts?: string }[]>;
  uploaded: boolean;
  completed: boolean;
  preview?: string;
}

export interface StoredMessage {
  type: 'message';
  channel: string;
  ts: string;
  user: string;
  text: string;
  team: string;
  blocks?: Block[];
  attachments?: Json[];
  thread_ts?: string;
  /** Parent only: number of replies, who replied, latest reply ts. */
  reply_count?: number;
  reply_users?: string[];
  latest_reply?: string;
  /** Reply also posted to the channel (`reply_broadcast`). */
  subtype?: string;
  bot_id?: string;
  app_id?: string;
  bot_profile?: Json;
  username?: string;
  files?: SlackFile[];
  upload?: boolean;
  edited?: { user: string; ts: string };
  metadata?: Json;
  /** Emulator bookkeeping: every version of text/blocks the message had (oldest first). */
  history?: { ts: string; text: string; blocks?: Block[] }[];
}

export interface EphemeralMessage {
  type: 'message';
  channel: string;
  /** Recipient: only this user sees it ("Only visible to you"). */
  user: string;
  /** Author: the bot user, or USLACKBOT for Slack's own errors. */
  from: string;
  ts: string;
  text: string;
  blocks?: Block[];
  thread_ts?: string;
  source: 'chat.postEphemeral' | 'command_response' | 'response_url' | 'slackbot';
  deleted?: boolean;
}

export interface StoredView {
  id: string;
  team_id: string;
  type: 'modal' | 'home';
  title?: Json;
  submit?: Json;
  close?: Json;
  blocks: Block[];
  private_metadata: string;
  callback_id: string;
  external_id: string;
  state: { values: Json };
  hash: string;
  clear_on_close: boolean;
  notify_on_close: boolean;
  root_view_id: string;
  previous_view_id: string | null;
  app_id: string;
  bot_id: string;
  /** Emulator bookkeeping. */
  user: string;
  open: boolean;
  /** Errors returned by `response_action: 'errors'`, keyed by block_id. */
  errors?: Record<string, string>;
  /** Where a view came from (views.open / views.push / response_action). */
  openedBy: string;
}

export interface ApiCall {
  method: string;
  args: Json;
  token: string | undefined;
  time: number;
  status: number;
  response: Json;
  injected?: 'ratelimited' | 'error' | 'delay';
}

export type DeliveryKind = 'slash_commands' | 'interactive' | 'events_api';

export interface Delivery {
  id: string;
  kind: DeliveryKind;
  /** For interactive: block_actions, view_submission, view_closed. */
  payloadType: string;
  via: 'http' | 'socket';
  url?: string;
  /** The form-encoded body (HTTP) or the envelope JSON (socket). */
  rawBody: string;
  payload: Json;
  envelopeId?: string;
  retryNum: number;
  retryReason?: string;
  time: number;
  /** HTTP status (socket: 200 once acked, 0 when not acked). */
  status: number;
  /** Raw HTTP response body (socket: JSON of the ack payload). */
  body: string;
  /** Parsed response: JSON body or ack payload; undefined when empty. */
  response: unknown;
  acked: boolean;
  timedOut: boolean;
  latencyMs: number;
  error?: string;
}

export interface ResponseUrlPost {
  url: string;
  kind: 'command' | 'action';
  body: Json;
  status: number;
  result: string;
  time: number;
}

export type ChangeEvent =
  | { type: 'message'; channel: string; ts: string; thread_ts?: string }
  | { type: 'message_changed'; channel: string; ts: string }
  | { type: 'message_deleted'; channel: string; ts: string }
  | { type: 'ephemeral'; channel: string; user: string; ts: string }
  | { type: 'view_opened' | 'view_updated' | 'view_closed'; viewId: string; user: string }
  | { type: 'file'; fileId: string }
  | { type: 'delivery'; delivery: Delivery }
  | { type: 'socket'; connected: number; reason: string }
  | { type: 'api_call'; method: string; ok: boolean }
  | { type: 'reset' };
