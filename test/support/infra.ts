// Test helper for Ferry's local real infrastructure (infra/infra.sh).
//
//   const info = await ensureInfra(['redis', 'registries']);   // idempotent
//   const ns = await newNamespace('eu-west');                 // own namespace
//   await kubectl('eu-west', ['-n', ns.name, 'get', 'pods']);
//   const prefix = registryPrefix();                          // own repo prefix
//
// `ensureInfra` runs `infra/infra.sh check <components>` and, unless all of
// them already run, `infra/infra.sh up <components>` — at most once per
// process (the script is idempotent and serialises concurrent callers with a
// lock, so several test files and workers can call it safely), then reads
// $FERRY_RUN_DIR/infra.json and exports REDIS_URL and KUBECONFIG.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Component = 'redis' | 'registries' | 'images' | 'k8s';
export type Region = 'eu-west' | 'us-east';

export const REGIONS: readonly Region[] = ['eu-west', 'us-east'];
export const ALL_COMPONENTS: readonly Component[] = ['redis', 'registries', 'images', 'k8s'];

export interface ClusterInfo {
  context: string;
  server: string;
  node: string;
  nodeIP: string;
  cgroupRoot: string;
  containerdSocket: string;
  podLogsDir: string;
}

export interface InfraInfo {
  version: number;
  cacheDir: string;
  runDir: string;
  components: Component[];
  redis: { url: string; port: number };
  registries: {
    primary: string;
    regions: Record<Region, string>;
    proxyRegion: Region | null;
    insecure: boolean;
  };
  images: {
    pause: string;
    base: string;
    stack: string;
    sampleApp: { repo: string; image: string; tags: string[] };
  };
  kubernetes: {
    version: string;
    etcdVersion: string;
    /** wall-clock seconds of the cold `go build` of the cached binaries, if recorded */
    coldBuildSeconds: number | null;
    kubeconfig: string;
    kubectl: string;
    contexts: Record<Region, ClusterInfo>;
  };
  envFile: string;
}

const here = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(here, '..', '..');
export const INFRA_SH = join(REPO_ROOT, 'infra', 'infra.sh');

export function runDir(): string {
  const cache = process.env.FERRY_CACHE ?? join(homedir(), '.cache', 'ferry');
  return process.env.FERRY_RUN_DIR ?? join(cache, 'run');
}

const upRuns = new Map<string, Promise<InfraInfo>>();
let current: InfraInfo | undefined;

/** Start (or confirm) the given components; returns infra.json's content. */
export function ensureInfra(components: readonly Component[] = ALL_COMPONENTS): Promise<InfraInfo> {
  const key = [...components].sort().join(',');
  let pending = upRuns.get(key);
  if (!pending) {
    pending = (async () => {
      // `check` is cheap (pids only) and waits for a concurrent up/down;
      // `up` only when something is not running
      const check = await run('bash', [INFRA_SH, 'check', ...components], {
        allowFail: true,
        timeoutMs: 3_600_000,
      });
      if (check.code !== 0) await runInfraSh(['up', ...components]);
      return loadInfo();
    })();
    upRuns.set(key, pending);
    pending.catch(() => upRuns.delete(key));
  }
  return pending;
}

/** infra.json as last loaded by ensureInfra (throws if it never ran). */
export function infra(): InfraInfo {
  if (!current) throw new Error('ensureInfra() has not completed in this process');
  return current;
}

export function loadInfo(): InfraInfo {
  const file = join(runDir(), 'infra.json');
  if (!existsSync(file)) throw new Error(`${file} missing: run infra/infra.sh up`);
  const info = JSON.parse(readFileSync(file, 'utf8')) as InfraInfo;
  current = info;
  process.env.REDIS_URL ??= info.redis.url;
  process.env.KUBECONFIG = info.kubernetes.kubeconfig;
  return info;
}

function runInfraSh(args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const started = Date.now();
    const child = spawn('bash', [INFRA_SH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const collect = (b: Buffer) => {
      out += b.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise();
      else
        reject(
          new Error(
            `infra/infra.sh ${args.join(' ')} failed (exit ${code}) after ${Math.round((Date.now() - started) / 1000)}s:\n${out.slice(-6000)}`,
          ),
        );
    });
  });
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** resolve with the exit code instead of throwing on failure */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Run a program; throws (with stderr) on a non-zero exit unless allowFail. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      cmd,
      [...args],
      {
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, ...opts.env },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && !opts.allowFail) {
          reject(
            new Error(
              `${cmd} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${stderr || stdout}`,
            ),
          );
          return;
        }
        resolvePromise({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** kubectl against one region's cluster, with exit code and stderr. */
export function kubectlRun(
  context: Region | string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<ExecResult> {
  const info = current ?? loadInfo();
  return run(
    info.kubernetes.kubectl,
    ['--kubeconfig', info.kubernetes.kubeconfig, '--context', context, ...args],
    opts,
  );
}

/** kubectl against one region's cluster; resolves with stdout, throws on failure. */
export async function kubectl(
  context: Region | string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<string> {
  return (await kubectlRun(context, args, opts)).stdout;
}

export async function kubectlJson<T = unknown>(
  context: Region | string,
  args: readonly string[],
): Promise<T> {
  return JSON.parse(await kubectl(context, [...args, '-o', 'json'])) as T;
}

export interface TestNamespace {
  name: string;
  context: Region;
  /** delete the namespace (does not wait for finalisation) */
  remove(): Promise<void>;
}

function uniqueSuffix(): string {
  const worker = process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? String(process.pid);
  return `${worker}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A fresh namespace for one test, ready for pods (default ServiceAccount present). */
export async function newNamespace(context: Region, prefix = 't'): Promise<TestNamespace> {
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 20);
  const name = `${clean}-${uniqueSuffix()}`.slice(0, 63).replace(/-+$/, '');
  await kubectl(context, ['create', 'namespace', name]);
  await kubectl(context, ['label', 'namespace', name, 'ferry.dev/test=true']);
  await waitFor(
    async () =>
      (
        await kubectlRun(
          context,
          ['-n', name, 'get', 'serviceaccount/default', 'configmap/kube-root-ca.crt'],
          {
            allowFail: true,
          },
        )
      ).code === 0,
    { timeoutMs: 60_000, what: `default ServiceAccount in ${context}/${name}` },
  );
  return {
    name,
    context,
    remove: async () => {
      await kubectl(context, ['delete', 'namespace', name, '--wait=false', '--ignore-not-found']);
    },
  };
}

/** A unique repository prefix, e.g. "test/3-lx2k9a-1f2e3d", for one test's images. */
export function registryPrefix(prefix = 'test'): string {
  return `${prefix}/${uniqueSuffix()}`;
}

/** Copy an image between the local registries (all plain HTTP). */
export async function skopeoCopy(src: string, dst: string, extra: readonly string[] = []): Promise<void> {
  await run(
    'skopeo',
    [
      'copy',
      '-q',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      ...extra,
      `docker://${src}`,
      `docker://${dst}`,
    ],
    { timeoutMs: 300_000 },
  );
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/** Poll until fn returns a truthy value; resolves with it. */
export async function waitFor<T>(fn: () => Promise<T> | T, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}
