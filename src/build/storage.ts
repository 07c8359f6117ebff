// Which buildah storage driver a cache dir uses. overlay shares a layer
// between the images built on it (a commit is a diff, a RUN mounts the
// layers); vfs copies the whole root fs for every layer, which makes a
// `--layers` build of many steps several times slower. "auto" (the config's
// default) takes overlay when buildah can set it up on this kernel and this
// file system — asked of buildah itself, on the cache's own overlay storage —
// and falls back to vfs otherwise, logging the reason once.

import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export type StorageDriver = 'vfs' | 'overlay';
export type StorageChoice = StorageDriver | 'auto';

export interface StorageDecision {
  driver: StorageDriver;
  /** Why vfs, when overlay was wanted or allowed. */
  fallbackReason?: string;
}

const decisions = new Map<string, Promise<StorageDecision>>();

/** Storage flags shared by every buildah call of a cache dir. */
export function storageArgs(cacheDir: string, driver: StorageDriver = 'vfs'): string[] {
  return [
    '--root',
    join(resolve(cacheDir), 'storage', driver, 'root'),
    '--runroot',
    join(resolve(cacheDir), 'storage', driver, 'run'),
    '--storage-driver',
    driver,
  ];
}

/**
 * The driver for `cacheDir`: `choice` itself unless "auto"; for "auto",
 * overlay when `buildah info` can initialise it there, else vfs with the
 * reason. Asked once per cache dir and process.
 */
export function chooseStorageDriver(
  cacheDir: string,
  choice: StorageChoice,
  opts: { buildah?: string; onFallback?: (reason: string) => void } = {},
): Promise<StorageDecision> {
  if (choice !== 'auto') return Promise.resolve({ driver: choice });
  const key = resolve(cacheDir);
  let d = decisions.get(key);
  if (!d) {
    d = probeOverlay(key, opts.buildah ?? 'buildah');
    decisions.set(key, d);
    void d.then((r) => r.fallbackReason && opts.onFallback?.(r.fallbackReason));
  }
  return d;
}

async function probeOverlay(cacheDir: string, buildah: string): Promise<StorageDecision> {
  try {
    const st = storageArgs(cacheDir, 'overlay');
    await mkdir(st[1] as string, { recursive: true });
    const { stdout } = await exec(buildah, [...st, 'info', '--format', '{{.store.GraphDriverName}}'], {
      timeout: 30_000,
    });
    if (stdout.trim() === 'overlay') return { driver: 'overlay' };
    return {
      driver: 'vfs',
      fallbackReason: `buildah reports the ${stdout.trim() || 'unknown'} driver, not overlay`,
    };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr || e.message).trim().split('\n').at(-1) ?? e.message;
    return { driver: 'vfs', fallbackReason: `overlay storage unavailable here (${why.slice(0, 300)})` };
  }
}
