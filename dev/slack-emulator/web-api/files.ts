// Web API: the external upload flow (files.getUploadURLExternal, POST to the upload URL,
// files.completeUploadExternal), files.info, and downloads of url_private.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { Json, SlackFile } from '../types.ts';
import { ApiError, isObj, parseFormData, rand, readBody } from '../util.ts';
import type { Workspace } from '../workspace.ts';
import type { WebApiMethod } from './method.ts';

const MIME: Record<string, [string, string, string]> = {
  txt: ['text/plain', 'text', 'Plain Text'],
  log: ['text/plain', 'text', 'Plain Text'],
  md: ['text/markdown', 'markdown', 'Markdown (raw)'],
  json: ['application/json', 'json', 'JSON'],
  yaml: ['text/yaml', 'yaml', 'YAML'],
  yml: ['text/yaml', 'yaml', 'YAML'],
  csv: ['text/csv', 'csv', 'CSV'],
  png: ['image/png', 'png', 'PNG'],
  jpg: ['image/jpeg', 'jpg', 'JPEG'],
  jpeg: ['image/jpeg', 'jpg', 'JPEG'],
  gif: ['image/gif', 'gif', 'GIF'],
  gz: ['application/gzip', 'gzip', 'GZip'],
  zip: ['application/zip', 'zip', 'Zip'],
  html: ['text/html', 'html', 'HTML'],
  pdf: ['application/pdf', 'pdf', 'PDF'],
};

/** [mimetype, filetype, pretty_type] as Slack reports them for a file name. */
function mimeFor(name: string, snippetType?: string): [string, string, string] {
  const ext = name.includes('.') ? (name.split('.').pop() ?? '').toLowerCase() : '';
  return (
    MIME[ext] ??
    (snippetType ? ['text/plain', snippetType, snippetType] : ['text/plain', 'text', 'Plain Text'])
  );
}

function publicFile(ws: Workspace, f: SlackFile): Json {
  const { uploaded: _u, completed: _c, preview, ...rest } = structuredClone(f);
  const shares: Json = { public: {} as Json, private: {} as Json };
  for (const [ch, list] of Object.entries(f.shares)) {
    const c = ws.channels.get(ch);
    const bucket = (c?.isPrivate || c?.isIm ? shares['private'] : shares['public']) as Json;
    bucket[ch] = list.map((s) => ({ ...s, channel_name: c?.name ?? ch, team_id: ws.team.id }));
  }
  return {
    ...rest,
    ...(preview !== undefined ? { preview } : {}),
    shares,
    is_public: true,
    mode: 'hosted',
  };
}

function getUploadUrl(ws: Workspace, a: Json): Json {
  const filename = a['filename'];
  const length = Number(a['length']);
  if (typeof filename !== 'string' || filename === '' || !Number.isFinite(length) || length < 0) {
    throw new ApiError('invalid_arguments', {
      response_metadata: { messages: ['[ERROR] missing required field: filename or length'] },
    });
  }
  const id = `F${rand(10)}`;
  const [mimetype, filetype, pretty] = mimeFor(
    filename,
    typeof a['snippet_type'] === 'string' ? a['snippet_type'] : undefined,
  );
  const f: SlackFile = {
    id,
    name: filename,
    title: filename,
    mimetype,
    filetype,
    pretty_type: pretty,
    user: ws.bot.userId,
    size: length,
    created: Math.floor(Date.now() / 1000),
    url_private: `${ws.baseUrl}/files/${id}/${encodeURIComponent(filename)}`,
    url_private_download: `${ws.baseUrl}/files/${id}/${encodeURIComponent(filename)}?download=1`,
    permalink: `${ws.baseUrl}/files/${id}/${encodeURIComponent(filename)}`,
    channels: [],
    shares: {},
    uploaded: false,
    completed: false,
  };
  if (typeof a['alt_txt'] === 'string') f.alt_txt = a['alt_txt'];
  ws.fileMap.set(id, f);
  const tok = randomBytes(16).toString('base64url');
  ws.uploadTokens.set(tok, id);
  return { upload_url: `${ws.baseUrl}/upload/v1/${tok}`, file_id: id };
}

function completeUpload(ws: Workspace, a: Json): Json {
  const list = ws.parseJsonArg(a['files']);
  if (!Array.isArray(list) || list.length === 0) {
    throw new ApiError('invalid_arguments', {
      response_metadata: { messages: ['[ERROR] missing required field: files'] },
    });
  }
  const files: SlackFile[] = [];
  for (const item of list) {
    const f = isObj(item) ? ws.fileMap.get(String(item['id'])) : undefined;
    if (!f) throw new ApiError('file_not_found');
    if (!f.uploaded) throw new ApiError('file_upload_not_completed' as string);
    if (isObj(item) && typeof item['title'] === 'string' && item['title'] !== '') f.title = item['title'];
    files.push(f);
  }
  const chRef =
    a['channel_id'] ?? (typeof a['channels'] === 'string' ? a['channels'].split(',')[0] : undefined);
  for (const f of files) f.completed = true;
  if (chRef) {
    const ch = ws.channelOrThrow(chRef);
    if (ch.botMember === false) throw new ApiError('not_in_channel');
    const threadTs = ws.threadParent(ch.id, a['thread_ts']);
    const blocks = ws.checkBlocks(ws.parseBlocksArg(a['blocks']));
    const m = ws.botMessage(ch.id, {
      text: a['initial_comment'] ? String(a['initial_comment']) : '',
      upload: true,
    });
    if (blocks) m.blocks = blocks;
    if (threadTs) m.thread_ts = threadTs;
    for (const f of files) {
      f.channels = [...new Set([...f.channels, ch.id])];
      const share: { ts: string; thread_ts?: string } = { ts: m.ts };
      if (threadTs) share.thread_ts = threadTs;
      f.shares[ch.id] = [...(f.shares[ch.id] ?? []), share];
    }
    m.files = files.map((f) => {
      const { uploaded: _u, completed: _c, ...rest } = structuredClone(f);
      return { ...rest, uploaded: true, completed: true };
    });
    ws.storeMessage(m);
  }
  for (const f of files) ws.changed({ type: 'file', fileId: f.id });
  return { files: files.map((f) => ({ id: f.id, title: f.title })) };
}

export const fileMethods: Record<string, WebApiMethod> = {
  'files.getUploadURLExternal': getUploadUrl,
  'files.completeUploadExternal': completeUpload,
  'files.info': (ws, a) => {
    const f = ws.fileMap.get(String(a['file'] ?? ''));
    if (!f?.completed) throw new ApiError('file_not_found');
    return { file: publicFile(ws, f) };
  },
};

/** POST /upload/v1/<token>: the bytes of a file announced by files.getUploadURLExternal. */
export async function handleUpload(
  ws: Workspace,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
): Promise<void> {
  const tok = path.slice('/upload/v1/'.length);
  const id = ws.uploadTokens.get(tok);
  const f = id ? ws.fileMap.get(id) : undefined;
  const raw = await readBody(req);
  if (!f || req.method !== 'POST') {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('invalid upload url');
    return;
  }
  let data = raw;
  const ct = String(req.headers['content-type'] ?? '');
  if (ct.includes('multipart/form-data')) {
    const form = await parseFormData(ct, raw);
    for (const [, v] of form) {
      if (typeof v !== 'string') {
        data = Buffer.from(await v.arrayBuffer());
        break;
      }
      data = Buffer.from(v);
    }
  }
  ws.fileData.set(f.id, data);
  f.size = data.length;
  f.uploaded = true;
  if (f.mimetype.startsWith('text/') || f.mimetype === 'application/json') {
    f.preview = data.toString('utf8').slice(0, 2000);
  }
  ws.uploadTokens.delete(tok);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`OK - ${data.length}`);
}

/** GET /files/<id>/<name>: url_private and url_private_download. */
export function handleFileDownload(ws: Workspace, res: http.ServerResponse, path: string, url: URL): void {
  const id = path.split('/')[2] ?? '';
  const f = ws.fileMap.get(id);
  const data = ws.fileData.get(id);
  if (!f || !data) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('file_not_found');
    return;
  }
  const headers: Record<string, string> = {
    'content-type': f.mimetype,
    'content-length': String(data.length),
  };
  if (url.searchParams.has('download')) headers['content-disposition'] = `attachment; filename="${f.name}"`;
  res.writeHead(200, headers);
  res.end(data);
}
