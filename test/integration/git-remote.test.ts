// Remote git against real servers started here: lighttpd + git-http-backend
// over HTTPS with basic auth (a token), and sshd with a deploy key. The ref is
// fetched shallow; wrong credentials and unknown hosts fail at checkout within
// seconds, with a message that names where the secret lives and never holds it.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildVariantRequest, buildVariant } from '../../src/build/builder.ts';
import { BuildFailed, UnknownRefError } from '../../src/build/errors.ts';
import { fetchRef, type GitAccess, prepareAccess, repoLocation } from '../../src/build/git.ts';
import { getManifest } from '../../src/build/registry-client.ts';
import { isTransient } from '../../src/domain/errors.ts';
import {
  type AppRepo,
  buildBusyboxBase,
  makeAppRepo,
  startRegistry,
  type TestRegistry,
  tempDir,
} from '../support/build-fixtures.ts';
import {
  freePort,
  type HttpsGitServer,
  type KeyPair,
  makeKeyPair,
  publishBare,
  type SshGitServer,
  startHttpsGitServer,
  startSshGitServer,
} from '../support/git-servers.ts';

const exec = promisify(execFile);
const TOKEN_ENV = 'FERRY_TEST_PAYMENTS_GIT_TOKEN';
/** Failing at checkout must take seconds, not a timeout's worth. */
const FAST_FAILURE_MS = 10_000;

let work: string;
let registry: TestRegistry;
let source: AppRepo;
let bare: string;
let https: HttpsGitServer;
let sshd: SshGitServer;
let token: string;
let deployKey: KeyPair;
let otherKey: KeyPair;
let knownHosts: string;
let baseImage: string;
const commits: Record<string, string> = {};
let cacheCount = 0;

beforeAll(async () => {
  work = await tempDir('git-remote');
  registry = await startRegistry();
  baseImage = `${registry.host}/fixture/base:1`;
  await buildBusyboxBase({ image: baseImage, marker: 'base 1', storeDir: join(work, 'fixture-store') });
  source = await makeAppRepo(join(work, 'source'), baseImage);
  for (const t of ['v1', 'v2', 'main']) {
    commits[t] = (await exec('git', ['-C', source.dir, 'rev-parse', `${t}^{commit}`])).stdout.trim();
  }
  bare = await publishBare(source.dir, join(work, 'srv'), 'payments');

  token = `tok-${randomBytes(12).toString('hex')}`;
  process.env[TOKEN_ENV] = token;
  https = await startHttpsGitServer({
    dir: join(work, 'https'),
    projectRoot: join(work, 'srv'),
    username: 'ferry',
    token,
  });

  deployKey = await makeKeyPair(join(work, 'keys'), 'deploy');
  otherKey = await makeKeyPair(join(work, 'keys'), 'other');
  sshd = await startSshGitServer({ dir: join(work, 'sshd'), authorizedKeys: [deployKey.publicKey] });
  knownHosts = join(work, 'known_hosts');
  await writeFile(knownHosts, `${sshd.knownHostsLine}\n`);
});

afterAll(async () => {
  delete process.env[TOKEN_ENV];
  await https?.stop();
  await sshd?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const httpsAccess = (extra: Partial<GitAccess> = {}): GitAccess => ({
  username: 'ferry',
  tokenEnv: TOKEN_ENV,
  caFile: https.caFile,
  ...extra,
});
const sshAccess = (extra: Partial<GitAccess> = {}): GitAccess => ({
  sshKeyFile: deployKey.privateKeyFile,
  knownHostsFile: knownHosts,
  ...extra,
});

/** A fresh cache dir per build, so each test sees its own mirror. */
function request(version: string, ref: string, repoUrl: string, git: GitAccess | undefined) {
  const cacheDir = join(work, `cache-${++cacheCount}`);
  const req: BuildVariantRequest = {
    app: 'payments',
    version,
    ref,
    repoUrl,
    envName: 'prod',
    tail: { env: { FERRY_ENV: 'prod' } },
    registry: { url: registry.url, insecure: true },
    repository: 'remote/payments',
    cacheDir,
    ...(git ? { git } : {}),
  };
  return req;
}

/** The one mirror under a cache dir, and the commits it holds (reachable or not). */
async function mirrorContents(cacheDir: string): Promise<{ commits: string[]; shallow: string }> {
  const entries = await readdir(join(cacheDir, 'git'));
  expect(entries).toHaveLength(1);
  const mirror = join(cacheDir, 'git', entries[0]!);
  const { stdout } = await exec('git', [
    '-C',
    mirror,
    'cat-file',
    '--batch-all-objects',
    '--batch-check=%(objecttype) %(objectname)',
  ]);
  const found = stdout
    .split('\n')
    .filter((l) => l.startsWith('commit '))
    .map((l) => l.slice(7));
  const shallow = await readFile(join(mirror, 'shallow'), 'utf8').catch(() => '');
  return { commits: found, shallow: shallow.trim() };
}

async function failure(req: BuildVariantRequest): Promise<{ err: BuildFailed; ms: number; log: string }> {
  const t0 = performance.now();
  const err = (await buildVariant(req).then(
    () => undefined,
    (e: unknown) => e,
  )) as BuildFailed;
  const ms = performance.now() - t0;
  expect(err).toBeInstanceOf(BuildFailed);
  const log = await readFile(err.logPath, 'utf8');
  return { err, ms, log };
}

function expectNoSecret(texts: string[], secret: string): void {
  for (const t of texts) expect(t).not.toContain(secret);
}

describe('HTTPS with a token', () => {
  it('builds a ref through the builder, fetching only that commit', async () => {
    const req = request('v2', 'v2', https.url('payments'), httpsAccess());
    const lines: string[] = [];
    const r = await buildVariant({ ...req, onLog: (l) => lines.push(l) });
    expect(r.cached).toBe(false);
    expect(r.commit).toBe(commits['v2']);
    const pushed = await getManifest({ url: registry.url, insecure: true }, 'remote/payments', 'v2-prod');
    expect(pushed?.digest).toBe(r.digest);

    const mirror = await mirrorContents(req.cacheDir);
    expect(mirror.commits).toEqual([commits['v2']]);
    expect(mirror.shallow).toBe(commits['v2']);
    expectNoSecret([lines.join('\n'), await readFile(r.logPath, 'utf8')], token);
  });

  it('a wrong token fails at checkout within seconds, naming the variable, not the token', async () => {
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    process.env.FERRY_TEST_WRONG_TOKEN = wrong;
    // Tracing switched on in the worker's environment must not print the credentials either.
    process.env.GIT_CURL_VERBOSE = '1';
    process.env.GIT_TRACE_REDACT = '0';
    try {
      const { err, ms, log } = await failure(
        request('v9', 'v2', https.url('payments'), httpsAccess({ tokenEnv: 'FERRY_TEST_WRONG_TOKEN' })),
      );
      expect(err.code).toBe('CHECKOUT_FAILED');
      expect(err.step).toBe('checkout');
      expect(err.message).toContain(
        `git: authentication failed for ${https.url('payments')} — check the token in $FERRY_TEST_WRONG_TOKEN`,
      );
      expect(ms).toBeLessThan(FAST_FAILURE_MS);
      expect(isTransient(err)).toBe(false);
      const header = Buffer.from(`ferry:${wrong}`).toString('base64');
      expectNoSecret([err.message, err.lastLines.join('\n'), log], wrong);
      expectNoSecret([err.message, err.lastLines.join('\n'), log], header);
    } finally {
      delete process.env.FERRY_TEST_WRONG_TOKEN;
      delete process.env.GIT_CURL_VERBOSE;
      delete process.env.GIT_TRACE_REDACT;
    }
    expect(
      await getManifest({ url: registry.url, insecure: true }, 'remote/payments', 'v9-prod'),
    ).toBeUndefined();
  });

  it('a token from a file works; a token variable that is not set is named', async () => {
    const tokenFile = join(work, 'payments.token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const loc = repoLocation(https.url('payments'));
    const access: GitAccess = { username: 'ferry', tokenFile, caFile: https.caFile };
    const prepared = await prepareAccess(loc, access, process.env);
    const mirror = join(work, 'token-file', 'm.git');
    const commit = await fetchRef({ mirror, loc, ref: 'v1', access, prepared, onLine: () => {} });
    expect(commit).toBe(commits['v1']);

    const { err, ms } = await failure(
      request('v8', 'v2', https.url('payments'), httpsAccess({ tokenEnv: 'FERRY_TEST_UNSET_TOKEN' })),
    );
    expect(err.message).toContain('git: $FERRY_TEST_UNSET_TOKEN is not set');
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
  });

  it('no credentials configured: says the repository asks for them', async () => {
    const { err } = await failure(request('v8', 'v2', https.url('payments'), { caFile: https.caFile }));
    expect(err.code).toBe('CHECKOUT_FAILED');
    expect(err.message).toMatch(/asks for credentials and none are configured/);
  });

  it('a server certificate that is not trusted is named as such', async () => {
    const { caFile: _, ...untrusted } = httpsAccess();
    const { err, ms, log } = await failure(request('v8', 'v2', https.url('payments'), untrusted));
    expect(err.message).toContain(`git: the TLS certificate of ${https.host} is not trusted`);
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
    expectNoSecret([err.message, log], token);
  });

  it('a server that is not there fails fast as unreachable, which the worker retries', async () => {
    const port = await freePort();
    const { err, ms } = await failure(
      request('v8', 'v2', `https://127.0.0.1:${port}/payments.git`, httpsAccess()),
    );
    expect(err.code).toBe('CHECKOUT_FAILED');
    expect(err.message).toContain(`git: cannot reach 127.0.0.1:${port}`);
    expect(isTransient(err)).toBe(true);
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
  });

  it('an unknown ref lists the tags the server has', async () => {
    const { err } = await failure(request('v7', 'v7', https.url('payments'), httpsAccess()));
    expect(err).toBeInstanceOf(UnknownRefError);
    expect((err as UnknownRefError).knownTags).toEqual(expect.arrayContaining(['v1', 'v2']));
    expect(err.message).toContain('"v7"');
  });

  it('an abbreviated commit id resolves (the mirror then fetches the history)', async () => {
    const cacheDir = join(work, 'abbrev');
    const loc = repoLocation(https.url('payments'));
    const access = httpsAccess();
    const prepared = await prepareAccess(loc, access, process.env);
    const commit = await fetchRef({
      mirror: join(cacheDir, 'git', 'm.git'),
      loc,
      ref: commits['v1']!.slice(0, 10),
      access,
      prepared,
      onLine: () => {},
    });
    expect(commit).toBe(commits['v1']);
  });

  it('fetches of two refs of one repository at once each get their own commit', async () => {
    const mirror = join(work, 'concurrent', 'm.git');
    const loc = repoLocation(https.url('payments'));
    const access = httpsAccess();
    const prepared = await prepareAccess(loc, access, process.env);
    const fetch = (ref: string) => fetchRef({ mirror, loc, ref, access, prepared, onLine: () => {} });
    const got = await Promise.all(['v1', 'v2', 'main', 'v1', 'v2'].map(fetch));
    expect(got).toEqual([commits['v1'], commits['v2'], commits['main'], commits['v1'], commits['v2']]);
  });
});

describe('SSH with a deploy key', () => {
  it('checks out a ref shallow with the deploy key', async () => {
    const cacheDir = join(work, 'ssh-ok');
    const loc = repoLocation(sshd.url(bare));
    const access = sshAccess();
    const prepared = await prepareAccess(loc, access, process.env);
    const commit = await fetchRef({
      mirror: join(cacheDir, 'git', 'm.git'),
      loc,
      ref: 'v1',
      access,
      prepared,
      onLine: () => {},
    });
    expect(commit).toBe(commits['v1']);
    const mirror = await mirrorContents(cacheDir);
    expect(mirror.commits).toEqual([commits['v1']]);
    expect(mirror.shallow).toBe(commits['v1']);
  });

  it('builds through the builder over ssh', async () => {
    const r = await buildVariant(request('s1', 'v1', sshd.url(bare), sshAccess()));
    expect(r.cached).toBe(false);
    expect(r.commit).toBe(commits['v1']);
    const pushed = await getManifest({ url: registry.url, insecure: true }, 'remote/payments', 's1-prod');
    expect(pushed?.digest).toBe(r.digest);
  });

  it('a key the server does not know fails within seconds and shows no key material', async () => {
    const keyText = await readFile(otherKey.privateKeyFile, 'utf8');
    const keyBody = keyText.split('\n')[1]!;
    const { err, ms, log } = await failure(
      request('v8', 'v2', sshd.url(bare), sshAccess({ sshKeyFile: otherKey.privateKeyFile })),
    );
    expect(err.code).toBe('CHECKOUT_FAILED');
    expect(err.message).toContain(`git: ${sshd.host} refused the deploy key ${otherKey.privateKeyFile}`);
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
    expectNoSecret([err.message, log], keyBody);
  });

  it('an unknown host key fails within seconds, naming the host and the known hosts file', async () => {
    const empty = join(work, 'empty_known_hosts');
    await writeFile(empty, '');
    const { err, ms } = await failure(
      request('v8', 'v2', sshd.url(bare), sshAccess({ knownHostsFile: empty })),
    );
    expect(err.message).toContain(
      `git: the host key of ${sshd.host} is not in the known hosts file ${empty}`,
    );
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
  });

  it('a host key that differs from the known one is refused as changed', async () => {
    const wrongHosts = join(work, 'wrong_known_hosts');
    const [type, key] = otherKey.publicKey.split(' ');
    await writeFile(wrongHosts, `[127.0.0.1]:${sshd.port} ${type} ${key}\n`);
    const { err, ms } = await failure(
      request('v8', 'v2', sshd.url(bare), sshAccess({ knownHostsFile: wrongHosts })),
    );
    expect(err.message).toContain(
      `git: the host key of ${sshd.host} does not match the one in ${wrongHosts}`,
    );
    expect(ms).toBeLessThan(FAST_FAILURE_MS);
  });
});
