#!/usr/bin/env node
// Ferry runs on the Node.js LTS the project pins (package.json "node"), not on
// whatever `node` the machine has. When started by an older one, re-exec the
// pinned binary so `ferry` behaves the same from a shell, npm scripts and CI.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error('ferry: Node.js 24 is required; run `npm ci` in', root);
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
// Ferry's daemons (bot, worker, watcher, node agent) are long-lived and wait on the network most of
// the time. V8's default young generation (up to 16 MiB per semi-space) is sized for allocation-heavy
// throughput, and the pages it grows into stay resident: with 1 MiB semi-spaces the bot and the
// worker keep about 25 MiB less RSS (bench/results/scale.md). It costs CPU where much is allocated at
// once — loading a 9,000-app config took 2.3 s of CPU instead of 1.7 s — so one-shot commands
// (`config check`, `explain`) keep V8's defaults. FERRY_V8_FLAGS replaces the setting ("" for none).
const DAEMONS = new Set(['bot', 'worker', 'watch', 'agent', 'start']);
const v8Flags =
  process.env.FERRY_V8_FLAGS ?? (DAEMONS.has(process.argv[2] ?? '') ? '--max-semi-space-size=1' : '');
if (v8Flags) (await import('node:v8')).setFlagsFromString(v8Flags);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
