// The store's atomic changes: each one Lua script in scripts/<name>.lua (shipped beside this file — the
// image copies src/ as it is), registered on a connection with ioredis' defineCommand, so Redis runs
// it by SHA (EVALSHA, falling back to EVAL once) and every key it touches is passed in KEYS, as Redis
// Cluster and proxies need. No WATCH/MULTI: a WATCH on a shared connection is silently released by
// another caller's MULTI.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export interface StoreScript {
  /** The file name under scripts/ without `.lua`; also the command name on the connection. */
  name: string;
  /** How many of the arguments are keys (the script's KEYS). */
  keys: number;
  /** The folder of the .lua file, for scripts of other parts (default: this folder's scripts/). */
  dir?: URL;
}

export const SCRIPTS = {
  createRelease: { name: 'create-release', keys: 5 },
  commitRelease: { name: 'commit-release', keys: 8 },
  patchRelease: { name: 'patch-release', keys: 1 },
  acquireLock: { name: 'acquire-lock', keys: 4 },
  updateVersion: { name: 'update-version', keys: 2 },
  acquireOperation: { name: 'acquire-operation', keys: 5 },
  releaseOperation: { name: 'release-operation', keys: 4 },
  releaseMutex: { name: 'release-mutex', keys: 1 },
} as const satisfies Record<string, StoreScript>;

const sources = new Map<string, string>();

/** The script's source, read once. */
export function scriptSource(s: StoreScript): string {
  let lua = sources.get(s.name);
  if (lua === undefined) {
    lua = readFileSync(new URL(`${s.name}.lua`, s.dir ?? new URL('./scripts/', import.meta.url)), 'utf8');
    sources.set(s.name, lua);
  }
  return lua;
}

type Command = (...args: (string | number)[]) => Promise<unknown>;

/** Runs a store script on `redis` with its keys and arguments (defining it on that connection first). */
export function runScript(
  redis: Redis,
  s: StoreScript,
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  if (keys.length !== s.keys) throw new Error(`${s.name}: ${keys.length} keys given, ${s.keys} declared`);
  const commands = redis as unknown as Record<string, Command | undefined>;
  if (typeof commands[s.name] !== 'function') {
    redis.defineCommand(s.name, { numberOfKeys: s.keys, lua: scriptSource(s) });
  }
  return (commands[s.name] as Command).call(redis, ...keys, ...args);
}
