// "Did you mean …?" for app, factor, environment and command names, and the
// prefix search of `/release apps`. With 9,000 apps a suggestion must not
// measure the distance to every name: names are indexed by length (an edit
// distance is at least the difference in length), by their pairs of letters
// (bigrams: k edits remove at most 2k of a word's distinct bigrams, so a name
// sharing fewer cannot be within k) and sorted (a prefix is one binary
// search), and the index of a config's apps is built once per config. The
// result is the same as measuring every name (test/unit/suggest.test.ts).
import { distance } from 'fastest-levenshtein';

interface Entry {
  /** Position in `NameIndex.entries`. */
  id: number;
  lower: string;
  name: string;
  /** Per-character counts (a-z, 0-9, other), for a cheap lower bound of the edit distance. */
  counts: Uint8Array;
}

interface NameIndex {
  entries: Entry[];
  /** Lower-cased names by length. */
  byLength: Map<number, Entry[]>;
  /** The ids of the names holding each bigram (built on first use: short lists never need it). */
  grams?: Map<number, Uint32Array>;
  scratch?: Uint8Array;
  /** Lower-cased names, sorted (code-unit order), for prefix ranges. */
  sorted: Entry[];
}

function countsOf(s: string): Uint8Array {
  const c = new Uint8Array(37);
  for (let i = 0; i < s.length; i++) {
    const k = s.charCodeAt(i);
    const slot = k >= 97 && k <= 122 ? k - 97 : k >= 48 && k <= 57 ? k - 22 : 36;
    c[slot] = Math.min(255, (c[slot] as number) + 1);
  }
  return c;
}

/** Each edit changes the character counts by at most 2 in all: half their difference bounds the distance. */
function countBound(a: Uint8Array, b: Uint8Array): number {
  let diff = 0;
  for (let i = 0; i < 37; i++) diff += Math.abs((a[i] as number) - (b[i] as number));
  return Math.ceil(diff / 2);
}

function buildIndex(names: readonly string[]): NameIndex {
  const byLength = new Map<number, Entry[]>();
  const entries = names.map((name, id) => {
    const lower = name.toLowerCase();
    return { id, lower, name, counts: countsOf(lower) };
  });
  for (const e of entries) {
    const bucket = byLength.get(e.lower.length);
    if (bucket) bucket.push(e);
    else byLength.set(e.lower.length, [e]);
  }
  const sorted = [...entries].sort((a, b) => (a.lower < b.lower ? -1 : a.lower > b.lower ? 1 : 0));
  return { entries, byLength, sorted };
}

/** The distinct bigrams of a word, each as one number. */
function bigramsOf(w: string): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i + 1 < w.length; i++) out.add(w.charCodeAt(i) * 65_536 + w.charCodeAt(i + 1));
  return out;
}

function gramsOf(index: NameIndex): Map<number, Uint32Array> {
  if (index.grams) return index.grams;
  const lists = new Map<number, number[]>();
  for (const e of index.entries)
    for (const g of bigramsOf(e.lower)) {
      const list = lists.get(g);
      if (list) list.push(e.id);
      else lists.set(g, [e.id]);
    }
  index.grams = new Map([...lists].map(([g, ids]) => [g, Uint32Array.from(ids)]));
  return index.grams;
}

/** The per-name counter of one search, kept with the index (searches run one at a time) and zeroed after use. */
function scratchOf(index: NameIndex): Uint8Array {
  index.scratch ??= new Uint8Array(index.entries.length);
  return index.scratch;
}

/** A word this short shares too few bigrams with anything for them to rule names out. */
const BIGRAM_MIN_LENGTH = 6;

/** Indexes by the object whose keys are the names (a config's `apps`), so a config is indexed once. */
const indexes = new WeakMap<object, NameIndex>();

function indexOfKeys(record: Record<string, unknown>): NameIndex {
  let index = indexes.get(record);
  if (!index) {
    index = buildIndex(Object.keys(record));
    indexes.set(record, index);
  }
  return index;
}

/** The first position in `sorted` whose name is not before `prefix`. */
function lowerBound(sorted: NameIndex['sorted'], prefix: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as { lower: string }).lower < prefix) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The same order as String#localeCompare, many times faster over thousands of names.
const collator = new Intl.Collator();
const byScoreThenName = (a: { score: number; name: string }, b: { score: number; name: string }) =>
  a.score - b.score || collator.compare(a.name, b.name);

function closestIn(word: string, index: NameIndex, max: number): string[] {
  return scoredIn(word, index, max).map((c) => c.name);
}

function scoredIn(word: string, index: NameIndex, max: number): { name: string; score: number }[] {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(w.length / 3));
  const found = new Map<string, number>();
  // A prefix ("pay" for "payments") is a strong hint even when far in edits: score 1 (0 when equal).
  if (w.length >= 3) {
    for (let i = lowerBound(index.sorted, w); i < index.sorted.length; i++) {
      const e = index.sorted[i] as Entry;
      if (!e.lower.startsWith(w)) break;
      found.set(e.name, e.lower === w ? 0 : 1);
    }
  }
  // Then names whose length is within `limit`, nearest lengths first; a length further off than the
  // worst score kept cannot beat it (distance ≥ length difference), so the search stops there.
  let worst = limit;
  const refresh = () => {
    if (found.size >= max)
      worst = Math.min(limit, [...found.values()].sort((a, b) => a - b)[max - 1] as number);
  };
  refresh();
  const wc = countsOf(w);
  const measure = (e: Entry) => {
    // Names that cannot come within the worst score kept are not measured.
    if (found.has(e.name) || Math.abs(e.lower.length - w.length) > worst || countBound(wc, e.counts) > worst)
      return;
    const d = distance(w, e.lower);
    if (d <= worst) {
      found.set(e.name, d);
      // Tighten the bound at once: after a few near names, the bounds skip nearly all the rest.
      refresh();
    }
  };
  if (w.length >= BIGRAM_MIN_LENGTH && index.entries.length > 64) {
    // Shared bigrams per name; a name within `worst` edits shares at least `distinct - 2 * worst`.
    const grams = gramsOf(index);
    const wanted = bigramsOf(w);
    const shared = scratchOf(index);
    for (const g of wanted) for (const id of grams.get(g) ?? []) shared[id] = (shared[id] as number) + 1;
    const need = () => wanted.size - 2 * worst;
    // The names sharing the most are measured first: the nearest names tighten `worst` early, and once
    // the tightened bound asks for more than a level shares, it asks for more than every level below.
    const floor = Math.max(1, need());
    for (let n = wanted.size; n >= floor && n >= need(); n--)
      for (let id = 0; id < shared.length; id++) if (shared[id] === n) measure(index.entries[id] as Entry);
    shared.fill(0);
    // A name sharing no bigram at all is within `worst` only when `need()` allows none.
    if (need() <= 0)
      for (const bucket of lengthsNear(w.length, worst, index)) for (const e of bucket) measure(e);
  } else {
    for (const bucket of lengthsNear(w.length, limit, index)) {
      if (Math.abs((bucket[0]?.lower.length ?? w.length) - w.length) > worst) continue;
      for (const e of bucket) measure(e);
    }
  }
  return firstByScore(found, max);
}

/** The length buckets within `within` of `length`, nearest first. */
function* lengthsNear(length: number, within: number, index: NameIndex): Generator<Entry[]> {
  for (let off = 0; off <= within; off++)
    for (const len of off === 0 ? [length] : [length - off, length + off]) {
      const bucket = index.byLength.get(len);
      if (bucket) yield bucket;
    }
}

/** The first `max` by score, then name. */
function firstByScore(found: Map<string, number>, max: number): { name: string; score: number }[] {
  // The first `max` by score, then name: picked one at a time (a prefix can match thousands of names,
  // and sorting them all by locale would cost more than the search).
  const rest = [...found].map(([name, score]) => ({ name, score }));
  const out: { name: string; score: number }[] = [];
  while (out.length < max && rest.length) {
    let best = 0;
    for (let i = 1; i < rest.length; i++)
      if (
        byScoreThenName(
          rest[i] as { name: string; score: number },
          rest[best] as { name: string; score: number },
        ) < 0
      )
        best = i;
    out.push(rest[best] as { name: string; score: number });
    rest[best] = rest[rest.length - 1] as { name: string; score: number };
    rest.pop();
  }
  return out;
}

/** Up to `max` known names close to `word`, nearest first; none when nothing is plausibly meant. */
export function closest(word: string, known: readonly string[], max = 3): string[] {
  return closestIn(word, buildIndex(known), max);
}

/** `closest` over the keys of a record (a config's apps), with the index kept for that record. */
export function closestKey(word: string, record: Record<string, unknown>, max = 3): string[] {
  return closestIn(word, indexOfKeys(record), max);
}

/** `closest` over a short list and the keys of a record together (command words and app names). */
export function closestOfBoth(
  word: string,
  known: readonly string[],
  record: Record<string, unknown>,
  max = 3,
): string[] {
  const all = [...scoredIn(word, buildIndex(known), max), ...scoredIn(word, indexOfKeys(record), max)];
  const seen = new Set<string>();
  return all
    .sort(byScoreThenName)
    .filter((c) => !seen.has(c.name) && seen.add(c.name))
    .slice(0, max)
    .map((c) => c.name);
}

/** The names of `record` starting with `prefix` (case-insensitive), sorted: the first `max`, and how many. */
export function appsWithPrefix(
  record: Record<string, unknown>,
  prefix: string,
  max: number,
): { names: string[]; total: number } {
  const { sorted } = indexOfKeys(record);
  const p = prefix.toLowerCase();
  const names: string[] = [];
  let total = 0;
  for (let i = lowerBound(sorted, p); i < sorted.length; i++) {
    const e = sorted[i] as Entry;
    if (!e.lower.startsWith(p)) break;
    if (names.length < max) names.push(e.name);
    total++;
  }
  return { names, total };
}
