// Web API: auth, users and conversations.
import { randomUUID } from 'node:crypto';
import type { EmulatorUser, Json } from '../types.ts';
import { ApiError } from '../util.ts';
import type { Workspace, WorkspaceChannel } from '../workspace.ts';
import type { WebApiMethod } from './method.ts';

function userInfo(ws: Workspace, u: EmulatorUser): Json {
  return {
    id: u.id,
    team_id: ws.team.id,
    name: u.name,
    deleted: false,
    real_name: u.realName,
    tz: u.tz ?? 'UTC',
    is_admin: u.isAdmin ?? false,
    is_owner: false,
    is_bot: u.isBot ?? false,
    is_app_user: false,
    profile: {
      real_name: u.realName,
      display_name: u.name,
      real_name_normalized: u.realName,
      display_name_normalized: u.name,
      email: u.email ?? `${u.name}@${ws.team.domain}.example`,
      team: ws.team.id,
      ...(u.isBot ? { bot_id: ws.bot.botId } : {}),
    },
  };
}

function channelInfo(ws: Workspace, c: WorkspaceChannel): Json {
  if (c.isIm) return { id: c.id, is_im: true, user: c.id.slice(2), created: c.created, is_org_shared: false };
  return {
    id: c.id,
    name: c.name,
    is_channel: !c.isPrivate,
    is_group: false,
    is_im: false,
    is_private: c.isPrivate ?? false,
    is_archived: false,
    is_general: c.name === 'general',
    is_member: c.botMember ?? true,
    created: c.created,
    creator: 'U_CAROL',
    name_normalized: c.name,
    topic: { value: c.topic ?? '', creator: '', last_set: 0 },
    purpose: { value: c.purpose ?? '', creator: '', last_set: 0 },
    num_members: ws.users.size,
  };
}

export const conversationMethods: Record<string, WebApiMethod> = {
  'api.test': (_ws, a) => ({ args: a }),
  'auth.test': (ws) => ({
    url: `${ws.baseUrl}/`,
    team: ws.team.name,
    user: ws.bot.name,
    team_id: ws.team.id,
    user_id: ws.bot.userId,
    bot_id: ws.bot.botId,
    is_enterprise_install: false,
  }),
  'apps.connections.open': (ws) => {
    const ticket = randomUUID();
    ws.tickets.set(ticket, Date.now());
    const wsBase = ws.baseUrl.replace(/^http/, 'ws');
    return { url: `${wsBase}/link/?ticket=${ticket}&app_id=${ws.bot.appId}` };
  },
  'users.info': (ws, a) => {
    const u = ws.users.get(String(a['user'] ?? ''));
    if (!u) throw new ApiError('user_not_found');
    return { user: userInfo(ws, u) };
  },
  'users.list': (ws) => ({
    members: [...ws.users.values()].map((u) => userInfo(ws, u)),
    response_metadata: { next_cursor: '' },
  }),
  'conversations.info': (ws, a) => ({ channel: channelInfo(ws, ws.channelOrThrow(a['channel'])) }),
  'conversations.list': (ws) => ({
    channels: [...ws.channels.values()].filter((c) => !c.isIm).map((c) => channelInfo(ws, c)),
    response_metadata: { next_cursor: '' },
  }),
  'conversations.join': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    ch.botMember = true;
    return { channel: channelInfo(ws, ch) };
  },
  'conversations.open': (ws, a) => {
    const users = String(a['users'] ?? '')
      .split(',')
      .filter(Boolean);
    const first = users[0];
    if (!first || !ws.users.has(first)) throw new ApiError('user_not_found');
    const ch = ws.channels.get(ws.imFor(first));
    return { channel: { id: ch?.id } };
  },
  'conversations.history': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    const limit = Number(a['limit'] ?? 100);
    const msgs = ws
      .channelMessages(ch.id)
      .reverse()
      .filter((m) => (a['oldest'] ? Number(m.ts) >= Number(a['oldest']) : true))
      .filter((m) => (a['latest'] ? Number(m.ts) <= Number(a['latest']) : true));
    return {
      messages: msgs.slice(0, limit).map((m) => ws.publicMessage(m)),
      has_more: msgs.length > limit,
      response_metadata: { next_cursor: '' },
    };
  },
  'conversations.replies': (ws, a) => {
    const ch = ws.channelOrThrow(a['channel']);
    const ts = String(a['ts'] ?? '');
    const parent = ws.findMessage(ch.id, ts);
    if (!parent) throw new ApiError('thread_not_found');
    const root = parent.thread_ts ?? parent.ts;
    return {
      messages: ws.thread(ch.id, root).map((m) => ws.publicMessage(m)),
      has_more: false,
      response_metadata: { next_cursor: '' },
    };
  },
};
