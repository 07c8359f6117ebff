// Web API: chat.* (post, update, delete, ephemeral, permalink).
import { LIMITS } from '../blocks.ts';
import type { EphemeralMessage, Json } from '../types.ts';
import { ApiError } from '../util.ts';
import type { Workspace } from '../workspace.ts';
import type { WebApiMethod } from './method.ts';

function postMessage(ws: Workspace, a: Json): Json {
  const ch = ws.channelOrThrow(a['channel']);
  if (ch.botMember === false) throw new ApiError('not_in_channel');
  let text = a['text'] === undefined || a['text'] === null ? '' : String(a['text']);
  const blocks = ws.checkBlocks(ws.parseBlocksArg(a['blocks']));
  const attachments = a['attachments'] ? (ws.parseJsonArg(a['attachments']) as Json[]) : undefined;
  if (!text && !blocks && !attachments) throw new ApiError('no_text');
  const threadTs = ws.threadParent(ch.id, a['thread_ts']);
  const out: Json = {};
  if (text.length > LIMITS.messageText) {
    // Documented: "Slack will truncate messages containing more than 40,000 characters."
    text = text.slice(0, LIMITS.messageText);
    out['warning'] = 'message_truncated';
    out['response_metadata'] = { warnings: ['message_truncated'] };
  }
  const m = ws.botMessage(ch.id, { text });
  if (blocks) m.blocks = blocks;
  if (attachments) m.attachments = attachments;
  if (threadTs) m.thread_ts = threadTs;
  if (threadTs && (a['reply_broadcast'] === true || a['reply_broadcast'] === 'true'))
    m.subtype = 'thread_broadcast';
  if (typeof a['username'] === 'string') m.username = a['username'];
  if (a['metadata']) m.metadata = ws.parseJsonArg(a['metadata']) as Json;
  ws.storeMessage(m);
  return { channel: ch.id, ts: m.ts, message: ws.publicMessage(m), ...out };
}

function updateMessage(ws: Workspace, a: Json): Json {
  const ch = ws.channelOrThrow(a['channel']);
  const ts = String(a['ts'] ?? '');
  const m = ws.findMessage(ch.id, ts);
  if (!m) throw new ApiError('message_not_found');
  if (m.user !== ws.bot.userId) throw new ApiError('cant_update_message');
  const blocks = ws.checkBlocks(ws.parseBlocksArg(a['blocks']));
  const hasText = a['text'] !== undefined && a['text'] !== null;
  const text = hasText ? String(a['text']) : undefined;
  if (text === '' && blocks === undefined && !a['attachments'] && !a['file_ids'])
    throw new ApiError('no_text');
  if (text !== undefined && text.length > LIMITS.messageText) throw new ApiError('msg_too_long');
  ws.keepHistory(m);
  if (text !== undefined) m.text = text;
  // Documented: blocks not given are retained; an empty array removes them.
  if (blocks !== undefined) {
    if (blocks.length === 0) delete m.blocks;
    else m.blocks = blocks;
  }
  if (a['attachments']) m.attachments = ws.parseJsonArg(a['attachments']) as Json[];
  m.edited = { user: ws.bot.userId, ts: ws.nextTs() };
  ws.changed({ type: 'message_changed', channel: ch.id, ts });
  return { channel: ch.id, ts, text: m.text, message: ws.publicMessage(m) };
}

export const chatMethods: Record<string, WebApiMethod> = {
  'chat.postMessage': postMessage,
  'chat.update': updateMessage,
  'chat.delete': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    const ts = String(a['ts'] ?? '');
    const m = ws.findMessage(ch.id, ts);
    if (!m) throw new ApiError('message_not_found');
    if (m.user !== ws.bot.userId) throw new ApiError('cant_delete_message');
    ws.deleteMessage(ch.id, ts);
    return { channel: ch.id, ts };
  },
  'chat.postEphemeral': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    const user = String(a['user'] ?? '');
    if (!ws.users.has(user)) throw new ApiError('user_not_found');
    const text = a['text'] === undefined ? '' : String(a['text']);
    const blocks = ws.checkBlocks(ws.parseBlocksArg(a['blocks']));
    if (!text && !blocks && !a['attachments']) throw new ApiError('no_text');
    if (text.length > LIMITS.messageText) throw new ApiError('msg_too_long');
    const e: Omit<EphemeralMessage, 'type' | 'ts'> = {
      channel: ch.id,
      user,
      from: ws.bot.userId,
      text,
      source: 'chat.postEphemeral',
    };
    if (blocks) e.blocks = blocks;
    const threadTs = ws.threadParent(ch.id, a['thread_ts']);
    if (threadTs) e.thread_ts = threadTs;
    return { message_ts: ws.addEphemeral(e).ts };
  },
  'chat.getPermalink': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    const ts = String(a['message_ts'] ?? '');
    if (!ws.findMessage(ch.id, ts)) throw new ApiError('message_not_found');
    return { channel: ch.id, permalink: `${ws.baseUrl}/archives/${ch.id}/p${ts.replace('.', '')}` };
  },
};
