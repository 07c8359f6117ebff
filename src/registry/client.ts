// Ferry's own small OCI distribution client (distribution-spec v1 / Docker
// registry API v2): manifests, blobs (monolithic, chunked, streamed, mounted),
// tags, Basic and Bearer-token auth. Every blob and manifest read is verified
// against its digest while streaming.

import { digestOf, sha256Digest, verifyStream } from './digest.ts';
import {
  DigestMismatchError,
  describeCause,
  isAbortError,
  NotFoundError,
  RegistryError,
  UnauthorizedError,
  UnreachableError,
} from './errors.ts';
import { isDigest } from './reference.ts';
import { UploadLink } from './upload-link.ts';

export { sha256Digest } from './digest.ts';
export * from './errors.ts';
export { formatReference, type ImageReference, isDigest, parseReference } from './reference.ts';

/** Where a registry is and how to log in. `url` is e.g. "http://127.0.0.1:5001". */
export type RegistryEndpoint = {
  name: string;
  url: string;
  username?: string;
  password?: string;
  /** Allow plain HTTP to a host that is not loopback. */
  insecure?: boolean;
};

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const MANIFEST_ACCEPT = [
  MediaTypes.ociIndex,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string; 'os.version'?: string };
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ImageManifestJson {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

export interface IndexJson {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest as stored: the exact bytes (their digest is the identity) plus the parsed JSON. */
export interface Manifest {
  mediaType: string;
  digest: string;
  bytes: Uint8Array;
  json: ImageManifestJson | IndexJson;
}

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaTypes.ociIndex || mt === MediaTypes.dockerManifestList;
}

export function isIndex(m: Manifest): m is Manifest & { json: IndexJson } {
  return isIndexMediaType(m.mediaType);
}

/** Blobs an image manifest references (config first, then layers); none for an index. */
export function manifestBlobs(m: Manifest): Descriptor[] {
  if (isIndex(m)) return [];
  const j = m.json as ImageManifestJson;
  return [j.config, ...(j.layers ?? [])];
}

/** An open upload session; `location` is absolute and carries the registry's state token. */
export interface UploadSession {
  repo: string;
  location: string;
  /** Bytes the registry holds for this session. */
  offset: number;
}

export interface ClientStats {
  requests: number;
  /** Blob and manifest bytes read from this registry. */
  bytesRead: number;
  /** Blob and manifest bytes sent to this registry. */
  bytesWritten: number;
}

type Body = Uint8Array | ReadableStream<Uint8Array> | undefined;

interface RequestOpts {
  method: string;
  /** Path below the registry URL (starting with /v2/) or an absolute URL (upload locations). */
  url: string;
  headers?: Record<string, string>;
  body?: Body;
  scopes?: string[];
  signal?: AbortSignal | undefined;
  /** What the request is about, for error messages: "manifest team/app:1.0". */
  what: string;
}

type AuthMode = { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

const pullScope = (repo: string) => `repository:${repo}:pull`;
const pushScope = (repo: string) => `repository:${repo}:pull,push`;

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  const scheme = (m?.[1] ?? '').toLowerCase();
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (const p of (m?.[2] ?? '').matchAll(re)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme, params };
}

function parseRangeEnd(range: string | null): number | undefined {
  if (!range) return undefined;
  const m = /^(?:bytes=)?(\d+)-(\d+)$/.exec(range.trim());
  if (!m) return undefined;
  return Number(m[2]);
}

export class RegistryClient {
  readonly endpoint: RegistryEndpoint;
  readonly stats: ClientStats = { requests: 0, bytesRead: 0, bytesWritten: 0 };
  /** Upload rate and body limit measured on this registry: the size of the next chunk (upload-link.ts). */
  readonly uploadLink = new UploadLink();
  private readonly base: string;
  private auth: AuthMode = { kind: 'none' };
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  private readonly pendingTokens = new Map<string, Promise<string>>();

  constructor(endpoint: RegistryEndpoint) {
    const u = new URL(endpoint.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new Error(
        `registry ${endpoint.name}: url must start with http:// or https:// (got ${endpoint.url})`,
      );
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
    if (u.protocol === 'http:' && !loopback && !endpoint.insecure) {
      throw new Error(
        `registry ${endpoint.name}: plain HTTP to ${u.host} is refused; use https:// or set insecure: true for this registry`,
      );
    }
    this.endpoint = endpoint;
    this.base = endpoint.url.replace(/\/+$/, '');
  }

  get name(): string {
    return this.endpoint.name;
  }

  // ---------------------------------------------------------------- core

  private resolve(url: string): string {
    return /^https?:\/\//.test(url) ? url : this.base + url;
  }

  private basicHeader(): string | undefined {
    const { username, password } = this.endpoint;
    if (username === undefined) return undefined;
    return `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  }

  private async authHeader(scopes: string[] | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (this.auth.kind === 'basic') return this.basicHeader();
    if (this.auth.kind === 'bearer') return `Bearer ${await this.token(scopes ?? [], signal)}`;
    return undefined;
  }

  private async token(scopes: string[], signal?: AbortSignal): Promise<string> {
    const key = [...new Set(scopes)].sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now() + 10_000) return cached.token;
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.fetchToken(scopes, signal)
        .then(({ token, expiresIn }) => {
          this.tokens.set(key, { token, expiresAt: Date.now() + expiresIn * 1000 });
          return token;
        })
        .finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<{ token: string; expiresIn: number }> {
    if (this.auth.kind !== 'bearer') throw new Error('no bearer challenge seen');
    const u = new URL(this.auth.realm);
    if (this.auth.service) u.searchParams.set('service', this.auth.service);
    for (const s of new Set(scopes)) u.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    const basic = this.basicHeader();
    if (basic) headers['authorization'] = basic;
    let res: Response;
    try {
      res = await fetch(u, { headers, signal: signal ?? null });
    } catch (err) {
      if (isAbortError(err)) throw err;
      throw new UnreachableError(
        `token service ${u.origin} of registry ${this.name} is unreachable: ${describeCause(err)}`,
        { registry: this.name, cause: err },
      );
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new UnauthorizedError(
        `token service ${u.origin} refused ${basic ? `the credentials of user "${this.endpoint.username}"` : 'anonymous access'} for registry ${this.name} (HTTP ${res.status}); check username/password for this registry`,
        { registry: this.name, status: res.status },
      );
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new RegistryError(
        `token service ${u.origin} of registry ${this.name} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        { registry: this.name, status: res.status },
      );
    }
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) {
      throw new RegistryError(`token service ${u.origin} of registry ${this.name} returned no token`, {
        registry: this.name,
      });
    }
    return { token, expiresIn: Math.max(body.expires_in ?? 60, 15) };
  }

  /** Reacts to a 401; returns true when a retry with new credentials makes sense. */
  private async onChallenge(res: Response, opts: RequestOpts): Promise<boolean> {
    const header = res.headers.get('www-authenticate');
    if (!header) return false;
    const { scheme, params } = parseChallenge(header);
    if (scheme === 'basic') {
      if (this.endpoint.username === undefined || this.auth.kind === 'basic') return false;
      this.auth = { kind: 'basic' };
      return true;
    }
    if (scheme === 'bearer' && params['realm']) {
      const wasBearer = this.auth.kind === 'bearer';
      this.auth = {
        kind: 'bearer',
        realm: params['realm'],
        ...(params['service'] ? { service: params['service'] } : {}),
      };
      const scopes = [...(opts.scopes ?? []), ...(params['scope'] ? params['scope'].split(' ') : [])];
      opts.scopes = [...new Set(scopes)];
      const key = [...opts.scopes].sort().join(' ');
      if (wasBearer && this.tokens.has(key)) {
        this.tokens.delete(key); // the token we sent was refused: fetch once more, then give up
      }
      return true;
    }
    return false;
  }

  private async send(opts: RequestOpts): Promise<Response> {
    const replayable = !(opts.body instanceof ReadableStream);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...opts.headers };
      const auth = await this.authHeader(opts.scopes, opts.signal);
      if (auth) headers['authorization'] = auth;
      const init: RequestInit & { duplex?: 'half' } = {
        method: opts.method,
        headers,
        signal: opts.signal ?? null,
        redirect: 'follow',
      };
      if (opts.body !== undefined) {
        init.body = opts.body as NonNullable<RequestInit['body']>;
        if (!replayable) init.duplex = 'half';
      }
      let res: Response;
      this.stats.requests++;
      try {
        res = await fetch(this.resolve(opts.url), init);
      } catch (err) {
        if (isAbortError(err) || opts.signal?.aborted) throw err;
        if (err instanceof RegistryError) throw err;
        throw new UnreachableError(
          `registry ${this.name} (${this.base}) is unreachable during ${opts.method} ${opts.what}: ${describeCause(err)}. Check that it runs and that the URL is right.`,
          { registry: this.name, cause: err },
        );
      }
      if (res.status === 401 && attempt < 2 && replayable) {
        await res.body?.cancel();
        if (await this.onChallenge(res, opts)) continue;
        return res;
      }
      return res;
    }
  }

  /** Turns a non-success response into a typed error. */
  private async fail(res: Response, opts: { what: string; repo?: string; digest?: string }): Promise<never> {
    let detail = '';
    let code: string | undefined;
    if (opts.what && res.status !== 204) {
      const text = await res.text().catch(() => '');
      try {
        const j = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
        const e = j.errors?.[0];
        if (e) {
          code = e.code;
          detail = `${e.code ?? ''}: ${e.message ?? ''}${e.detail ? ` (${JSON.stringify(e.detail).slice(0, 200)})` : ''}`;
        }
      } catch {
        detail = text.slice(0, 200);
      }
    } else {
      await res.body?.cancel();
    }
    const where = `registry ${this.name}`;
    const base = { registry: this.name, status: res.status, ...(code ? { code } : {}) };
    if (code === 'DIGEST_INVALID' || code === 'SIZE_INVALID') {
      throw new DigestMismatchError(
        `${where} rejected ${opts.what}: the content does not match its digest ${opts.digest ?? ''} (${detail})`,
        { ...base, expected: opts.digest ?? '' },
      );
    }
    if (res.status === 404) {
      throw new NotFoundError(`${opts.what} not found in ${where}${detail ? ` (${detail})` : ''}`, base);
    }
    if (res.status === 401 || res.status === 403) {
      const who = this.endpoint.username
        ? `user "${this.endpoint.username}"`
        : 'anonymous access (no username set)';
      throw new UnauthorizedError(
        `${where} refused ${opts.what} for ${who} (HTTP ${res.status}${detail ? `, ${detail}` : ''}); check the credentials and that they may ${opts.what.startsWith('push') || opts.what.startsWith('upload') ? 'push to' : 'pull from'} this repository`,
        base,
      );
    }
    throw new RegistryError(
      `${where} answered HTTP ${res.status} to ${opts.what}${detail ? `: ${detail}` : ''}`,
      base,
    );
  }

  // ---------------------------------------------------------------- base

  /** GET /v2/: reachable, speaks the API, and credentials (if any) are accepted. */
  async ping(signal?: AbortSignal): Promise<void> {
    const res = await this.send({ method: 'GET', url: '/v2/', what: 'API version check', signal });
    if (res.status === 200) {
      await res.body?.cancel();
      return;
    }
    if (res.status === 401 && this.auth.kind === 'bearer') {
      // Token registries answer /v2/ with 401 to anonymous clients; a token fetch proves the credentials.
      await res.body?.cancel();
      await this.token([], signal);
      return;
    }
    await this.fail(res, { what: 'API version check (/v2/)' });
  }

  // ---------------------------------------------------------------- manifests

  /**
   * Fetches a manifest by tag or digest, any of OCI/Docker image manifest and
   * index/manifest list. The bytes are checked against the requested digest,
   * or the Docker-Content-Digest header when fetched by tag.
   */
  async getManifest(repo: string, ref: string, signal?: AbortSignal): Promise<Manifest> {
    const what = `manifest ${repo}${isDigest(ref) ? '@' : ':'}${ref}`;
    const res = await this.send({
      method: 'GET',
      url: `/v2/${repo}/manifests/${ref}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [pullScope(repo)],
      signal,
      what,
    });
    if (!res.ok) await this.fail(res, { what });
    const bytes = new Uint8Array(await res.arrayBuffer());
    this.stats.bytesRead += bytes.byteLength;
    const expected = isDigest(ref) ? ref : (res.headers.get('docker-content-digest') ?? undefined);
    const digest = expected ? digestOf(expected, bytes) : sha256Digest(bytes);
    if (expected && digest !== expected) {
      throw new DigestMismatchError(
        `${what} from registry ${this.name} does not match its digest: expected ${expected}, got ${digest}`,
        { registry: this.name, expected, actual: digest },
      );
    }
    let json: ImageManifestJson | IndexJson;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch (err) {
      throw new RegistryError(`${what} from registry ${this.name} is not JSON`, {
        registry: this.name,
        cause: err,
      });
    }
    const headerType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const mediaType =
      json.mediaType ??
      (headerType && headerType !== 'application/json' ? headerType : undefined) ??
      ('manifests' in json ? MediaTypes.ociIndex : MediaTypes.ociManifest);
    if (
      !Object.values(MediaTypes).includes(mediaType as never) ||
      (json as { schemaVersion?: number }).schemaVersion !== 2
    ) {
      throw new RegistryError(
        `${what} in registry ${this.name} has unsupported type ${mediaType} (schema ${(json as { schemaVersion?: number }).schemaVersion}); only OCI and Docker schema 2 are supported`,
        { registry: this.name },
      );
    }
    return { mediaType, digest, bytes, json };
  }

  /** HEAD a manifest: its descriptor, or null when the tag/digest is absent. */
  async headManifest(repo: string, ref: string, signal?: AbortSignal): Promise<Descriptor | null> {
    const what = `manifest ${repo}${isDigest(ref) ? '@' : ':'}${ref}`;
    const res = await this.send({
      method: 'HEAD',
      url: `/v2/${repo}/manifests/${ref}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [pullScope(repo)],
      signal,
      what,
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (!res.ok) await this.fail(res, { what });
    const digest = res.headers.get('docker-content-digest');
    if (!digest) {
      // Some registries omit the header on HEAD: fall back to GET, which verifies.
      const m = await this.getManifest(repo, ref, signal);
      return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.byteLength };
    }
    return {
      mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(),
      digest,
      size: Number(res.headers.get('content-length') ?? 0),
    };
  }

  /** PUT the exact manifest bytes under a tag or its digest; returns the digest. */
  async putManifest(
    repo: string,
    ref: string,
    manifest: { bytes: Uint8Array; mediaType: string },
    signal?: AbortSignal,
  ): Promise<string> {
    const what = `push of manifest ${repo}${isDigest(ref) ? '@' : ':'}${ref}`;
    const digest = sha256Digest(manifest.bytes);
    if (isDigest(ref) && ref !== digest) {
      throw new DigestMismatchError(`refusing ${what}: the manifest bytes hash to ${digest}`, {
        registry: this.name,
        expected: ref,
        actual: digest,
      });
    }
    const res = await this.send({
      method: 'PUT',
      url: `/v2/${repo}/manifests/${ref}`,
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      scopes: [pushScope(repo)],
      signal,
      what,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202)
      await this.fail(res, { what, digest });
    await res.body?.cancel();
    this.stats.bytesWritten += manifest.bytes.byteLength;
    const got = res.headers.get('docker-content-digest');
    if (got && got !== digest) {
      throw new DigestMismatchError(`registry ${this.name} stored ${what} as ${got}, expected ${digest}`, {
        registry: this.name,
        expected: digest,
        actual: got,
      });
    }
    return digest;
  }

  async deleteManifest(repo: string, digest: string, signal?: AbortSignal): Promise<void> {
    const what = `delete of manifest ${repo}@${digest}`;
    const res = await this.send({
      method: 'DELETE',
      url: `/v2/${repo}/manifests/${digest}`,
      scopes: [`repository:${repo}:delete`],
      signal,
      what,
    });
    if (res.status !== 202 && res.status !== 200) await this.fail(res, { what });
    await res.body?.cancel();
  }

  /** All tags of a repository (follows Link pagination); [] when the repository does not exist. */
  async listTags(repo: string, signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = `/v2/${repo}/tags/list?n=1000`;
    while (url) {
      const what = `tag list of ${repo}`;
      const res = await this.send({ method: 'GET', url, scopes: [pullScope(repo)], signal, what });
      if (res.status === 404) {
        await res.body?.cancel();
        return tags;
      }
      if (!res.ok) await this.fail(res, { what });
      const body = (await res.json()) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = res.headers.get('link');
      const next = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined;
      url = next ? new URL(next, this.base).toString() : undefined;
    }
    return tags;
  }

  // ---------------------------------------------------------------- blobs (read)

  /** HEAD a blob in a repository: its size, or null when the repository does not hold it. */
  async headBlob(repo: string, digest: string, signal?: AbortSignal): Promise<number | null> {
    const what = `blob ${repo}@${digest}`;
    const res = await this.send({
      method: 'HEAD',
      url: `/v2/${repo}/blobs/${digest}`,
      scopes: [pullScope(repo)],
      signal,
      what,
    });
    await res.body?.cancel();
    if (res.status === 404) return null;
    if (!res.ok) await this.fail(res, { what });
    return Number(res.headers.get('content-length') ?? -1);
  }

  /**
   * Opens a blob as a stream. From offset 0 the stream is verified (digest and
   * `expectedSize`) and errors at its end instead of completing when the
   * content is wrong. With `offset` > 0 (resume), a Range request is made;
   * `offset` in the result says where the stream really starts (0 when the
   * registry ignored the Range).
   */
  async getBlob(
    repo: string,
    digest: string,
    opts: { offset?: number; expectedSize?: number; signal?: AbortSignal; verify?: boolean } = {},
  ): Promise<{ body: ReadableStream<Uint8Array>; size: number; offset: number }> {
    const what = `blob ${repo}@${digest}`;
    const headers: Record<string, string> = {};
    if (opts.offset && opts.offset > 0) headers['range'] = `bytes=${opts.offset}-`;
    const res = await this.send({
      method: 'GET',
      url: `/v2/${repo}/blobs/${digest}`,
      headers,
      scopes: [pullScope(repo)],
      signal: opts.signal,
      what,
    });
    if (res.status !== 200 && res.status !== 206) await this.fail(res, { what, digest });
    if (!res.body)
      throw new RegistryError(`${what}: registry ${this.name} sent no body`, { registry: this.name });
    let offset = 0;
    let size = Number(res.headers.get('content-length') ?? opts.expectedSize ?? -1);
    if (res.status === 206) {
      const cr = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get('content-range') ?? '');
      offset = cr ? Number(cr[1]) : (opts.offset ?? 0);
      if (cr && cr[3] !== '*') size = Number(cr[3]);
    }
    const verify = offset === 0 && opts.verify !== false;
    const body = res.body.pipeThrough(
      verify
        ? verifyStream(digest, {
            registry: this.name,
            what,
            onBytes: (n) => {
              this.stats.bytesRead += n;
            },
            ...(opts.expectedSize !== undefined ? { size: opts.expectedSize } : {}),
          })
        : new TransformStream<Uint8Array, Uint8Array>({
            transform: (chunk, c) => {
              this.stats.bytesRead += chunk.byteLength;
              c.enqueue(chunk);
            },
          }),
    );
    return { body, size, offset };
  }

  /** Reads a (small) blob fully into memory, verified. */
  async readBlob(repo: string, digest: string, signal?: AbortSignal): Promise<Uint8Array> {
    const { body } = await this.getBlob(repo, digest, signal ? { signal } : {});
    return new Uint8Array(await new Response(body).arrayBuffer());
  }

  // ---------------------------------------------------------------- blobs (write)

  private session(repo: string, res: Response, fallbackOffset: number): UploadSession {
    const loc = res.headers.get('location');
    if (!loc) {
      throw new RegistryError(`registry ${this.name} gave no upload Location for ${repo}`, {
        registry: this.name,
      });
    }
    const end = parseRangeEnd(res.headers.get('range'));
    // Distribution reports "0-0" for both 0 and 1 bytes; trust our own count when it is ambiguous.
    const offset = end === undefined ? fallbackOffset : end === 0 ? Math.min(fallbackOffset, 1) : end + 1;
    return { repo, location: new URL(loc, `${this.base}/`).toString(), offset };
  }

  /** POST /v2/<repo>/blobs/uploads/: opens an upload session. */
  async startUpload(repo: string, signal?: AbortSignal): Promise<UploadSession> {
    const what = `upload to ${repo}`;
    const res = await this.send({
      method: 'POST',
      url: `/v2/${repo}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      scopes: [pushScope(repo)],
      signal,
      what,
    });
    if (res.status !== 202) await this.fail(res, { what });
    await res.body?.cancel();
    return this.session(repo, res, 0);
  }

  /**
   * Cross-repository mount: links a blob the registry holds in `fromRepo` into
   * `repo` without sending it. A registry that cannot mount (blob unknown
   * there, or no pull right on `fromRepo`) answers 202 with a fresh upload
   * session instead, which is returned for the caller to upload into.
   */
  async mountBlob(
    repo: string,
    digest: string,
    fromRepo: string,
    signal?: AbortSignal,
  ): Promise<{ mounted: true } | { mounted: false; session: UploadSession }> {
    const what = `upload (mount of ${digest} from ${fromRepo}) to ${repo}`;
    const q = new URLSearchParams({ mount: digest, from: fromRepo });
    const res = await this.send({
      method: 'POST',
      url: `/v2/${repo}/blobs/uploads/?${q}`,
      headers: { 'content-length': '0' },
      scopes: [pushScope(repo), pullScope(fromRepo)],
      signal,
      what,
    });
    await res.body?.cancel();
    if (res.status === 201) return { mounted: true };
    if (res.status === 202) return { mounted: false, session: this.session(repo, res, 0) };
    return this.fail(res, { what, digest });
  }

  /** GET an upload session's status: the registry's offset (throws NotFoundError when the session is gone). */
  async uploadStatus(session: UploadSession, signal?: AbortSignal): Promise<UploadSession> {
    const what = `upload session status in ${session.repo}`;
    const res = await this.send({
      method: 'GET',
      url: session.location,
      scopes: [pushScope(session.repo)],
      signal,
      what,
    });
    await res.body?.cancel();
    if (res.status !== 204 && res.status !== 200) {
      if (res.status === 400 || res.status === 416) {
        throw new NotFoundError(`${what}: the registry no longer accepts this upload session`, {
          registry: this.name,
          status: res.status,
        });
      }
      await this.fail(res, { what });
    }
    return this.session(session.repo, res, session.offset);
  }

  /**
   * PATCH data into an upload session. With a Uint8Array (a chunk) the request
   * carries Content-Range/Content-Length; with a stream it is a streamed
   * upload of unknown length, so a cut-short stream still leaves the
   * registry with a consistent offset.
   */
  async patchUpload(
    session: UploadSession,
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts: { signal?: AbortSignal; sentBytes?: () => number } = {},
  ): Promise<UploadSession> {
    const what = `upload to ${session.repo}`;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    let sent = 0;
    const body: Body = data;
    if (data instanceof Uint8Array) {
      headers['content-range'] = `${session.offset}-${session.offset + data.byteLength - 1}`;
      headers['content-length'] = String(data.byteLength);
      sent = data.byteLength;
    }
    const res = await this.send({
      method: 'PATCH',
      url: session.location,
      headers,
      body,
      scopes: [pushScope(session.repo)],
      signal: opts.signal,
      what,
    });
    if (res.status !== 202 && res.status !== 204) await this.fail(res, { what });
    await res.body?.cancel();
    const next = this.session(session.repo, res, session.offset + (opts.sentBytes?.() ?? sent));
    this.stats.bytesWritten += next.offset - session.offset;
    return next;
  }

  /** PUT ?digest= closes an upload; the registry verifies the digest of everything received. */
  async completeUpload(
    session: UploadSession,
    digest: string,
    data?: Uint8Array | ReadableStream<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void> {
    const what = `upload of blob ${digest} to ${session.repo}`;
    const u = new URL(session.location);
    u.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (data === undefined) headers['content-length'] = '0';
    else if (data instanceof Uint8Array) headers['content-length'] = String(data.byteLength);
    const res = await this.send({
      method: 'PUT',
      url: u.toString(),
      headers,
      ...(data !== undefined ? { body: data } : {}),
      scopes: [pushScope(session.repo)],
      signal,
      what,
    });
    if (res.status !== 201 && res.status !== 204) await this.fail(res, { what, digest });
    await res.body?.cancel();
    if (data instanceof Uint8Array) this.stats.bytesWritten += data.byteLength;
  }

  /** DELETE an upload session (best effort). */
  async cancelUpload(session: UploadSession): Promise<void> {
    try {
      const res = await this.send({
        method: 'DELETE',
        url: session.location,
        scopes: [pushScope(session.repo)],
        what: `cancel of upload to ${session.repo}`,
      });
      await res.body?.cancel();
    } catch {
      // the session expires on its own
    }
  }

  /** Monolithic upload (POST, then PUT with the whole body and its digest). Returns the digest. */
  async pushBlob(repo: string, data: Uint8Array, signal?: AbortSignal): Promise<string> {
    const digest = sha256Digest(data);
    if ((await this.headBlob(repo, digest, signal)) !== null) return digest;
    const session = await this.startUpload(repo, signal);
    await this.completeUpload(session, digest, data, signal);
    return digest;
  }

  /**
   * Chunked upload: POST, then one PATCH per chunk with Content-Range, then
   * PUT ?digest=. `source` may be bytes or any (async) iterable of chunks;
   * chunks are re-cut to `chunkSize`. Returns the digest computed on the way.
   */
  async pushBlobChunked(
    repo: string,
    source: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    opts: { chunkSize?: number; digest?: string; signal?: AbortSignal } = {},
  ): Promise<string> {
    const chunkSize = opts.chunkSize ?? 8 * 1024 * 1024;
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256');
    let session = await this.startUpload(repo, opts.signal);
    let buf: Uint8Array[] = [];
    let buffered = 0;
    const flush = async (all: boolean) => {
      while (buffered >= chunkSize || (all && buffered > 0)) {
        const joined = Buffer.concat(buf);
        const n = Math.min(chunkSize, joined.byteLength);
        const chunk = joined.subarray(0, n);
        const rest = joined.subarray(n);
        buf = rest.byteLength ? [rest] : [];
        buffered = rest.byteLength;
        session = await this.patchUpload(session, chunk, opts.signal ? { signal: opts.signal } : {});
      }
    };
    const it = source instanceof Uint8Array ? [source] : source;
    for await (const chunk of it) {
      hash.update(chunk);
      buf.push(chunk);
      buffered += chunk.byteLength;
      await flush(false);
    }
    await flush(true);
    const digest = `sha256:${hash.digest('hex')}`;
    if (opts.digest && opts.digest !== digest) {
      await this.cancelUpload(session);
      throw new DigestMismatchError(
        `chunked upload to ${repo} on registry ${this.name}: content hashes to ${digest}, expected ${opts.digest}; upload cancelled`,
        { registry: this.name, expected: opts.digest, actual: digest },
      );
    }
    await this.completeUpload(session, digest, undefined, opts.signal);
    return digest;
  }
}
