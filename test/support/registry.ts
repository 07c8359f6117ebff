// Real CNCF Distribution registries for tests and the benchmark: one
// `docker-registry` process per registry on a free 127.0.0.1 port, with temp
// storage, optionally behind htpasswd or token auth, or as a pull-through
// cache. Plus a small JWT token issuer, a byte-counting HTTP proxy and a
// builder of real image content (tar.gz layers, config, manifests, index).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, createSign, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { type Manifest, MediaTypes, type RegistryClient } from '../../src/registry/client.ts';

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export interface TokenIssuer {
  /** Token endpoint URL (the registry's `auth.token.realm`). */
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
  /** Number of tokens issued, and the scopes asked for. */
  issued: { count: number; scopes: string[] };
  stop(): Promise<void>;
}

export interface StartedRegistry {
  url: string;
  port: number;
  dir: string;
  process: ChildProcess;
  tokenIssuer?: TokenIssuer;
  /** Stops the process (SIGTERM, then SIGKILL after 3 s) and removes its storage unless `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  logs(): string;
}

export interface RegistryOptions {
  /** htpasswd basic auth with these users. */
  htpasswd?: Record<string, string>;
  /** Token auth with a test issuer that knows these users (anonymous gets pull only when `anonymousPull`). */
  token?: { users: Record<string, string>; anonymousPull?: boolean };
  /** Pull-through cache of this upstream URL. */
  proxy?: { remoteurl: string; username?: string; password?: string };
  port?: number;
}

async function bcryptHash(password: string): Promise<string> {
  // Distribution's htpasswd accepts bcrypt only; libxcrypt (through Python's crypt) makes one.
  const py =
    'import crypt,sys,warnings\nwarnings.simplefilter("ignore")\nprint(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))';
  const { stdout } = await run('python3', ['-c', py, password]);
  const h = stdout.trim();
  if (!h.startsWith('$2')) throw new Error(`could not make a bcrypt hash (got "${h}")`);
  return h;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A token service in the Docker token-auth style: signs RS256 JWTs with an openssl-made key/cert (x5c header). */
export async function startTokenIssuer(opts: {
  users: Record<string, string>;
  anonymousPull?: boolean;
  dir: string;
}): Promise<TokenIssuer> {
  const keyPath = join(opts.dir, 'token.key');
  const certPath = join(opts.dir, 'token.crt');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=ferry-test-token-issuer',
  ]);
  const key = await readFile(keyPath, 'utf8');
  const certPem = await readFile(certPath, 'utf8');
  const certDer = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const service = 'ferry-test-registry';
  const issuer = 'ferry-test-issuer';
  const issued = { count: 0, scopes: [] as string[] };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [name, ...pw] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (name === undefined || opts.users[name] !== pw.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = name;
    }
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const scope of u.searchParams.getAll('scope').flatMap((s) => s.split(' '))) {
      issued.scopes.push(scope);
      const m = /^([^:]+):(.+):([^:]+)$/.exec(scope);
      if (!m) continue;
      const wanted = m[3]!.split(',');
      const actions = user ? wanted : opts.anonymousPull ? wanted.filter((a) => a === 'pull') : [];
      access.push({ type: m[1]!, name: m[2]!, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: u.searchParams.get('service') ?? service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    const token = `${input}.${b64url(sig)}`;
    issued.count++;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(
        JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
      );
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    issued,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Starts a real docker-registry. Resolves once /v2/ answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<StartedRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-registry-'));
  const port = opts.port ?? (await freePort());
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  let tokenIssuer: TokenIssuer | undefined;
  if (opts.htpasswd) {
    const entries = await Promise.all(
      Object.entries(opts.htpasswd).map(async ([u, p]) => `${u}:${await bcryptHash(p)}`),
    );
    await writeFile(join(dir, 'htpasswd'), `${entries.join('\n')}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: ferry-test', `    path: ${join(dir, 'htpasswd')}`);
  } else if (opts.token) {
    tokenIssuer = await startTokenIssuer({ ...opts.token, dir });
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${tokenIssuer.realm}`,
      `    service: ${tokenIssuer.service}`,
      `    issuer: ${tokenIssuer.issuer}`,
      `    rootcertbundle: ${tokenIssuer.certPath}`,
    );
  }
  if (opts.proxy) {
    lines.push('proxy:', `  remoteurl: ${opts.proxy.remoteurl}`);
    if (opts.proxy.username)
      lines.push(`  username: ${opts.proxy.username}`, `  password: ${opts.proxy.password ?? ''}`);
  }
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, `${lines.join('\n')}\n`);
  const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (d) => {
    log = (log + d).slice(-20_000);
  });
  child.stderr?.on('data', (d) => {
    log = (log + d).slice(-20_000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}): ${log}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start on ${url}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const started: StartedRegistry = {
    url,
    port,
    dir,
    process: child,
    logs: () => log,
    async stop(o = {}) {
      const running = () => child.exitCode === null && child.signalCode === null;
      if (running()) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (running()) child.kill('SIGKILL');
      }
      await tokenIssuer?.stop();
      if (!o.keepData) await rm(dir, { recursive: true, force: true });
    },
  };
  if (tokenIssuer) started.tokenIssuer = tokenIssuer;
  return started;
}

// ------------------------------------------------------------------ counting proxy

export interface CountingProxy {
  url: string;
  /** Response body bytes sent to clients (what the upstream served). */
  served: number;
  /** Request body bytes received from clients (what was uploaded). */
  received: number;
  /** Bytes served per blob digest (GET /v2/<repo>/blobs/<digest>). */
  servedByBlob: Map<string, number>;
  /** Every request seen, with its status and body bytes each way. */
  requests: { method: string; path: string; status: number; served: number; received: number }[];
  /** Cuts the next GET whose path contains `match` after about `afterBytes` response bytes (a flaky link). */
  breakNext?: { match: string; afterBytes: number } | undefined;
  reset(): void;
  stop(): Promise<void>;
}

/** An HTTP proxy in front of a registry that counts the bytes of every request and response body. */
export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const state: CountingProxy = {
    url: '',
    served: 0,
    received: 0,
    servedByBlob: new Map(),
    requests: [],
    reset() {
      state.served = 0;
      state.received = 0;
      state.servedByBlob.clear();
      state.requests.length = 0;
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
  const server = http.createServer((req, res) => {
    const rec = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0, served: 0, received: 0 };
    state.requests.push(rec);
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(rec.path)?.[1];
    const cut =
      req.method === 'GET' && state.breakNext && rec.path.includes(state.breakNext.match)
        ? state.breakNext
        : undefined;
    if (cut) state.breakNext = undefined;
    let cutting = false;
    const preq = http.request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: req.headers, // Host is kept, so Location headers point back at the proxy
        agent,
      },
      (pres) => {
        rec.status = pres.statusCode ?? 0;
        res.writeHead(pres.statusCode ?? 502, pres.headers);
        pres.on('data', (chunk: Buffer) => {
          state.served += chunk.byteLength;
          rec.served += chunk.byteLength;
          if (blob && req.method === 'GET') {
            state.servedByBlob.set(blob, (state.servedByBlob.get(blob) ?? 0) + chunk.byteLength);
          }
          if (cut && !cutting && rec.served >= cut.afterBytes) {
            cutting = true;
            setImmediate(() => {
              res.destroy();
              pres.destroy();
            });
          }
        });
        pres.pipe(res);
        res.on('close', () => pres.destroy());
      },
    );
    preq.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.on('data', (chunk: Buffer) => {
      state.received += chunk.byteLength;
      rec.received += chunk.byteLength;
    });
    req.on('aborted', () => preq.destroy());
    req.on('error', () => preq.destroy());
    req.pipe(preq);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${port}`;
  return state;
}

// ------------------------------------------------------------------ image content

/** A minimal ustar archive of the given files. */
export function tar(files: { name: string; data: Uint8Array }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    h.write(f.name.slice(0, 99), 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${f.data.byteLength.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136); // mtime 0: reproducible
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    parts.push(h, Buffer.from(f.data));
    const pad = (512 - (f.data.byteLength % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface Layer {
  /** The compressed blob (tar.gz) and its digest. */
  blob: Buffer;
  digest: string;
  diffId: string;
  size: number;
}

/** A tar.gz layer of random (incompressible) files totalling about `bytes`. */
export function randomLayer(bytes: number, name = 'data'): Layer {
  const files: { name: string; data: Uint8Array }[] = [];
  let left = bytes;
  let i = 0;
  while (left > 0 || files.length === 0) {
    const n = Math.min(left, 4 * 1024 * 1024);
    files.push({ name: `${name}/file-${i++}.bin`, data: randomBytes(Math.max(n, 1)) });
    left -= n;
  }
  const t = tar(files);
  const blob = gzipSync(t, { level: 1 });
  return {
    blob,
    digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`,
    diffId: `sha256:${createHash('sha256').update(t).digest('hex')}`,
    size: blob.byteLength,
  };
}

export interface BuiltImage {
  manifest: { bytes: Buffer; digest: string; mediaType: string };
  config: { bytes: Buffer; digest: string };
  layers: Layer[];
}

function sha(b: Uint8Array): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Config + manifest (OCI or Docker schema 2) for the given layers. */
export function buildImage(
  layers: Layer[],
  opts: { arch?: string; os?: string; label?: string; docker?: boolean } = {},
): BuiltImage {
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.arch ?? 'amd64',
      os: opts.os ?? 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Labels: { 'ferry.test': opts.label ?? 'x' }, Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'ferry test' })),
    }),
  );
  const docker = opts.docker ?? false;
  const manifestJson = {
    schemaVersion: 2,
    mediaType: docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest,
    config: {
      mediaType: docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig,
      digest: sha(config),
      size: config.byteLength,
    },
    layers: layers.map((l) => ({
      mediaType: docker ? MediaTypes.dockerLayerGzip : MediaTypes.ociLayerGzip,
      digest: l.digest,
      size: l.size,
    })),
  };
  const bytes = Buffer.from(JSON.stringify(manifestJson));
  return {
    manifest: { bytes, digest: sha(bytes), mediaType: manifestJson.mediaType },
    config: { bytes: config, digest: sha(config) },
    layers,
  };
}

/** Pushes an image's blobs (skipping present ones) and manifest under `tag` through Ferry's client. */
export async function pushImage(
  client: RegistryClient,
  repo: string,
  tag: string,
  img: BuiltImage,
): Promise<string> {
  for (const l of img.layers) {
    if ((await client.headBlob(repo, l.digest)) !== null) continue;
    if (l.size > 16 * 1024 * 1024) await client.pushBlobChunked(repo, l.blob, { digest: l.digest });
    else await client.pushBlob(repo, l.blob);
  }
  await client.pushBlob(repo, img.config.bytes);
  return client.putManifest(repo, tag, img.manifest);
}

/** Pushes a multi-platform index (each image by digest, then the index under `tag`). */
export async function pushIndex(
  client: RegistryClient,
  repo: string,
  tag: string,
  images: { image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }[],
  opts: { docker?: boolean } = {},
): Promise<Manifest> {
  for (const { image } of images) {
    await pushImage(client, repo, image.manifest.digest, image);
  }
  const json = {
    schemaVersion: 2,
    mediaType: opts.docker ? MediaTypes.dockerManifestList : MediaTypes.ociIndex,
    manifests: images.map(({ image, platform }) => ({
      mediaType: image.manifest.mediaType,
      digest: image.manifest.digest,
      size: image.manifest.bytes.byteLength,
      platform,
    })),
  };
  const bytes = Buffer.from(JSON.stringify(json));
  await client.putManifest(repo, tag, { bytes, mediaType: json.mediaType });
  return { bytes, mediaType: json.mediaType, digest: sha(bytes), json: json as Manifest['json'] };
}

/** `skopeo inspect` of a plain-HTTP registry image: its Digest and Layers. */
export async function skopeoInspect(
  ref: string,
  opts: { raw?: boolean; creds?: string } = {},
): Promise<{ Digest: string; Layers: string[]; raw?: unknown }> {
  const args = ['inspect', '--tls-verify=false'];
  if (opts.creds) args.push('--creds', opts.creds);
  if (opts.raw) args.push('--raw');
  args.push(`docker://${ref}`);
  const { stdout } = await run('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  const j = JSON.parse(stdout);
  if (opts.raw) return { Digest: sha(Buffer.from(stdout)), Layers: [], raw: j };
  return j as { Digest: string; Layers: string[] };
}

// ------------------------------------------------------------------ body-limit proxy

export interface BodyLimitProxy {
  url: string;
  /** Every PATCH: body bytes the client sent, and the status it got (0: the connection was cut). */
  patches: { received: number; status: number }[];
  /** Cuts the client's connection once PATCH bodies since this was set pass `afterBytes` (nothing of that request is forwarded). */
  cutPatchAfter?: number | undefined;
  stop(): Promise<void>;
}

/**
 * A stand-in for nginx in front of a registry with `client_max_body_size
 * maxBody` and `proxy_request_buffering on` (its defaults, apart from the
 * size): each request body is read in full before anything is forwarded, a
 * body above `maxBody` is answered 413 as soon as it passes the limit (by
 * Content-Length, or while counting a chunked body) and never reaches the
 * registry, and a request whose connection breaks is dropped whole.
 */
export async function startBodyLimitProxy(
  upstream: string,
  opts: { maxBody?: number } = {},
): Promise<BodyLimitProxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const limit = opts.maxBody ?? Number.POSITIVE_INFINITY;
  let cutCount = 0;
  const state: BodyLimitProxy = {
    url: '',
    patches: [],
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
  const server = http.createServer((req, res) => {
    const rec = { received: 0, status: 0 };
    if (req.method === 'PATCH') state.patches.push(rec);
    const refuse = () => {
      rec.status = 413;
      req.unpipe();
      // Answered at once; the rest of the body is read and dropped (nginx's lingering close), so the
      // client is not cut off while still sending and reads the 413.
      res.writeHead(413, { 'content-type': 'text/html' });
      res.end('<html><body><h1>413 Request Entity Too Large</h1></body></html>');
      req.resume();
    };
    if (Number(req.headers['content-length'] ?? 0) > limit) return refuse();
    const parts: Buffer[] = [];
    let refused = false;
    let cut = false;
    req.on('data', (chunk: Buffer) => {
      if (refused || cut) return;
      rec.received += chunk.byteLength;
      if (req.method === 'PATCH' && state.cutPatchAfter !== undefined) {
        cutCount += chunk.byteLength;
        if (cutCount > state.cutPatchAfter) {
          state.cutPatchAfter = undefined;
          cutCount = 0;
          cut = true;
          req.socket.destroy();
          return;
        }
      }
      if (rec.received > limit) {
        refused = true;
        refuse();
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => {
      if (refused || cut) return;
      const body = Buffer.concat(parts);
      const headers = { ...req.headers, 'content-length': String(body.byteLength) };
      delete headers['transfer-encoding'];
      const preq = http.request(
        { host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent },
        (pres) => {
          rec.status = pres.statusCode ?? 0;
          res.writeHead(pres.statusCode ?? 502, pres.headers);
          pres.pipe(res);
        },
      );
      preq.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      preq.end(body);
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${port}`;
  return state;
}
