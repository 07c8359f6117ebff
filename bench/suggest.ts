// "Did you mean …?" at 9,000 app names: Ferry's indexed search (src/domain/suggest.ts: by length, shared bigrams, a
// character-count bound, a sorted list for prefixes) against scoring every name with the same
// Levenshtein library, in the same run, over the same typos. Target (issue 17): under 5 ms each.
//
//   node bench/suggest.ts → bench/results/suggest.json and suggest.md
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { distance } from 'fastest-levenshtein';
import { closestKey } from '../src/domain/suggest.ts';

const N = 9000;
const teams = ['pay', 'ledger', 'search', 'ads', 'identity', 'mail', 'risk', 'growth', 'core', 'data'];
const parts = ['api', 'worker', 'gateway', 'sync', 'web', 'cron', 'indexer', 'export', 'billing', 'auth'];
const known: string[] = [];
for (let i = 0; known.length < N; i++) {
  const name = `${teams[i % teams.length]}-${parts[Math.floor(i / teams.length) % parts.length]}-${(i * 7919).toString(36)}`;
  if (!known.includes(name)) known.push(name);
}
const apps = Object.fromEntries(known.map((n) => [n, {}]));
// A swap, a drop, a change and a prefix of every 45th name: 800 words.
const words = known
  .filter((_, i) => i % 45 === 0)
  .flatMap((name, i) => {
    const k = 1 + (i % (name.length - 2));
    return [
      name.slice(0, k) + (name[k + 1] ?? '') + (name[k] ?? '') + name.slice(k + 2),
      name.slice(0, k) + name.slice(k + 1),
      `${name.slice(0, k)}x${name.slice(k + 1)}`,
      name.slice(0, Math.max(3, k)),
    ];
  });

/** The reference: the distance to every name, the nearest three. */
const everyName = (w: string) =>
  known
    .map((n) => ({ n, d: distance(w.toLowerCase(), n.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, 3);

function timeEach(fn: (w: string) => unknown): { p50: number; p95: number; mean: number } {
  const ms: number[] = [];
  for (const w of words) {
    const t0 = performance.now();
    fn(w);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] as number;
  return { p50: at(0.5), p95: at(0.95), mean: ms.reduce((a, b) => a + b, 0) / ms.length };
}

const t0 = performance.now();
closestKey('warm-up', apps); // the index is built once per config
const indexMs = performance.now() - t0;
for (const w of words.slice(0, 50)) everyName(w); // JIT warm-up for the reference too
const ferry = timeEach((w) => closestKey(w, apps));
const reference = timeEach(everyName);
const result = {
  at: new Date().toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model ?? 'unknown', load: loadavg() },
  names: N,
  words: words.length,
  indexMs,
  ferry,
  reference,
  targetMs: 5,
};
const dir = join(import.meta.dirname, 'results');
writeFileSync(join(dir, 'suggest.json'), `${JSON.stringify(result, null, 2)}\n`);
const f = (x: number) => x.toFixed(2);
writeFileSync(
  join(dir, 'suggest.md'),
  [
    '# Typo suggestions at 9,000 names',
    '',
    `Run ${result.at}, ${result.machine.cores} cores, load ${result.machine.load.map((l) => l.toFixed(1)).join(' / ')}. ${words.length} typos (swap, drop, change, prefix) of ${N} generated app names; the index is built once per config (${f(indexMs)} ms).`,
    '',
    '| search | p50 ms | p95 ms | mean ms |',
    '| --- | ---: | ---: | ---: |',
    `| Ferry (indexed: length, bigrams, character counts, sorted prefixes) | ${f(ferry.p50)} | ${f(ferry.p95)} | ${f(ferry.mean)} |`,
    `| every name scored with fastest-levenshtein | ${f(reference.p50)} | ${f(reference.p95)} | ${f(reference.mean)} |`,
    '',
    `Target: under 5 ms each — ${ferry.p95 < 5 ? 'met' : 'not met'} at p95.`,
    '',
  ].join('\n'),
);
console.log(readableSummary());
function readableSummary() {
  return `suggest: Ferry p50 ${f(ferry.p50)} / p95 ${f(ferry.p95)} ms; every name p50 ${f(reference.p50)} / p95 ${f(reference.p95)} ms`;
}
