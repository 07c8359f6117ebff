// The builder against a primary registry that wants credentials: docker-registry
// with htpasswd, and with token auth as Harbor's robot accounts use it. The
// base image is pulled from, and the app image pushed to, that registry.

import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildVariantRequest, buildVariant } from '../../src/build/builder.ts';
import { BuildFailed } from '../../src/build/errors.ts';
import { type BuildRegistry, getManifest } from '../../src/build/registry-client.ts';
import { UnauthorizedError } from '../../src/registry/errors.ts';
import { buildBusyboxBase, makeAppRepo, tempDir } from '../support/build-fixtures.ts';
import { type StartedRegistry, startRegistry } from '../support/registry.ts';

const hostOf = (url: string) => new URL(url).host;
const USER = 'ferry';
/** Harbor robot accounts are named like this. */
const ROBOT = 'robot$ferry-builds';

let work: string;
let basic: StartedRegistry;
let token: StartedRegistry;
let password: string;
let robotSecret: string;
let cacheCount = 0;

async function authfile(name: string, host: string, user: string, pass: string): Promise<string> {
  const file = join(work, `${name}.auth.json`);
  const auth = Buffer.from(`${user}:${pass}`).toString('base64');
  await writeFile(file, JSON.stringify({ auths: { [host]: { auth } } }), { mode: 0o600 });
  return file;
}

beforeAll(async () => {
  work = await tempDir('build-registry-auth');
  password = `pw-${randomBytes(10).toString('hex')}`;
  robotSecret = `robot-${randomBytes(10).toString('hex')}`;
  basic = await startRegistry({ htpasswd: { [USER]: password } });
  token = await startRegistry({ token: { users: { [ROBOT]: robotSecret } } });
  // The base lives in each authenticated registry, as a stack lives in the primary.
  await buildBusyboxBase({
    image: `${hostOf(basic.url)}/fixture/base:1`,
    marker: 'base 1',
    storeDir: join(work, 'store'),
    authfile: await authfile('basic', hostOf(basic.url), USER, password),
  });
  await buildBusyboxBase({
    image: `${hostOf(token.url)}/fixture/base:1`,
    marker: 'base 1',
    storeDir: join(work, 'store'),
    authfile: await authfile('token', hostOf(token.url), ROBOT, robotSecret),
  });
}, 300_000);

afterAll(async () => {
  await basic?.stop();
  await token?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const repos = new Map<string, Promise<string>>();
/** An app repo whose Dockerfile starts FROM the base in `registry` (one per registry). */
function repoFor(registry: StartedRegistry): Promise<string> {
  const host = hostOf(registry.url);
  let r = repos.get(host);
  if (!r) {
    r = makeAppRepo(join(work, `repo-${host.replace(/\W/g, '_')}`), `${host}/fixture/base:1`).then(
      (x) => x.dir,
    );
    repos.set(host, r);
  }
  return r;
}

async function request(
  registry: BuildRegistry,
  repoDir: string,
  version: string,
): Promise<BuildVariantRequest> {
  return {
    app: 'payments',
    version,
    ref: 'v1',
    repoUrl: repoDir,
    envName: 'prod',
    tail: { env: { FERRY_ENV: 'prod' } },
    registry,
    repository: 'apps/payments',
    cacheDir: join(work, `cache-${++cacheCount}`),
  };
}

async function noAuthFilesLeft(cacheDir: string): Promise<void> {
  const left = await readdir(join(cacheDir, 'tmp')).catch(() => []);
  expect(left.filter((n) => n.startsWith('auth-'))).toEqual([]);
}

describe('push to an authenticated primary', () => {
  it('htpasswd: pulls the base and pushes the image with the credentials, and leaves no auth file', async () => {
    const reg: BuildRegistry = { url: basic.url, insecure: true, username: USER, password };
    const req = await request(reg, await repoFor(basic), 'v1');
    const lines: string[] = [];
    const r = await buildVariant({ ...req, onLog: (l) => lines.push(l) });
    expect(r.cached).toBe(false);
    expect((await getManifest(reg, 'apps/payments', 'v1-prod'))?.digest).toBe(r.digest);
    // The registry really wants credentials.
    await expect(
      getManifest({ url: basic.url, insecure: true }, 'apps/payments', 'v1-prod'),
    ).rejects.toBeInstanceOf(UnauthorizedError);
    await noAuthFilesLeft(req.cacheDir);
    const log = await readFile(r.logPath, 'utf8');
    expect(log).not.toContain(password);
    expect(lines.join('\n')).not.toContain(password);
  });

  it('htpasswd: a wrong password is a clear failure naming the registry, without the password', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const reg: BuildRegistry = {
      url: basic.url,
      insecure: true,
      username: USER,
      password: wrong,
      passwordSource: '$PRIMARY_REGISTRY_PASSWORD',
    };
    const req = await request(reg, await repoFor(basic), 'v2');
    const t0 = performance.now();
    const err = (await buildVariant(req).catch((e: unknown) => e)) as BuildFailed;
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.code).toBe('REGISTRY_FAILED');
    expect(err.message).toContain(
      `registry ${hostOf(basic.url)} refused the credentials for user "ferry" — check the password in $PRIMARY_REGISTRY_PASSWORD`,
    );
    expect(err.message).not.toContain(wrong);
    expect(await readFile(err.logPath, 'utf8')).not.toContain(wrong);
    expect(performance.now() - t0).toBeLessThan(10_000);
    await noAuthFilesLeft(req.cacheDir);
  });

  it('no credentials for a registry that wants them says so', async () => {
    const req = await request({ url: basic.url, insecure: true }, await repoFor(basic), 'v3');
    const err = (await buildVariant(req).catch((e: unknown) => e)) as BuildFailed;
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.message).toContain(
      `registry ${hostOf(basic.url)} refused anonymous access — it needs credentials`,
    );
  });

  it('a password variable that is not set is named', async () => {
    const req = await request(
      { url: basic.url, insecure: true, username: USER, passwordSource: '$PRIMARY_REGISTRY_PASSWORD' },
      await repoFor(basic),
      'v4',
    );
    const err = (await buildVariant(req).catch((e: unknown) => e)) as BuildFailed;
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.message).toContain(
      `no password for user "ferry" of registry ${hostOf(basic.url)}: $PRIMARY_REGISTRY_PASSWORD is not set`,
    );
  });

  it('token auth with a robot account: pulls and pushes through bearer tokens', async () => {
    const reg: BuildRegistry = { url: token.url, insecure: true, username: ROBOT, password: robotSecret };
    const req = await request(reg, await repoFor(token), 'v1');
    const r = await buildVariant(req);
    expect(r.cached).toBe(false);
    expect((await getManifest(reg, 'apps/payments', 'v1-prod'))?.digest).toBe(r.digest);
    expect(token.tokenIssuer?.issued.scopes).toEqual(
      expect.arrayContaining(['repository:apps/payments:pull,push']),
    );
    expect(await readFile(r.logPath, 'utf8')).not.toContain(robotSecret);
  });
});
