// Typo suggestions over 9,000 app names: the indexed search gives what a
// distance to every name gives, and fast.
import { distance } from 'fastest-levenshtein';
import { describe, expect, it } from 'vitest';
import { appsWithPrefix, closest, closestKey } from '../../src/domain/suggest.ts';

/** The plain definition: every name scored, sorted. */
function reference(word: string, known: readonly string[], max = 3): string[] {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(w.length / 3));
  return known
    .map((name) => {
      const d = distance(w, name.toLowerCase());
      const score = name.toLowerCase().startsWith(w) && w.length >= 3 ? Math.min(d, 1) : d;
      return { name, score };
    })
    .filter((c) => c.score <= limit)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, max)
    .map((c) => c.name);
}

/** 9,000 names shaped like real ones: team-service-role, of varied lengths. */
function names(n: number): string[] {
  const teams = ['pay', 'ledger', 'search', 'ads', 'identity', 'mail', 'risk', 'growth', 'core', 'data'];
  const parts = ['api', 'worker', 'gateway', 'sync', 'web', 'cron', 'indexer', 'export', 'billing', 'auth'];
  const out = new Set<string>();
  for (let i = 0; out.size < n; i++) {
    const t = teams[i % teams.length];
    const p = parts[Math.floor(i / teams.length) % parts.length];
    out.add(`${t}-${p}-${(i * 7919).toString(36)}`);
  }
  return [...out];
}

/** A few typos of a name: a swap, a drop, a change, a prefix. */
function typos(name: string, i: number): string[] {
  const k = 1 + (i % (name.length - 2));
  return [
    name.slice(0, k) + (name[k + 1] ?? '') + (name[k] ?? '') + name.slice(k + 2),
    name.slice(0, k) + name.slice(k + 1),
    `${name.slice(0, k)}x${name.slice(k + 1)}`,
    name.slice(0, Math.max(3, k)),
  ];
}

describe('suggestions at 9,000 names', () => {
  const known = names(9000);
  const apps = Object.fromEntries(known.map((n) => [n, {}]));

  it('are the same as scoring every name', () => {
    const words = known.filter((_, i) => i % 600 === 0).flatMap((n, i) => typos(n, i));
    words.push('zzzzzz', 'pa', 'ledger-api', 'PAY-API', '');
    for (const w of words) {
      expect(closestKey(w, apps), w).toEqual(reference(w, known));
      expect(closest(w, known), w).toEqual(reference(w, known));
    }
  });

  // Their speed is measured in bench/suggest.ts, side by side with scoring every name.

  it('find the names with a prefix, counted', () => {
    const r = appsWithPrefix(apps, 'pay-api', 5);
    const all = known.filter((n) => n.startsWith('pay-api')).sort();
    expect(r.total).toBe(all.length);
    expect(r.names).toEqual(all.slice(0, 5));
  });
});
