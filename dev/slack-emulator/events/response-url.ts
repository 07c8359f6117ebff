// response_url's: what the bot POSTs back for a command or an action (and what an ack carries) is shown
// the way Slack shows it — ephemeral or in channel, replacing or deleting the original.
import type http from 'node:http';
import type { Block, EphemeralMessage, Json } from '../types.ts';
import { ApiError, readBody } from '../util.ts';
import type { ResponseUrlState, Workspace } from '../workspace.ts';

/** Applies a message body sent to a response_url (or returned in an ack) the way Slack shows it. */
export function applyResponse(
  ws: Workspace,
  st: Omit<ResponseUrlState, 'created' | 'uses'>,
  body: Json,
): string {
  let blocks: Block[] | undefined;
  try {
    blocks = ws.checkBlocks(ws.parseBlocksArg(body['blocks']));
  } catch (err) {
    return err instanceof ApiError ? err.message : 'invalid_blocks';
  }
  const text = body['text'] === undefined ? '' : String(body['text']);
  const truthy = (v: unknown): boolean => v === true || v === 'true';
  if (truthy(body['delete_original'])) {
    if (st.ephemeral) {
      const e = ws.ephemeralList.find((x) => x.ts === st.messageTs && x.user === st.user);
      if (e) {
        e.deleted = true;
        ws.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: e.ts });
      }
    } else if (st.messageTs) ws.deleteMessage(st.channel, st.messageTs);
    return 'ok';
  }
  if (truthy(body['replace_original']) && st.messageTs) {
    if (st.ephemeral) {
      const e = ws.ephemeralList.find((x) => x.ts === st.messageTs && x.user === st.user);
      if (!e) return 'message_not_found';
      e.text = text;
      if (blocks) e.blocks = blocks;
      else delete e.blocks;
      ws.changed({ type: 'ephemeral', channel: e.channel, user: e.user, ts: e.ts });
      return 'ok';
    }
    const m = ws.findMessage(st.channel, st.messageTs);
    if (!m) return 'message_not_found';
    ws.keepHistory(m);
    m.text = text;
    if (blocks) m.blocks = blocks;
    else delete m.blocks;
    ws.changed({ type: 'message_changed', channel: st.channel, ts: m.ts });
    return 'ok';
  }
  if (!text && !blocks) return 'no_text';
  let threadTs = typeof body['thread_ts'] === 'string' ? body['thread_ts'] : st.threadTs;
  if (threadTs && !ws.findMessage(st.channel, threadTs)) threadTs = undefined;
  if (body['response_type'] === 'in_channel') {
    const m = ws.botMessage(st.channel, { text });
    if (blocks) m.blocks = blocks;
    if (threadTs) m.thread_ts = threadTs;
    ws.storeMessage(m);
  } else {
    const e: Omit<EphemeralMessage, 'type' | 'ts'> = {
      channel: st.channel,
      user: st.user,
      from: ws.bot.userId,
      text,
      source: 'response_url',
    };
    if (blocks) e.blocks = blocks;
    if (threadTs) e.thread_ts = threadTs;
    ws.addEphemeral(e);
  }
  return 'ok';
}

/** POST /commands/<team>/<id>/<secret> or /actions/…: at most 5 uses within 30 minutes, as Slack allows. */
export async function handleResponseUrl(
  ws: Workspace,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
): Promise<void> {
  const parts = path.split('/');
  const kind = parts[1] === 'commands' ? 'command' : 'action';
  const key = parts.slice(3).join('/');
  const raw = await readBody(req);
  let body: Json = {};
  try {
    const ct = String(req.headers['content-type'] ?? '');
    if (ct.includes('json')) body = JSON.parse(raw.toString('utf8')) as Json;
    else body = { text: raw.toString('utf8') };
  } catch {
    body = { text: raw.toString('utf8') };
  }
  const st = ws.responseUrls.get(key);
  const fullUrl = `${ws.baseUrl}${path}`;
  const reply = (status: number, result: string): void => {
    ws.responses.push({ url: fullUrl, kind, body, status, result, time: Date.now() });
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(result);
  };
  if (!st) return reply(404, 'no_service');
  if (Date.now() - st.created > 30 * 60_000) return reply(404, 'expired_url');
  if (st.uses >= 5) return reply(404, 'used_url');
  st.uses += 1;
  const result = applyResponse(ws, st, body);
  reply(result === 'ok' ? 200 : 400, result);
}
