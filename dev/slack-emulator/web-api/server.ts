// The Web API's HTTP side: /api/<method> with a bearer (or `token` argument), form, JSON or multipart
// arguments, fault injection (rate limits, 5xx, slow answers), and the record of every call.
import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiCall, Json } from '../types.ts';
import { ApiError, isObj, parseFormData, readBody } from '../util.ts';
import type { Workspace } from '../workspace.ts';
import { chatMethods } from './chat.ts';
import { conversationMethods } from './conversations.ts';
import { fileMethods } from './files.ts';
import type { WebApiMethod } from './method.ts';
import { viewMethods } from './views.ts';

/** Every Web API method the emulator answers; a new method goes into one of the tables above. */
export const METHODS: Record<string, WebApiMethod> = {
  ...conversationMethods,
  ...chatMethods,
  ...viewMethods,
  ...fileMethods,
};

function authenticate(ws: Workspace, method: string, token: string | undefined): 'bot' | 'app' | 'none' {
  if (method === 'api.test') return 'none';
  if (!token) throw new ApiError('not_authed');
  if (token === ws.botToken) return 'bot';
  if (ws.appToken !== undefined && token === ws.appToken) return 'app';
  throw new ApiError('invalid_auth');
}

/** Runs a Web API method against the workspace state (also usable without HTTP). */
export function callMethod(ws: Workspace, method: string, args: Json, token: string | undefined): Json {
  try {
    const kind = authenticate(ws, method, token);
    const handler = METHODS[method];
    if (!handler) throw new ApiError('unknown_method');
    if (kind === 'app' && method !== 'apps.connections.open') throw new ApiError('not_allowed_token_type');
    if (kind === 'bot' && method === 'apps.connections.open') throw new ApiError('not_allowed_token_type');
    return { ok: true, ...handler(ws, args) };
  } catch (err) {
    if (err instanceof ApiError) return { ok: false, error: err.message, ...err.extra };
    throw err;
  }
}

async function parseArgs(req: http.IncomingMessage, url: URL, raw: Buffer): Promise<Json> {
  const args: Json = Object.fromEntries(url.searchParams);
  const ct = String(req.headers['content-type'] ?? '');
  if (raw.length === 0) return args;
  if (ct.includes('application/json')) {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    if (isObj(parsed)) Object.assign(args, parsed);
  } else if (ct.includes('multipart/form-data')) {
    const form = await parseFormData(ct, raw);
    for (const [k, v] of form) args[k] = typeof v === 'string' ? v : Buffer.from(await v.arrayBuffer());
  } else {
    for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) args[k] = v;
  }
  return args;
}

export async function handleApiHttp(
  ws: Workspace,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
): Promise<void> {
  const method = url.pathname.slice('/api/'.length);
  const raw = await readBody(req);
  let args: Json;
  try {
    args = await parseArgs(req, url, raw);
  } catch {
    args = {};
  }
  const auth = String(req.headers['authorization'] ?? '');
  const token = auth.startsWith('Bearer ')
    ? auth.slice(7)
    : typeof args['token'] === 'string'
      ? args['token']
      : undefined;
  const { token: _t, ...argsNoToken } = args;
  const time = Date.now();

  const rule = ws.rules.find((r) => r.times > 0 && (r.method === undefined || r.method === method));
  // An injected fault wins; otherwise Slack's own limits, when the emulator enforces them.
  const limitedFor = rule ? undefined : ws.rateLimits?.check(method, args, time);
  if (rule) {
    rule.times -= 1;
    if (rule.delayMs) await sleep(rule.delayMs);
  }
  if (rule?.status === 429 || limitedFor !== undefined) {
    {
      const retryAfter = limitedFor ?? rule?.retryAfter ?? 1;
      const body = { ok: false, error: 'ratelimited' };
      ws.calls.push({
        method,
        args: argsNoToken,
        token,
        time,
        status: 429,
        response: body,
        injected: 'ratelimited',
      });
      res.writeHead(429, {
        'content-type': 'application/json; charset=utf-8',
        'retry-after': String(retryAfter),
      });
      res.end(JSON.stringify(body));
      return;
    }
  }
  if (rule) {
    if (rule.status !== undefined) {
      const body = { error: `HTTP ${rule.status}` };
      ws.calls.push({
        method,
        args: argsNoToken,
        token,
        time,
        status: rule.status,
        response: body,
        injected: 'error',
      });
      res.writeHead(rule.status, { 'content-type': 'text/html' });
      res.end(`<html><body><h1>${rule.status}</h1>Slack is having trouble.</body></html>`);
      return;
    }
  }

  const response = callMethod(ws, method, args, token);
  const call: ApiCall = { method, args: argsNoToken, token, time, status: 200, response };
  if (rule?.delayMs) call.injected = 'delay';
  ws.calls.push(call);
  ws.changed({ type: 'api_call', method, ok: response['ok'] === true });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'x-oauth-scopes': 'chat:write,commands,files:write,users:read,channels:read,groups:read,im:write',
  });
  res.end(JSON.stringify(response));
}
