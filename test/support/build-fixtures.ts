// Fixtures for the builder's tests and benchmark: a real docker-registry on a
// random port, a tiny busybox base image built with buildah from scratch, a
// git repository with tagged versions, and a host package dir.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const BUSYBOX = '/bin/busybox';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ferry-${prefix}-`));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  url: string;
  host: string;
  dir: string;
  /** Bytes stored under the registry's root directory. */
  storageBytes(): Promise<number>;
  stop(): Promise<void>;
}

export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    const st = await stat(join(e.parentPath, e.name)).catch(() => undefined);
    total += st?.size ?? 0;
  }
  return total;
}

/** Starts /usr/bin/docker-registry on 127.0.0.1:<random> with a temp root. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = await tempDir('registry');
  const data = join(dir, 'data');
  await mkdir(data);
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${data}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const logStream = createWriteStream(join(dir, 'registry.log'));
    const child: ChildProcess = spawn('docker-registry', ['serve', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(logStream);
    child.stderr?.pipe(logStream);
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && !exited; i++) {
      const ok = await fetch(`${url}/v2/`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) {
        return {
          url,
          host: `127.0.0.1:${port}`,
          dir: data,
          storageBytes: () => dirBytes(data),
          stop: async () => {
            if (!exited) {
              const done = new Promise((r) => child.once('exit', r));
              child.kill('SIGTERM');
              await done;
            }
            await rm(dir, { recursive: true, force: true });
          },
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!exited) child.kill('SIGKILL');
  }
  throw new Error('docker-registry did not start');
}

export function storage(dir: string): string[] {
  return ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs'];
}

async function buildah(store: string, args: string[]): Promise<string> {
  const { stdout } = await exec('buildah', [...storage(store), ...args], { maxBuffer: 64 << 20 });
  return stdout.trim();
}

/**
 * A one-layer base image: busybox-static with applet symlinks and
 * /etc/base-release = `marker`. Built from scratch, committed with
 * --timestamp 0 and pushed to `image` (host/repo:tag).
 */
export async function buildBusyboxBase(opts: {
  image: string;
  marker: string;
  storeDir: string;
  extra?: Record<string, string | Buffer>;
  /** A containers auth.json for a registry that wants credentials. */
  authfile?: string;
}): Promise<void> {
  const ctr = await buildah(opts.storeDir, ['from', 'scratch']);
  try {
    const mnt = await buildah(opts.storeDir, ['mount', ctr]);
    for (const d of ['bin', 'etc', 'tmp', 'usr/local/bin', 'opt'])
      await mkdir(join(mnt, d), { recursive: true });
    await chmod(join(mnt, 'tmp'), 0o1777);
    await exec('cp', [BUSYBOX, join(mnt, 'bin/busybox')]);
    for (const applet of [
      'sh',
      'ls',
      'cat',
      'echo',
      'mkdir',
      'which',
      'env',
      'test',
      'stat',
      'rm',
      'cp',
      'sleep',
      'head',
      'dd',
      'sha256sum',
      'true',
      'false',
      'wc',
      'tr',
      'gzip',
    ]) {
      await symlink('busybox', join(mnt, 'bin', applet));
    }
    await writeFile(join(mnt, 'etc/base-release'), opts.marker + '\n');
    for (const [p, c] of Object.entries(opts.extra ?? {})) {
      await mkdir(join(mnt, p, '..'), { recursive: true });
      await writeFile(join(mnt, p), c);
    }
    await buildah(opts.storeDir, ['config', '--env', 'PATH=/usr/local/bin:/bin', '--cmd', '/bin/sh', ctr]);
    await buildah(opts.storeDir, ['commit', '--timestamp', '0', ctr, opts.image]);
    const auth = opts.authfile ? ['--authfile', opts.authfile] : [];
    await buildah(opts.storeDir, [
      'push',
      ...auth,
      '--tls-verify=false',
      opts.image,
      `docker://${opts.image}`,
    ]);
  } finally {
    await buildah(opts.storeDir, ['rm', ctr]).catch(() => '');
  }
}

async function git(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await exec(
    'git',
    [
      '-c',
      'user.name=Ferry Test',
      '-c',
      'user.email=ferry@example.invalid',
      '-c',
      'init.defaultBranch=main',
      ...args,
    ],
    {
      cwd,
      env: {
        ...process.env,
        GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
        GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
        ...env,
      },
    },
  );
  return stdout.trim();
}

export function appDockerfile(base: string, extraRun = ''): string {
  return [
    `FROM ${base}`,
    'WORKDIR /app',
    'COPY . /app',
    'RUN sh /app/build.sh',
    ...(extraRun ? [extraRun] : []),
    'CMD ["/bin/sh", "/app/start.sh"]',
    '',
  ].join('\n');
}

export interface AppRepo {
  dir: string;
  tags: string[];
}

/**
 * A git repo whose Dockerfile is `FROM <base>`: tag v1, tag v2 (changed
 * source), tag broken-run (a RUN that fails), tag bad-dockerfile (unknown
 * instruction). `payloadBytes` of pseudo-random (incompressible) data makes
 * the app layer a realistic size for the benchmark.
 */
export async function makeAppRepo(dir: string, base: string, payloadBytes = 4096): Promise<AppRepo> {
  await mkdir(dir, { recursive: true });
  await git(dir, ['init', '-q']);
  await writeFile(join(dir, 'Dockerfile'), appDockerfile(base));
  await writeFile(
    join(dir, 'build.sh'),
    [
      'set -e',
      'mkdir -p /app/out',
      'cat /app/src/*.txt > /app/out/bundle.txt',
      'echo "built on $(cat /etc/base-release)" > /app/out/build-info.txt',
      '',
    ].join('\n'),
  );
  await writeFile(join(dir, 'start.sh'), 'echo started; cat /app/out/bundle.txt\n');
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src/main.txt'), 'hello from v1\n');
  await writeFile(join(dir, 'payload.bin'), pseudoRandom(payloadBytes, 1));
  await writeFile(join(dir, '.dockerignore'), 'README.md\n');
  await writeFile(join(dir, 'README.md'), 'fixture app\n');
  await git(dir, ['add', '.']);
  await git(dir, ['commit', '-q', '-m', 'v1']);
  await git(dir, ['tag', '-a', 'v1', '-m', 'v1']);

  await writeFile(join(dir, 'src/main.txt'), 'hello from v2\n');
  await git(dir, ['commit', '-q', '-am', 'v2']);
  await git(dir, ['tag', 'v2']);

  await writeFile(
    join(dir, 'Dockerfile'),
    // The failing step prints a credential, as a misconfigured build script does: the log Ferry posts
    // must not show it.
    appDockerfile(
      base,
      'RUN echo "compiling..."; echo "fetching deps from https://ci:Bu1ld-S3cret@deps.example.com/repo" >&2; echo "error: missing symbol" >&2; exit 3',
    ),
  );
  await git(dir, ['commit', '-q', '-am', 'broken run']);
  await git(dir, ['tag', 'broken-run']);

  await writeFile(join(dir, 'Dockerfile'), `FROM ${base}\nCOPY . /app\nFROBNICATE /app\n`);
  await git(dir, ['commit', '-q', '-am', 'bad dockerfile']);
  await git(dir, ['tag', 'bad-dockerfile']);
  await git(dir, ['checkout', '-q', 'v2']);
  await git(dir, ['checkout', '-q', '-B', 'main']);
  return { dir, tags: ['v1', 'v2', 'broken-run', 'bad-dockerfile'] };
}

/** Deterministic incompressible bytes (xorshift). */
export function pseudoRandom(n: number, seed: number): Buffer {
  const buf = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

/**
 * A host package dir with bundles:
 *  - testtools: /usr/local/bin/pytest-lite, /opt/testtools/VERSION
 *  - debugtools: /usr/local/bin/dbg
 *  - monitoring: /opt/monitoring/agent.conf
 */
export async function makePackageDir(dir: string, sizes: Record<string, number> = {}): Promise<string> {
  const script = async (p: string, body: string) => {
    await mkdir(join(p, '..'), { recursive: true });
    await writeFile(p, `#!/bin/sh\n${body}\n`);
    await chmod(p, 0o755);
  };
  await script(join(dir, 'testtools/usr/local/bin/pytest-lite'), 'echo "pytest-lite 1.0: 3 passed"');
  await mkdir(join(dir, 'testtools/opt/testtools'), { recursive: true });
  await writeFile(join(dir, 'testtools/opt/testtools/VERSION'), '1.0\n');
  await script(join(dir, 'debugtools/usr/local/bin/dbg'), 'echo "dbg ready"');
  await mkdir(join(dir, 'monitoring/opt/monitoring'), { recursive: true });
  await writeFile(join(dir, 'monitoring/opt/monitoring/agent.conf'), 'interval=10s\n');
  let seed = 100;
  for (const [name, bytes] of Object.entries(sizes)) {
    await mkdir(join(dir, name, 'opt', name), { recursive: true });
    await writeFile(join(dir, name, 'opt', name, 'blob.bin'), pseudoRandom(bytes, seed++));
  }
  return dir;
}

/** A buildah wrapper that records every invocation's arguments. */
export async function countingBuildah(dir: string): Promise<{ path: string; budCount(): Promise<number> }> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'buildah-counting');
  const calls = join(dir, 'calls.log');
  await writeFile(path, `#!/bin/sh\necho "$*" >> '${calls}'\nexec buildah "$@"\n`);
  await chmod(path, 0o755);
  return {
    path,
    budCount: async () => {
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(calls, 'utf8').catch(() => '');
      return text.split('\n').filter((l) => / bud /.test(` ${l} `)).length;
    },
  };
}

/** Runs a command inside an image (buildah from + run), returning stdout and exit code. */
export async function runInImage(
  storageArgs: string[],
  image: string,
  cmd: string[],
): Promise<{ code: number; stdout: string }> {
  const { stdout: ctrOut } = await exec('buildah', [...storageArgs, 'from', '--pull=never', image]);
  const ctr = ctrOut.trim().split('\n').pop()!;
  try {
    const { stdout } = await exec('buildah', [
      ...storageArgs,
      'run',
      '--isolation',
      'chroot',
      ctr,
      '--',
      ...cmd,
    ]);
    return { code: 0, stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '' };
  } finally {
    await exec('buildah', [...storageArgs, 'rm', ctr]).catch(() => undefined);
  }
}

/** Lists the paths inside a gzip'd layer blob fetched from the registry. */
export async function layerPaths(registryUrl: string, repository: string, digest: string): Promise<string[]> {
  const res = await fetch(`${registryUrl}/v2/${repository}/blobs/${digest}`);
  if (!res.ok) throw new Error(`blob ${digest}: HTTP ${res.status}`);
  const buf = Buffer.from(await res.arrayBuffer());
  const { gunzipSync } = await import('node:zlib');
  const tar = gunzipSync(buf);
  const paths: string[] = [];
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const str = (a: number, b: number) => header.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const name = str(0, 100);
    const prefix = str(345, 500);
    const size = Number.parseInt(str(124, 136).trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const dataStart = off + 512;
    if (type === 'L') {
      longName = tar
        .subarray(dataStart, dataStart + size)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    } else if (type === 'x' || type === 'g') {
      const pax = tar.subarray(dataStart, dataStart + size).toString('utf8');
      const m = /\d+ path=([^\n]*)\n/.exec(pax);
      if (m && type === 'x') longName = m[1];
    } else {
      paths.push((longName ?? (prefix ? `${prefix}/${name}` : name)).replace(/^\.?\//, ''));
      longName = undefined;
    }
    off = dataStart + Math.ceil(size / 512) * 512;
  }
  return paths;
}
