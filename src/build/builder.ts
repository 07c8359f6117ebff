// Builds one environment variant of one app version with buildah and pushes it
// to the primary registry. See README.md in this directory for the layering
// guarantees.
//
//   git ref ──checkout──▶ context (no .git) ─┐
//   app Dockerfile + env tail ──compose──────┼─▶ buildah bud --layers --timestamp 0
//   package bundles + tail files ──▶ ferry-tail build context ┘        │
//                                     registry ◀── buildah push --digestfile
//
// Invariants:
//  - a tag that exists in the registry is never rebuilt or overwritten: the
//    existing digest is returned (cached: true);
//  - a failed build pushes nothing (the push only runs after bud succeeded);
//  - the whole log goes to `logPath`; every line also goes to `onLog`.

import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { UnauthorizedError } from '../registry/errors.ts';
import { BuildFailed, type BuildFailureCode, UnknownRefError } from './errors.ts';
import {
  fetchRef,
  type GitAccess,
  GitFetchError,
  listRemoteRefs,
  maskSecrets,
  type PreparedAccess,
  prepareAccess,
  type RepoLocation,
  repoLocation,
} from './git.ts';
import {
  type BuildRegistry,
  type Descriptor,
  type FetchedManifest,
  getManifest,
  type ImageManifest,
  registryHost,
} from './registry-client.ts';
import { chooseStorageDriver, type StorageChoice, storageArgs } from './storage.ts';
import { composeDockerfile, TAIL_CONTEXT_NAME, type TailSpec, TailSpecError } from './tail.ts';

export { type StorageDriver, storageArgs } from './storage.ts';
export type Isolation = 'chroot' | 'oci' | 'rootless';

export interface BuildVariantRequest {
  app: string;
  /** Ferry's version name, e.g. "v2"; part of the tag. */
  version: string;
  /** Git ref to build: a tag, a branch or a commit id. */
  ref: string;
  /**
   * An absolute path (used as file://), an https:// or ssh:// URL, or
   * scp-like `user@host:path`. Never with a password in it: see `git`.
   */
  repoUrl: string;
  /** Credentials and trust for a remote repository (token, deploy key, CA, known hosts). */
  git?: GitAccess;
  /** Path of the app's Dockerfile inside the repository. Default "Dockerfile". */
  dockerfile?: string;
  tail: TailSpec;
  envName: string;
  registry: BuildRegistry;
  /** Repository in the registry, e.g. "apps/payments". */
  repository: string;
  /** Persistent: buildah storage (layer cache), work dirs and logs live here. */
  cacheDir: string;
  /** Host directory holding package bundles (`<packageDir>/<name>/...`). */
  packageDir?: string;
  /**
   * Replace the first FROM of the app's Dockerfile (buildah `--from`). Used by
   * rebuildOnto; the image is resolved to a digest and the tag gets a suffix.
   */
  baseImageOverride?: string;
  /** Tag to push; default `<version>-<envName>` (with `-on-<base digest>` when rebasing). */
  tag?: string;
  buildArgs?: Record<string, string>;
  /**
   * buildah storage: "auto" picks overlay where the kernel and file system
   * allow it (else vfs, with the reason in the build log). Default "vfs".
   */
  storageDriver?: StorageChoice;
  isolation?: Isolation;
  /** buildah `--pull` policy for FROM images. Default "true" (pull if newer). */
  pull?: 'true' | 'false' | 'always' | 'never';
  /** Path of the buildah binary. Default "buildah". */
  buildah?: string;
  /** Path of the skopeo binary (resolving a base override to a digest). Default "skopeo". */
  skopeo?: string;
  /** Where build logs go; default `<cacheDir>/logs`. */
  logDir?: string;
  signal?: AbortSignal;
  onLog?: (line: string) => void;
}

export interface LayerInfo {
  digest: string;
  size: number;
}

export interface BuildResult {
  /** "host/repo:tag" */
  image: string;
  tag: string;
  /** Manifest digest. */
  digest: string;
  manifest: ImageManifest;
  layers: LayerInfo[];
  configDigest: string;
  /** Commit the ref resolved to (undefined when the tag already existed). */
  commit?: string;
  /** The pinned base when built with baseImageOverride. */
  baseImage?: string;
  logPath: string;
  durationMs: number;
  /** True when nothing was built: the tag already existed (or a record did). */
  cached: boolean;
}

const DEFAULT_TAIL_LINES = 20;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const REPO_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const SAFE_NAME_RE = /[^A-Za-z0-9._-]/g;

/** The tag a variant is pushed under. */
export function variantTag(version: string, envName: string, baseDigest?: string): string {
  const tag =
    `${version}-${envName}` + (baseDigest ? `-on-${baseDigest.replace(/^sha256:/, '').slice(0, 12)}` : '');
  return tag;
}

// ---------------------------------------------------------------- logging

class BuildLog {
  readonly path: string;
  readonly #stream: WriteStream;
  readonly #onLog: ((line: string) => void) | undefined;
  #tail: string[] = [];
  #secrets: string[] = [];
  lastStep = '';

  constructor(path: string, onLog?: (line: string) => void) {
    this.path = path;
    this.#stream = createWriteStream(path, { flags: 'a' });
    this.#onLog = onLog;
  }

  /** Never write `secret` to the log, its tail or the listener (git does not print it; this is the second guard). */
  mask(secret: string): void {
    if (secret) this.#secrets.push(secret);
  }

  line(text: string): void {
    const line = this.#secrets.length ? maskSecrets(text, this.#secrets) : text;
    this.#stream.write(line + '\n');
    if (/^STEP \d+\/\d+: /.test(line)) this.lastStep = line;
    this.#tail.push(line);
    if (this.#tail.length > 200) this.#tail.splice(0, this.#tail.length - 200);
    try {
      this.#onLog?.(line);
    } catch {
      // a broken listener must not break the build
    }
  }

  note(text: string): void {
    this.line(`==> ${text}`);
  }

  /** Output lines since `mark`, the last `n` of them. */
  lastLines(n = DEFAULT_TAIL_LINES): string[] {
    return this.#tail.filter((l) => !l.startsWith('==> ')).slice(-n);
  }

  async close(): Promise<void> {
    await new Promise<void>((res) => this.#stream.end(res));
  }
}

// ---------------------------------------------------------------- processes

interface RunResult {
  code: number;
  stdout: string;
}

class CancelledError extends Error {
  override name = 'CancelledError';
}

/**
 * Builds are batch work: on a node they share with the bot (`ferry start`) or with rollouts, a person
 * waiting for a card or an ack should not wait behind a compiler. buildah and what it starts run at
 * niceness 10 (FERRY_BUILD_NICE; 0 keeps the worker's). A host that refuses the change leaves it as is.
 */
function lowerPriority(pid: number | undefined): void {
  const nice = Number(process.env.FERRY_BUILD_NICE ?? 10);
  if (!pid || !Number.isInteger(nice) || nice <= 0) return;
  try {
    setPriority(pid, Math.min(19, nice));
  } catch {
    // not permitted here: the build runs at the worker's priority
  }
}

function runProcess(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; log: BuildLog; signal?: AbortSignal; capture?: boolean },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    if (opts.signal?.aborted) {
      reject(new CancelledError('cancelled'));
      return;
    }
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    lowerPriority(child.pid);
    let stdout = '';
    let open = 2;
    let exitCode: number | null = null;
    let spawnError: Error | undefined;
    let exited = false;
    const finish = () => {
      if (open > 0 || !exited) return;
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) reject(new CancelledError('cancelled'));
      else if (spawnError) reject(spawnError);
      else resolvePromise({ code: exitCode ?? 1, stdout });
    };
    const onAbort = () => {
      child.kill('SIGTERM');
      setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, 5000).unref();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    for (const [stream, isStdout] of [
      [child.stdout, true],
      [child.stderr, false],
    ] as const) {
      const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on('line', (l) => {
        if (isStdout && opts.capture) stdout += l + '\n';
        else opts.log.line(l);
      });
      rl.on('close', () => {
        open--;
        finish();
      });
    }
    child.on('error', (err) => {
      spawnError = err;
      exited = true;
      open = 0;
      finish();
    });
    child.on('close', (code) => {
      exitCode = code;
      exited = true;
      finish();
    });
  });
}

// ---------------------------------------------------------------- git

function naturalSort(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

// ---------------------------------------------------------------- builder

interface Ctx {
  req: BuildVariantRequest;
  log: BuildLog;
  buildah: string;
  storage: string[];
  env: NodeJS.ProcessEnv;
  /** `--authfile <file>` for buildah and skopeo when the registry has credentials. */
  authArgs: string[];
}

function fail(ctx: Ctx, code: BuildFailureCode, step: string, summary: string, cause?: unknown): BuildFailed {
  return new BuildFailed(summary, {
    code,
    app: ctx.req.app,
    version: ctx.req.version,
    envName: ctx.req.envName,
    step,
    lastLines: ctx.log.lastLines(),
    logPath: ctx.log.path,
    cause,
  });
}

function resultFrom(
  req: BuildVariantRequest,
  tag: string,
  fetched: FetchedManifest,
  extra: { logPath: string; durationMs: number; cached: boolean; commit?: string; baseImage?: string },
): BuildResult {
  const layers = fetched.manifest.layers.map((l: Descriptor) => ({ digest: l.digest, size: l.size }));
  const out: BuildResult = {
    image: `${registryHost(req.registry)}/${req.repository}:${tag}`,
    tag,
    digest: fetched.digest,
    manifest: fetched.manifest,
    layers,
    configDigest: fetched.manifest.config.digest,
    logPath: extra.logPath,
    durationMs: extra.durationMs,
    cached: extra.cached,
  };
  if (extra.commit) out.commit = extra.commit;
  if (extra.baseImage) out.baseImage = extra.baseImage;
  return out;
}

const REF_RE = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./+-]{0,254}$/;

/**
 * Fetches `ref` shallow (depth 1) into a bare mirror of the repository kept
 * under `cacheDir/git` (see git.ts: credentials, timeouts, clear failures),
 * then exports that commit with `git archive` into `dest`. The export has no
 * .git, file times set to the commit time and modes 0644/0755 whatever the
 * worker's umask, so the context is the same bytes for every environment and
 * every worker. (Submodules and `export-ignore` paths are not part of the
 * export.)
 */
async function checkout(ctx: Ctx, dest: string): Promise<string> {
  const { req, log } = ctx;
  const opt = req.signal ? { signal: req.signal } : {};
  const checkoutFailed = (e: GitFetchError) => fail(ctx, 'CHECKOUT_FAILED', 'checkout', e.message, e);
  let loc: RepoLocation;
  let prepared: PreparedAccess;
  try {
    loc = repoLocation(req.repoUrl);
    prepared = await prepareAccess(loc, req.git, ctx.env);
  } catch (e) {
    if (e instanceof GitFetchError) throw checkoutFailed(e);
    throw e;
  }
  for (const s of prepared.secrets) log.mask(s);
  const onLine = (l: string) => log.line(l);
  const unknown = async () => {
    const k = await listRemoteRefs(loc, prepared, onLine, req.signal);
    return new UnknownRefError(req.ref, k.tags.sort(naturalSort), k.heads.sort(), {
      app: req.app,
      version: req.version,
      envName: req.envName,
      lastLines: log.lastLines(),
      logPath: log.path,
    });
  };

  const ref = req.ref;
  if (!REF_RE.test(ref)) throw await unknown();
  const mirror = join(
    resolve(req.cacheDir),
    'git',
    createHash('sha256').update(loc.url).digest('hex').slice(0, 16) + '.git',
  );
  await mkdir(join(mirror, '..'), { recursive: true });
  log.note(`fetching ${ref} from ${loc.shown} (depth 1)`);
  let commit: string;
  try {
    commit = await fetchRef({ mirror, loc, ref, access: req.git, prepared, onLine, ...opt });
  } catch (e) {
    if (e instanceof GitFetchError) {
      if (e.kind === 'unknown-ref') throw await unknown();
      throw checkoutFailed(e);
    }
    throw e;
  }

  const tarFile = dest + '.tar';
  const a = await runProcess(
    'git',
    ['-C', mirror, '-c', 'tar.umask=0022', 'archive', '--format=tar', '-o', tarFile, commit],
    { log, env: ctx.env, ...opt },
  );
  if (a.code !== 0) throw fail(ctx, 'CHECKOUT_FAILED', 'checkout', `git archive ${commit} failed`);
  await mkdir(dest, { recursive: true });
  const x = await runProcess('tar', ['-x', '-f', tarFile, '-C', dest], { log, env: ctx.env, ...opt });
  await rm(tarFile, { force: true });
  if (x.code !== 0) throw fail(ctx, 'CHECKOUT_FAILED', 'checkout', `extracting ${commit} failed`);
  log.note(`checked out ${req.ref} at ${commit}`);
  return commit;
}

async function materialiseTail(
  ctx: Ctx,
  dir: string,
  entries: ReturnType<typeof composeDockerfile>['contextEntries'],
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const e of entries) {
    const target = join(dir, e.dest);
    if (e.kind === 'file') {
      await mkdir(join(target, '..'), { recursive: true });
      await writeFile(target, e.content);
      await chmod(target, e.mode);
    } else {
      const pkgDir = ctx.req.packageDir;
      if (!pkgDir)
        throw fail(ctx, 'INVALID_REQUEST', 'tail', `package "${e.name}" requested but no packageDir`);
      const src = join(pkgDir, e.name);
      const st = await stat(src).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw fail(ctx, 'INVALID_REQUEST', 'tail', `package "${e.name}" not found in ${pkgDir}`);
      }
      await cp(src, target, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    }
  }
}

async function resolveBaseOverride(ctx: Ctx, image: string): Promise<{ pinned: string; digest: string }> {
  const { req, log } = ctx;
  const at = image.indexOf('@');
  if (at >= 0) return { pinned: image, digest: image.slice(at + 1) };
  const r = await runProcess(
    req.skopeo ?? 'skopeo',
    [
      'inspect',
      ...ctx.authArgs,
      `--tls-verify=${!req.registry.insecure}`,
      '--format',
      '{{.Digest}}',
      `docker://${image}`,
    ],
    { log, capture: true, env: ctx.env, ...(req.signal ? { signal: req.signal } : {}) },
  );
  const digest = r.stdout.trim();
  if (r.code !== 0 || !digest.startsWith('sha256:')) {
    throw fail(ctx, 'REGISTRY_FAILED', 'resolve base', `cannot resolve base image ${image}`);
  }
  // Drop the tag: repo@digest.
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  const repo = colon >= 0 ? image.slice(0, colon) : image;
  return { pinned: `${repo}@${digest}`, digest };
}

function credentialHint(r: BuildRegistry): string {
  if (r.username === undefined) return ' — it needs credentials: set username and passwordEnv for it';
  return (
    ` for user "${r.username}"` + (r.passwordSource ? ` — check the password in ${r.passwordSource}` : '')
  );
}

function refusedText(req: BuildVariantRequest, e: UnauthorizedError): string {
  const host = registryHost(req.registry);
  return `registry ${host} refused ${req.registry.username === undefined ? 'anonymous access' : 'the credentials'}${credentialHint(req.registry)} (HTTP ${e.status ?? 401})`;
}

/**
 * buildah and skopeo read registry credentials from an auth file (never from
 * argv): one is written for this build in a private directory and removed
 * when the build ends. The password is masked in the log.
 */
async function useRegistryCredentials(ctx: Ctx, dir: string): Promise<void> {
  const r = ctx.req.registry;
  if (r.username === undefined) return;
  if (r.password === undefined) {
    throw fail(
      ctx,
      'REGISTRY_FAILED',
      'registry',
      `no password for user "${r.username}" of registry ${registryHost(r)}` +
        (r.passwordSource ? `: ${r.passwordSource} is not set` : ''),
    );
  }
  const auth = Buffer.from(`${r.username}:${r.password}`).toString('base64');
  ctx.log.mask(r.password);
  ctx.log.mask(auth);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'auth.json');
  await writeFile(file, JSON.stringify({ auths: { [registryHost(r)]: { auth } } }), { mode: 0o600 });
  ctx.authArgs = ['--authfile', file];
}

/**
 * Builds `<repository>:<version>-<envName>` and pushes it, or returns the
 * existing tag's digest (cached) if the registry already has it.
 */
export async function buildVariant(req: BuildVariantRequest): Promise<BuildResult> {
  const started = performance.now();
  const cacheDir = resolve(req.cacheDir);
  const logDir = join(
    req.logDir ? resolve(req.logDir) : join(cacheDir, 'logs'),
    req.app.replace(SAFE_NAME_RE, '_'),
  );
  await mkdir(logDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const logPath = join(
    logDir,
    `${req.version.replace(SAFE_NAME_RE, '_')}-${req.envName.replace(SAFE_NAME_RE, '_')}-${stamp}-${randomUUID().slice(0, 8)}.log`,
  );
  const log = new BuildLog(logPath, req.onLog);
  const { driver, fallbackReason } = await chooseStorageDriver(cacheDir, req.storageDriver ?? 'vfs', {
    buildah: req.buildah ?? 'buildah',
  });
  if (fallbackReason) log.line(`storage: vfs, because ${fallbackReason}`);
  const tmpDir = join(cacheDir, 'tmp');
  const ctx: Ctx = {
    req,
    log,
    buildah: req.buildah ?? 'buildah',
    storage: storageArgs(cacheDir, driver),
    env: { ...process.env, TMPDIR: tmpDir, GIT_TERMINAL_PROMPT: '0' },
    authArgs: [],
  };
  const authDir = join(tmpDir, `auth-${randomUUID()}`);
  const workDir = join(cacheDir, 'work', randomUUID());
  const elapsed = () => Math.round(performance.now() - started);
  const opt = req.signal ? { signal: req.signal } : {};

  try {
    if (!REPO_RE.test(req.repository)) {
      throw fail(
        ctx,
        'INVALID_REQUEST',
        'request',
        `invalid repository name ${JSON.stringify(req.repository)}`,
      );
    }
    await mkdir(tmpDir, { recursive: true });
    await useRegistryCredentials(ctx, authDir);

    let baseImage: string | undefined;
    let baseDigest: string | undefined;
    if (req.baseImageOverride) {
      const r = await resolveBaseOverride(ctx, req.baseImageOverride);
      baseImage = r.pinned;
      baseDigest = r.digest;
      log.note(`base override ${req.baseImageOverride} → ${baseImage}`);
    }
    const tag = req.tag ?? variantTag(req.version, req.envName, baseDigest);
    if (!TAG_RE.test(tag))
      throw fail(ctx, 'INVALID_REQUEST', 'request', `invalid tag ${JSON.stringify(tag)}`);
    const image = `${registryHost(req.registry)}/${req.repository}:${tag}`;

    // 1. Never rebuild a tag that exists.
    const existing = await getManifest(req.registry, req.repository, tag, req.signal).catch((e: unknown) => {
      if (e instanceof UnauthorizedError)
        throw fail(ctx, 'REGISTRY_FAILED', 'registry', refusedText(req, e), e);
      throw fail(ctx, 'REGISTRY_FAILED', 'registry', `cannot read ${image}: ${String(e)}`, e);
    });
    if (existing) {
      log.note(`${image} already exists as ${existing.digest}; not rebuilding`);
      return resultFrom(req, tag, existing, {
        logPath,
        durationMs: elapsed(),
        cached: true,
        ...(baseImage ? { baseImage } : {}),
      });
    }

    // 2. Checkout, compose.
    const srcDir = join(workDir, 'src');
    const tailDir = join(workDir, 'tail');
    await mkdir(workDir, { recursive: true });
    const commit = await checkout(ctx, srcDir);
    const dockerfilePath = join(srcDir, req.dockerfile ?? 'Dockerfile');
    if (!resolve(dockerfilePath).startsWith(srcDir + '/')) {
      throw fail(
        ctx,
        'INVALID_REQUEST',
        'compose',
        `dockerfile path escapes the repository: ${req.dockerfile}`,
      );
    }
    const appDockerfile = await readFile(dockerfilePath, 'utf8').catch(() => {
      throw fail(ctx, 'BUILD_FAILED', 'compose', `no ${req.dockerfile ?? 'Dockerfile'} at ${req.ref}`);
    });
    let composed: ReturnType<typeof composeDockerfile>;
    try {
      composed = composeDockerfile(appDockerfile, req.tail, {
        envName: req.envName,
        labels: { 'io.ferry.app': req.app, 'io.ferry.version': req.version, 'io.ferry.commit': commit },
      });
    } catch (e) {
      if (e instanceof TailSpecError) throw fail(ctx, 'INVALID_REQUEST', 'compose', e.message, e);
      throw e;
    }
    await materialiseTail(ctx, tailDir, composed.contextEntries);
    // Outside the context, so `COPY . /app` sees the same files in every environment.
    const composedPath = join(workDir, 'Dockerfile.ferry');
    await writeFile(composedPath, composed.dockerfile);
    log.note(`composed Dockerfile (${composed.tailLayerCount} tail layer(s)):`);
    for (const l of composed.tail.trimEnd().split('\n')) log.line(`    ${l}`);

    // 3. Build.
    const iidFile = join(workDir, 'iid');
    const budArgs = [
      ...ctx.storage,
      'bud',
      ...ctx.authArgs,
      '--layers',
      '--timestamp',
      '0',
      '--isolation',
      req.isolation ?? 'chroot',
      `--tls-verify=${!req.registry.insecure}`,
      `--pull=${req.pull ?? 'true'}`,
      '-f',
      composedPath,
      '--build-context',
      `${TAIL_CONTEXT_NAME}=${tailDir}`,
      '--iidfile',
      iidFile,
      '-t',
      image,
    ];
    if (baseImage) budArgs.push('--from', baseImage);
    for (const [k, v] of Object.entries(req.buildArgs ?? {})) budArgs.push('--build-arg', `${k}=${v}`);
    budArgs.push(srcDir);
    log.note(`buildah bud ${image}`);
    const bud = await runProcess(ctx.buildah, budArgs, { log, env: ctx.env, ...opt });
    if (bud.code !== 0) {
      const errLine = log
        .lastLines(50)
        .reverse()
        .find((l) => l.startsWith('Error: '));
      throw fail(
        ctx,
        'BUILD_FAILED',
        log.lastStep || 'bud',
        errLine ?? `buildah bud exited with ${bud.code}`,
      );
    }
    const imageId = (await readFile(iidFile, 'utf8')).trim();

    // 4. A concurrent builder (another worker) may have pushed meanwhile.
    const raced = await getManifest(req.registry, req.repository, tag, req.signal);
    if (raced) {
      const same = raced.manifest.config.digest === imageId;
      log.note(
        `${image} appeared during the build as ${raced.digest} (${same ? 'same' : 'different'} content); not pushing`,
      );
      return resultFrom(req, tag, raced, {
        logPath,
        durationMs: elapsed(),
        cached: true,
        commit,
        ...(baseImage ? { baseImage } : {}),
      });
    }

    // 5. Push.
    const digestFile = join(workDir, 'digest');
    log.note(`pushing ${image}`);
    const push = await runProcess(
      ctx.buildah,
      [
        ...ctx.storage,
        'push',
        ...ctx.authArgs,
        `--tls-verify=${!req.registry.insecure}`,
        '--digestfile',
        digestFile,
        imageId,
        `docker://${image}`,
      ],
      { log, env: ctx.env, ...opt },
    );
    if (push.code !== 0) {
      const refused = log.lastLines(50).some((l) => /unauthorized|authentication required|denied/i.test(l));
      throw fail(
        ctx,
        'PUSH_FAILED',
        'push',
        refused
          ? `registry ${registryHost(req.registry)} refused the push of ${image}${credentialHint(req.registry)}`
          : `buildah push exited with ${push.code}`,
      );
    }
    const pushedDigest = (await readFile(digestFile, 'utf8')).trim();

    // 6. Read back what the registry serves.
    const fetched = await getManifest(req.registry, req.repository, tag, req.signal);
    if (!fetched) throw fail(ctx, 'REGISTRY_FAILED', 'verify', `${image} not found right after the push`);
    if (fetched.digest !== pushedDigest) {
      throw fail(
        ctx,
        'REGISTRY_FAILED',
        'verify',
        `registry serves ${fetched.digest}, pushed ${pushedDigest}`,
      );
    }
    log.note(`pushed ${image}@${fetched.digest} in ${elapsed()} ms`);
    return resultFrom(req, tag, fetched, {
      logPath,
      durationMs: elapsed(),
      cached: false,
      commit,
      ...(baseImage ? { baseImage } : {}),
    });
  } catch (e) {
    if (e instanceof CancelledError || (req.signal?.aborted && !(e instanceof BuildFailed))) {
      log.note('cancelled');
      throw fail(ctx, 'CANCELLED', log.lastStep || 'cancelled', 'cancelled', e);
    }
    if (e instanceof BuildFailed) {
      log.note(`FAILED: ${e.message.split('\n')[0]}`);
      throw e;
    }
    log.note(`FAILED: ${String(e)}`);
    throw fail(ctx, 'BUILD_FAILED', log.lastStep || 'build', String(e), e);
  } finally {
    await rm(authDir, { recursive: true, force: true }).catch(() => {});
    await rm(workDir, { recursive: true, force: true }).catch(() => {});
    await log.close();
  }
}

export interface RebuildOntoRequest extends BuildVariantRequest {
  /** The updated base or stack image that replaces the Dockerfile's first FROM. */
  baseImageOverride: string;
}

/**
 * Rebuilds a version onto an updated base/stack image. The result is pushed
 * under `<version>-<env>-on-<base digest 12>`: the original tag is immutable.
 */
export function rebuildOnto(req: RebuildOntoRequest): Promise<BuildResult> {
  return buildVariant(req);
}
