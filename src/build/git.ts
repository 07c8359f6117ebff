// Fetching one ref of an app's repository, shallow, with the app's
// credentials. Local paths, file://, https:// (a token sent as basic auth) and
// ssh:// or scp-like (a deploy key) repositories.
//
// Secrets never travel in argv or URLs: the token reaches git through the
// child's environment, read by an inline credential helper that names only the
// variables; the deploy key is a file path in GIT_SSH_COMMAND. Every message
// this module builds names the variable or the file that holds a secret, never
// the secret itself, and `secrets` lets the caller mask git's own output too.

import { spawn } from 'node:child_process';
import { access, constants, readFile, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { createInterface } from 'node:readline';

/** How to reach an app's repository. Paths are already expanded. */
export interface GitAccess {
  /** HTTPS: the user name sent with the token (basic auth). Default "git". */
  username?: string;
  /** HTTPS: the environment variable that holds the token. */
  tokenEnv?: string;
  /** HTTPS: a file that holds the token (one line). */
  tokenFile?: string;
  /** HTTPS: CA bundle (PEM) that signed the server's certificate. */
  caFile?: string;
  /** SSH: the deploy key (private key file, no passphrase). */
  sshKeyFile?: string;
  /** SSH: known_hosts file holding the server's host key. Default: ssh's own (~/.ssh/known_hosts). */
  knownHostsFile?: string;
  /** How long one fetch may take, in seconds. Default 120. */
  timeoutSeconds?: number;
}

export type RepoScheme = 'file' | 'https' | 'http' | 'ssh' | 'git';

export interface RepoLocation {
  /** What git is given. */
  url: string;
  scheme: RepoScheme;
  /** host[:port] (empty for file). */
  host: string;
  /** The URL as shown in messages: no user info beyond a user name. */
  shown: string;
}

/** Why a fetch failed; `message` is for people and holds no secret. */
export type GitFailureKind =
  | 'credentials'
  | 'auth'
  | 'forbidden'
  | 'tls'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'key-refused'
  | 'key-file'
  | 'unreachable'
  | 'timeout'
  | 'no-repository'
  | 'unknown-ref'
  | 'failed';

export class GitFetchError extends Error {
  override name = 'GitFetchError';
  readonly kind: GitFailureKind;
  /** A server that could not be reached may be back soon: the worker retries the step (see isTransient). Refusals are final. */
  readonly transient: boolean;
  constructor(kind: GitFailureKind, message: string) {
    super(message);
    this.kind = kind;
    this.transient = kind === 'unreachable' || kind === 'timeout';
  }
}

const SCP_LIKE = /^(?:([^@/\s]+)@)?([^:/\s]+):(?!\/\/)(.+)$/;

/** Parses a repo as configured: an absolute path, a URL or scp-like `user@host:path`. */
export function repoLocation(repo: string): RepoLocation {
  if (isAbsolute(repo)) return { url: `file://${repo}`, scheme: 'file', host: '', shown: repo };
  const scp = SCP_LIKE.exec(repo);
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(repo)) {
    return { url: repo, scheme: 'ssh', host: scp[2] ?? '', shown: repo };
  }
  let u: URL;
  try {
    u = new URL(repo);
  } catch {
    throw new GitFetchError('failed', `git: cannot read the repository address ${JSON.stringify(repo)}`);
  }
  const scheme = u.protocol.replace(/:$/, '').replace(/^git\+ssh$|^ssh\+git$/, 'ssh');
  if (!['file', 'https', 'http', 'ssh', 'git'].includes(scheme)) {
    throw new GitFetchError('failed', `git: unsupported repository scheme ${u.protocol}`);
  }
  if (u.password) {
    // Do not echo the URL: it holds the secret.
    throw new GitFetchError(
      'credentials',
      `git: the repository address of ${u.host} holds a password; put the token in git.tokenEnv or git.tokenFile instead`,
    );
  }
  const shown = `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  return { url: repo, scheme: scheme as RepoScheme, host: u.host, shown };
}

/** The environment and config a git child needs to reach one repository. */
export interface PreparedAccess {
  env: NodeJS.ProcessEnv;
  /** `-c` options placed before the git subcommand. */
  configArgs: string[];
  /** Values to mask wherever git's output is shown. */
  secrets: string[];
  /** Where the token comes from, for messages ("$PAYMENTS_GIT_TOKEN", "the file /x"). */
  tokenSource?: string;
  timeoutMs: number;
}

const DEFAULT_TIMEOUT_S = 120;
const SSH_CONNECT_TIMEOUT_S = 10;

/** Single-quotes for /bin/sh (GIT_SSH_COMMAND is run by a shell). */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function mustRead(path: string, what: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new GitFetchError('key-file', `git: ${what} ${path} does not exist`);
  await access(path, constants.R_OK).catch(() => {
    throw new GitFetchError('key-file', `git: ${what} ${path} is not readable by Ferry`);
  });
}

// Variables that would make git or ssh print credentials or ask someone for them.
const DROPPED_ENV = [
  'GIT_ASKPASS',
  'SSH_ASKPASS',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_CURL_VERBOSE',
  'GIT_TRACE',
  'GIT_TRACE_CURL',
  'GIT_TRACE_PACKET',
  'GIT_TRACE2',
  'GIT_TRACE2_EVENT',
  'GIT_TRACE2_PERF',
];

/**
 * Reads the app's credentials (token from its variable or file; checks the
 * key files exist) and builds what the git child needs. Throws
 * GitFetchError('credentials' | 'key-file') with a message naming where the
 * secret should be.
 */
export async function prepareAccess(
  loc: RepoLocation,
  gitAccess: GitAccess | undefined,
  baseEnv: NodeJS.ProcessEnv,
  tokenEnvSource: NodeJS.ProcessEnv = process.env,
): Promise<PreparedAccess> {
  const a = gitAccess ?? {};
  const env: NodeJS.ProcessEnv = { ...baseEnv, GIT_TERMINAL_PROMPT: '0', GIT_TRACE_REDACT: '1' };
  for (const k of DROPPED_ENV) delete env[k];
  const timeoutS = a.timeoutSeconds ?? DEFAULT_TIMEOUT_S;
  // An empty core.askPass stops git from falling back to SSH_ASKPASS or a configured helper program.
  const configArgs = ['-c', 'core.askPass=', '-c', 'gc.auto=0'];
  const secrets: string[] = [];
  const out: PreparedAccess = { env, configArgs, secrets, timeoutMs: timeoutS * 1000 };

  if (loc.scheme === 'https' || loc.scheme === 'http') {
    // Abort a transfer that stalls below 1 kB/s (the overall timeout covers connecting).
    configArgs.push(
      '-c',
      'http.lowSpeedLimit=1000',
      '-c',
      `http.lowSpeedTime=${Math.max(5, Math.min(30, timeoutS))}`,
    );
    // The environment wins over `-c http.sslCAInfo`, so the CA goes there.
    if (a.caFile) {
      await mustRead(a.caFile, 'the CA file');
      env.GIT_SSL_CAINFO = a.caFile;
    }
    let token: string | undefined;
    if (a.tokenEnv) {
      out.tokenSource = `$${a.tokenEnv}`;
      token = tokenEnvSource[a.tokenEnv]?.trim();
      if (!token) {
        throw new GitFetchError(
          'credentials',
          `git: $${a.tokenEnv} is not set; it should hold the token for ${loc.shown}`,
        );
      }
    } else if (a.tokenFile) {
      out.tokenSource = `the file ${a.tokenFile}`;
      const text = await readFile(a.tokenFile, 'utf8').catch(() => undefined);
      if (text === undefined) {
        throw new GitFetchError(
          'credentials',
          `git: cannot read the token file ${a.tokenFile} (the token for ${loc.shown})`,
        );
      }
      token = text.trim();
      if (!token) throw new GitFetchError('credentials', `git: the token file ${a.tokenFile} is empty`);
    }
    if (token !== undefined) {
      if (/[\r\n\0]/.test(token)) {
        throw new GitFetchError('credentials', `git: the token in ${out.tokenSource} spans several lines`);
      }
      const username = a.username ?? 'git';
      // The token, and the basic-auth header value a curl trace would show.
      secrets.push(token, Buffer.from(`${username}:${token}`).toString('base64'));
      env.FERRY_GIT_USERNAME = username;
      env.FERRY_GIT_TOKEN = token;
      // An empty helper clears helpers from other config; ours answers `get`
      // only, from the variables above (the command line names them, it does
      // not hold their values).
      configArgs.push(
        '-c',
        'credential.helper=',
        '-c',
        'credential.helper=!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$FERRY_GIT_USERNAME" "$FERRY_GIT_TOKEN"; }; f',
      );
    }
  } else if (loc.scheme === 'ssh') {
    const ssh = [
      'ssh',
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${SSH_CONNECT_TIMEOUT_S}`,
      '-o',
      'ServerAliveInterval=10',
      '-o',
      'ServerAliveCountMax=3',
    ];
    if (a.sshKeyFile) {
      await mustRead(a.sshKeyFile, 'the deploy key');
      // Only this key, no agent, no ~/.ssh/config: the deploy key is the whole identity.
      ssh.push('-F', '/dev/null', '-i', shQuote(a.sshKeyFile), '-o', 'IdentitiesOnly=yes');
      ssh.push('-o', 'IdentityAgent=none');
    }
    if (a.knownHostsFile) {
      await mustRead(a.knownHostsFile, 'the known hosts file');
      ssh.push(
        '-o',
        `UserKnownHostsFile=${shQuote(a.knownHostsFile)}`,
        '-o',
        'GlobalKnownHostsFile=/dev/null',
      );
    }
    ssh.push('-o', 'StrictHostKeyChecking=yes');
    env.GIT_SSH_COMMAND = ssh.join(' ');
    env.GIT_SSH_VARIANT = 'ssh';
  }
  return out;
}

// ---------------------------------------------------------------- running git

export interface GitRunOptions {
  access: PreparedAccess;
  signal?: AbortSignal;
  /** Every output line (stderr, and stdout unless captured), already masked. */
  onLine: (line: string) => void;
}

interface GitRun {
  code: number;
  stdout: string;
  stderr: string[];
  timedOut: boolean;
}

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('[REDACTED]');
  return out;
}

/** Runs git in its own process group with the prepared environment and an overall timeout. */
export function runGit(args: string[], opts: GitRunOptions, capture = false): Promise<GitRun> {
  const { access: acc } = opts;
  return new Promise((resolvePromise, reject) => {
    if (opts.signal?.aborted) {
      reject(new Error('cancelled'));
      return;
    }
    const child = spawn('git', [...acc.configArgs, ...args], {
      env: acc.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    const stderr: string[] = [];
    let timedOut = false;
    let open = 2;
    let exitCode: number | null = null;
    let exited = false;
    let spawnError: Error | undefined;
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      setTimeout(() => {
        if (!exited) killGroup('SIGKILL');
      }, 3000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, acc.timeoutMs);
    const onAbort = () => stop();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = () => {
      if (open > 0 || !exited) return;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) reject(new Error('cancelled'));
      else if (spawnError) reject(spawnError);
      else resolvePromise({ code: exitCode ?? 1, stdout, stderr, timedOut });
    };
    for (const [stream, isStdout] of [
      [child.stdout, true],
      [child.stderr, false],
    ] as const) {
      const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on('line', (raw) => {
        const line = maskSecrets(raw, acc.secrets);
        if (isStdout && capture) {
          stdout += line + '\n';
          return;
        }
        if (!isStdout) stderr.push(line);
        opts.onLine(line);
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

// ---------------------------------------------------------------- failures

export interface FailureContext {
  loc: RepoLocation;
  access: GitAccess | undefined;
  prepared: PreparedAccess;
}

/** Turns git's stderr into one clear sentence. */
export function classifyFailure(run: GitRun, c: FailureContext): GitFetchError {
  const text = run.stderr.join('\n');
  const { loc, access: a, prepared } = c;
  const url = loc.shown;
  if (run.timedOut) {
    return new GitFetchError(
      'timeout',
      `git: fetching from ${url} did not finish within ${Math.round(prepared.timeoutMs / 1000)} s`,
    );
  }
  if (/Authentication failed for/i.test(text)) {
    return new GitFetchError(
      'auth',
      prepared.tokenSource
        ? `git: authentication failed for ${url} — check the token in ${prepared.tokenSource}`
        : `git: authentication failed for ${url} — the repository needs a token: set git.tokenEnv or git.tokenFile`,
    );
  }
  if (/could not read (Username|Password) for/i.test(text)) {
    return new GitFetchError(
      'auth',
      `git: ${url} asks for credentials and none are configured — set git.tokenEnv or git.tokenFile`,
    );
  }
  if (/returned error: 403/.test(text)) {
    return new GitFetchError(
      'forbidden',
      `git: access to ${url} was denied (HTTP 403)` +
        (prepared.tokenSource ? ` — the token in ${prepared.tokenSource} may lack read access` : ''),
    );
  }
  if (/certificate verification failed|SSL certificate problem|certificate verify failed/i.test(text)) {
    return new GitFetchError(
      'tls',
      `git: the TLS certificate of ${loc.host} is not trusted` +
        (a?.caFile ? ` by the CA file ${a.caFile}` : ' — set git.caFile to the CA bundle that signed it'),
    );
  }
  const knownHosts = a?.knownHostsFile ?? 'ssh\u2019s known hosts (~/.ssh/known_hosts)';
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(text)) {
    return new GitFetchError(
      'host-key-changed',
      `git: the host key of ${loc.host} does not match the one in ${knownHosts} — the server's key changed or someone is in between; check its fingerprint before updating the file`,
    );
  }
  if (/host key is known for|Host key verification failed/i.test(text)) {
    return new GitFetchError(
      'host-key-unknown',
      `git: the host key of ${loc.host} is not in the known hosts file ${knownHosts} — add it (ssh-keyscan) after checking its fingerprint`,
    );
  }
  if (/UNPROTECTED PRIVATE KEY FILE|bad permissions/i.test(text)) {
    return new GitFetchError(
      'key-file',
      `git: ssh ignores the deploy key ${a?.sshKeyFile ?? ''} because others can read it — chmod 600 it`,
    );
  }
  if (/Permission denied \(publickey/i.test(text)) {
    return new GitFetchError(
      'key-refused',
      a?.sshKeyFile
        ? `git: ${loc.host} refused the deploy key ${a.sshKeyFile} — is its public key a deploy key of ${url}?`
        : `git: ${loc.host} refused the ssh login — set git.sshKeyFile to the app's deploy key`,
    );
  }
  const unreachable =
    /(Connection refused|Connection timed out|Could not resolve host(name)?|Failed to connect|No route to host|Network is unreachable|Operation timed out)[^\n]*/i.exec(
      text,
    );
  if (unreachable) {
    return new GitFetchError('unreachable', `git: cannot reach ${loc.host || url}: ${unreachable[0]}`);
  }
  if (/couldn't find remote ref/i.test(text)) return new GitFetchError('unknown-ref', 'unknown ref');
  if (/not found|does not appear to be a git repository|No such file or directory/i.test(text)) {
    return new GitFetchError('no-repository', `git: there is no repository at ${url}`);
  }
  const last = [...run.stderr].reverse().find((l) => /^(fatal|error):/.test(l));
  return new GitFetchError(
    'failed',
    `git: fetching from ${url} failed${last ? `: ${last.replace(/^(fatal|error):\s*/, '')}` : ` (exit ${run.code})`}`,
  );
}

// ---------------------------------------------------------------- fetching

/** Per-mirror lock: one fetch at a time per repository in this process. */
const mirrorLocks = new Map<string, Promise<unknown>>();

export function withMirrorLock<T>(mirror: string, fn: () => Promise<T>): Promise<T> {
  const prev = mirrorLocks.get(mirror) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const settled = next.catch(() => undefined);
  mirrorLocks.set(mirror, settled);
  void settled.then(() => {
    if (mirrorLocks.get(mirror) === settled) mirrorLocks.delete(mirror);
  });
  return next;
}

export interface FetchRefRequest {
  /** Bare repository kept between builds. */
  mirror: string;
  loc: RepoLocation;
  ref: string;
  access: GitAccess | undefined;
  prepared: PreparedAccess;
  signal?: AbortSignal;
  onLine: (line: string) => void;
}

const ABBREVIATED_COMMIT = /^[0-9a-f]{7,39}$/;

/**
 * Fetches `ref` (a tag, a branch or a full commit id) into the mirror with
 * depth 1 and returns the commit it names. An abbreviated commit id cannot be
 * asked of a server, so for one the mirror fetches every branch and tag in
 * full and resolves it locally. Throws GitFetchError.
 */
export async function fetchRef(req: FetchRefRequest): Promise<string> {
  const opts: GitRunOptions = {
    access: req.prepared,
    onLine: req.onLine,
    ...(req.signal ? { signal: req.signal } : {}),
  };
  const ctx: FailureContext = { loc: req.loc, access: req.access, prepared: req.prepared };
  const git = (args: string[], capture = false) => runGit(['-C', req.mirror, ...args], opts, capture);
  return withMirrorLock(req.mirror, async () => {
    const exists = await stat(`${req.mirror}/HEAD`).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const init = await runGit(['init', '--quiet', '--bare', req.mirror], opts);
      if (init.code !== 0) throw classifyFailure(init, ctx);
    }
    // FETCH_HEAD is read under the lock, so concurrent builds of one repository do not mix.
    const shallow = await git(['fetch', '--quiet', '--depth', '1', '--no-tags', req.loc.url, req.ref]);
    let spec = 'FETCH_HEAD^{commit}';
    if (shallow.code !== 0) {
      const why = classifyFailure(shallow, ctx);
      if (why.kind !== 'unknown-ref' || !ABBREVIATED_COMMIT.test(req.ref)) throw why;
      const isShallow = await stat(`${req.mirror}/shallow`).then(
        () => true,
        () => false,
      );
      const full = await git([
        'fetch',
        '--quiet',
        '--no-tags',
        ...(isShallow ? ['--unshallow'] : []),
        req.loc.url,
        '+refs/heads/*:refs/heads/*',
        '+refs/tags/*:refs/tags/*',
      ]);
      if (full.code !== 0) throw classifyFailure(full, ctx);
      spec = `${req.ref}^{commit}`;
    }
    const rev = await git(['rev-parse', '--verify', '--quiet', spec], true);
    const commit = rev.stdout.trim();
    if (rev.code !== 0 || !/^[0-9a-f]{40,64}$/.test(commit))
      throw new GitFetchError('unknown-ref', 'unknown ref');
    return commit;
  });
}

/** The repository's tags and branches as the server lists them (empty when it cannot be asked). */
export async function listRemoteRefs(
  loc: RepoLocation,
  prepared: PreparedAccess,
  onLine: (line: string) => void,
  signal?: AbortSignal,
): Promise<{ tags: string[]; heads: string[] }> {
  const r = await runGit(
    ['ls-remote', '--tags', '--heads', loc.url],
    { access: prepared, onLine, ...(signal ? { signal } : {}) },
    true,
  ).catch(() => undefined);
  if (r?.code !== 0) return { tags: [], heads: [] };
  const refs = r.stdout
    .split('\n')
    .map((l) => l.split('\t')[1] ?? '')
    .filter((x) => x && !x.endsWith('^{}'));
  return {
    tags: refs.filter((x) => x.startsWith('refs/tags/')).map((x) => x.slice(10)),
    heads: refs.filter((x) => x.startsWith('refs/heads/')).map((x) => x.slice(11)),
  };
}
