#!/usr/bin/env node
// Ferry runs on the Node.js LTS the project pins (package.json "node"), not on
// whatever `node` the machine has. When started by an older one, re-exec the
// pinned binary so `ferry` behaves the same from a shell, npm scripts and CI.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(import.meta.url);
const root = join(dirname(script), '..');
const args = process.argv.slice(2);

// Ferry's daemons (bot, worker, watcher, node agent) are long-lived and wait on the network most of
// the time; their size is what a cluster pays for. Measured with the 9,000-app config (bench/scale.ts):
// - V8's default young generation (up to 16 MiB per semi-space) is sized for allocation-heavy
//   throughput, and the pages it grows into stay resident: 1 MiB semi-spaces keep about 25 MiB less.
// - --optimize-for-size grows the heap in smaller steps and keeps less compiled code: loading the
//   config leaves 121 MiB resident instead of 154.
// - glibc's malloc keeps what the parsers freed in per-thread arenas: two arenas that trim freed
//   memory back to the OS take 13 MiB more off.
// It costs CPU where much is allocated at once — loading the config took 2.3 s of CPU instead of 1.7 s —
// so one-shot commands (`config check`, `explain`) keep the defaults. FERRY_V8_FLAGS replaces the V8
// flags ("" for none); the malloc settings are ordinary environment variables a caller may set itself.
// warm-cache runs with the daemons' flags: V8 takes compiled code only from a cache made under the same flags.
const DAEMONS = new Set(['bot', 'worker', 'watch', 'agent', 'start', 'warm-cache']);
const daemon = DAEMONS.has(args[0] ?? '');
const v8Flags = (process.env.FERRY_V8_FLAGS ?? (daemon ? '--max-semi-space-size=1 --optimize-for-size' : ''))
  .split(/\s+/)
  .filter(Boolean);
const mallocEnv = daemon ? { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072' } : {};
const tuned = Object.entries(mallocEnv).every(([k, v]) => process.env[k] === v);

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error('ferry: Node.js 24 is required; run `npm ci` in', root);
    process.exit(1);
  }
  const r = spawnSync(pinned, [...v8Flags, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, ...mallocEnv },
  });
  process.exit(r.status ?? 1);
}
// malloc reads its settings when the process starts: a daemon started without them becomes itself
// again with them (the same pid, so supervisors and signals see one process).
if (!tuned && typeof process.execve === 'function')
  process.execve(process.execPath, [process.execPath, ...v8Flags, script, ...args], {
    ...process.env,
    ...mallocEnv,
  });
if (v8Flags.length > 0) (await import('node:v8')).setFlagsFromString(v8Flags.join(' '));
// Compiled code and the TypeScript sources with their types stripped, kept on disk ($NODE_COMPILE_CACHE,
// else the OS's temp dir): a start after the first neither strips types again nor loads the stripper
// (a WebAssembly module that stays resident, 12–17 MiB), and starts sooner. Nothing depends on it: an
// unwritable directory only means no cache.
module.enableCompileCache?.();
if (args[0] === 'warm-cache') {
  // Compiles every module of Ferry's (and what they import) into that cache, and stops. The image runs
  // it when it is built (deploy/image/Containerfile), so a pod's daemons, whose /tmp starts empty, load
  // compiled code from the first start and never the stripper; modules loaded later (the Kubernetes
  // client with the bot's first `logs`) find theirs too. A module that cannot be imported fails it,
  // except one that needs dev/, which the image leaves out (`ferry start`, with its Slack emulator).
  const { readdirSync } = await import('node:fs');
  const { pathToFileURL } = await import('node:url');
  const dev = pathToFileURL(join(root, 'dev')).href;
  let count = 0;
  const skipped = [];
  for (const dir of ['src', 'commands', 'jobs'])
    for (const file of readdirSync(join(root, dir), { recursive: true }).map(String).sort()) {
      if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
      try {
        await import(pathToFileURL(join(root, dir, file)).href);
        count++;
      } catch (err) {
        if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.url ?? '').startsWith(dev)) throw err;
        skipped.push(`${dir}/${file}`);
      }
    }
  module.flushCompileCache?.();
  console.error(
    `ferry warm-cache: ${count} modules, cache in ${module.getCompileCacheDir?.() ?? '(none)'}${skipped.length ? `; skipped (they need dev/, not installed): ${skipped.join(', ')}` : ''}`,
  );
  process.exit(0);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(args);
