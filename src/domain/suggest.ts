// "Did you mean …?" for app, factor, environment and command names.
import { distance } from 'fastest-levenshtein';

/** Up to `max` known names close to `word`, nearest first; none when nothing is plausibly meant. */
export function closest(word: string, known: readonly string[], max = 3): string[] {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(w.length / 3));
  return known
    .map((name) => {
      const d = distance(w, name.toLowerCase());
      // A prefix ("pay" for "payments") is a strong hint even when far in edits.
      const score = name.toLowerCase().startsWith(w) && w.length >= 3 ? Math.min(d, 1) : d;
      return { name, score };
    })
    .filter((c) => c.score <= limit)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, max)
    .map((c) => c.name);
}
