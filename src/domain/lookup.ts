// Tables keyed by words people type. A plain object answers for names it
// never defined — `constructor`, `__proto__`, `toString` come from
// Object.prototype — so a word typed in chat could reach a function where a
// config entry was expected. Config records are built without a prototype
// (domain/config.ts); these helpers guard every other table, and any config
// that was copied in a way that put the prototype back (structuredClone).

/** `table[key]` when the table itself defines `key`; never an inherited property. */
export function lookup<V>(table: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Whether the table itself defines `key` (never true for an inherited property). */
export function defines(table: object, key: string): boolean {
  return Object.hasOwn(table, key);
}

/** A copy of `entries` as an object without a prototype: only its own keys can be found in it. */
export function nullPrototype<V>(entries: Readonly<Record<string, V>>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  // defineProperty, not assignment: an own "__proto__" key stays an ordinary key.
  for (const [k, v] of Object.entries(entries)) {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
