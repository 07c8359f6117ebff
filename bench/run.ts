// `npm run bench`: every benchmark, one after another on the same machine,
// each comparing Ferry with the reference tool in the same run. Each writes
// bench/results/<name>.json and .md; this collects their summaries into
// bench/results/README.md. `npm run bench -- sync build` runs a subset.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';

const dir = import.meta.dirname;
const all = ['sync', 'build', 'ack', 'deploy', 'oom', 'analysis', 'config', 'suggest'];
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : all;
const ran: { name: string; ok: boolean; seconds: number }[] = [];

for (const name of wanted) {
  const file = join(dir, `${name}.ts`);
  if (!existsSync(file)) continue;
  console.error(`== bench ${name}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit' });
  ran.push({ name, ok: r.status === 0, seconds: Math.round((Date.now() - t0) / 1000) });
}

const sections = all
  .filter((n) => existsSync(join(dir, 'results', `${n}.md`)))
  .map((n) => readFileSync(join(dir, 'results', `${n}.md`), 'utf8').trim());
writeFileSync(
  join(dir, 'results', 'README.md'),
  [
    '# Benchmark figures',
    '',
    `Collected ${new Date().toISOString()} on ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')}.`,
    `This run: ${ran.map((r) => `${r.name} ${r.ok ? 'ok' : 'FAILED'} (${r.seconds}s)`).join(', ') || 'nothing'}.`,
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n'),
);
process.exitCode = ran.every((r) => r.ok) ? 0 : 1;
