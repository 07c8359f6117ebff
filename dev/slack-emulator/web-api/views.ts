// Web API: views.open / views.push / views.update, and the modal stacks that view_submission answers
// (events/interactions.ts) change too.
import { normalizeBlocks, validateView } from '../blocks.ts';
import type { Block, Json, StoredView } from '../types.ts';
import { ApiError, isObj, rand } from '../util.ts';
import type { Workspace } from '../workspace.ts';
import type { WebApiMethod } from './method.ts';

export function makeView(
  ws: Workspace,
  view: Json,
  user: string,
  rootId: string | null,
  previous: string | null,
  openedBy: string,
): StoredView {
  const id = `V${rand(10)}`;
  const v: StoredView = {
    id,
    team_id: ws.team.id,
    type: view['type'] === 'home' ? 'home' : 'modal',
    blocks: normalizeBlocks((view['blocks'] as Block[] | undefined) ?? []),
    private_metadata: String(view['private_metadata'] ?? ''),
    callback_id: String(view['callback_id'] ?? ''),
    external_id: String(view['external_id'] ?? ''),
    state: { values: {} },
    hash: `${Math.floor(Date.now() / 1000)}.${rand(8)}`,
    clear_on_close: view['clear_on_close'] === true,
    notify_on_close: view['notify_on_close'] === true,
    root_view_id: rootId ?? id,
    previous_view_id: previous,
    app_id: ws.bot.appId,
    bot_id: ws.bot.botId,
    user,
    open: true,
    openedBy,
  };
  if (isObj(view['title'])) v.title = view['title'];
  if (isObj(view['submit'])) v.submit = view['submit'];
  if (isObj(view['close'])) v.close = view['close'];
  ws.viewMap.set(id, v);
  return v;
}

export function publicView(ws: Workspace, v: StoredView): Json {
  const { user: _u, open: _o, errors: _e, openedBy: _b, ...rest } = structuredClone(v);
  return { ...rest, app_installed_team_id: ws.team.id };
}

export function replaceView(ws: Workspace, v: StoredView, view: Json): void {
  v.blocks = normalizeBlocks((view['blocks'] as Block[] | undefined) ?? []);
  if (isObj(view['title'])) v.title = view['title'];
  if (isObj(view['submit'])) v.submit = view['submit'];
  else delete v.submit;
  if (isObj(view['close'])) v.close = view['close'];
  v.private_metadata = String(view['private_metadata'] ?? '');
  v.callback_id = String(view['callback_id'] ?? v.callback_id);
  if (view['external_id']) v.external_id = String(view['external_id']);
  v.hash = `${Math.floor(Date.now() / 1000)}.${rand(8)}`;
  delete v.errors;
  ws.changed({ type: 'view_updated', viewId: v.id, user: v.user });
}

/** Closes the top modal of a user's stack, or the whole stack. */
export function closeViews(ws: Workspace, user: string, all: boolean): void {
  const stack = ws.modalStacks.get(user) ?? [];
  const toClose = all ? stack.splice(0) : stack.splice(-1);
  for (const id of toClose) {
    const v = ws.viewMap.get(id);
    if (v) {
      v.open = false;
      ws.changed({ type: 'view_closed', viewId: id, user });
    }
  }
}

function checkView(view: Json): void {
  const errors = validateView(view);
  if (errors.length > 0) {
    throw new ApiError('invalid_arguments', {
      response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
    });
  }
}

function viewsOpen(ws: Workspace, a: Json, push: boolean): Json {
  const triggerId = String(a['trigger_id'] ?? a['interactivity_pointer'] ?? '');
  const trig = ws.triggers.get(triggerId);
  if (!trig) throw new ApiError('invalid_trigger_id');
  if (trig.used) throw new ApiError('exchanged_trigger_id');
  if (Date.now() - trig.created > ws.triggerTtlMs) throw new ApiError('expired_trigger_id');
  const view = ws.parseJsonArg(a['view']) as Json;
  checkView(view);
  if (
    typeof view['external_id'] === 'string' &&
    view['external_id'] !== '' &&
    [...ws.viewMap.values()].some((x) => x.open && x.external_id === view['external_id'])
  ) {
    throw new ApiError('duplicate_external_id');
  }
  const stack = ws.modalStacks.get(trig.user) ?? [];
  if (push) {
    if (stack.length === 0) throw new ApiError('not_found');
    if (stack.length >= 3) throw new ApiError('push_limit_reached');
  } else {
    for (const id of stack) {
      const v = ws.viewMap.get(id);
      if (v) v.open = false;
    }
    stack.length = 0;
  }
  trig.used = true;
  const v = makeView(
    ws,
    view,
    trig.user,
    push ? (stack[0] ?? null) : null,
    push ? (stack.at(-1) ?? null) : null,
    push ? 'views.push' : 'views.open',
  );
  stack.push(v.id);
  ws.modalStacks.set(trig.user, stack);
  ws.changed({ type: 'view_opened', viewId: v.id, user: v.user });
  return { view: publicView(ws, v) };
}

function viewsUpdate(ws: Workspace, a: Json): Json {
  let v: StoredView | undefined;
  if (a['view_id']) v = ws.viewMap.get(String(a['view_id']));
  else if (a['external_id']) v = [...ws.viewMap.values()].find((x) => x.external_id === a['external_id']);
  if (!v) throw new ApiError('not_found');
  if (a['hash'] && a['hash'] !== v.hash) throw new ApiError('hash_conflict');
  const view = ws.parseJsonArg(a['view']) as Json;
  checkView(view);
  replaceView(ws, v, view);
  return { view: publicView(ws, v) };
}

export const viewMethods: Record<string, WebApiMethod> = {
  'views.open': (ws, a) => viewsOpen(ws, a, false),
  'views.push': (ws, a) => viewsOpen(ws, a, true),
  'views.update': viewsUpdate,
};
