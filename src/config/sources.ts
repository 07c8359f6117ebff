// Where a config comes from: one file, or a directory of them (`ferry.d/*.yaml`,
// one file per team or per app) merged into one. Each file is parsed on its
// own; a name defined in two files (an app, a group, a person, an
// environment…) or a section that may be set once set twice is a problem that
// names both files and lines. Every later problem (schema, cross-references)
// is traced back to the file and line that wrote the offending part.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CORE_SCHEMA, load as loadPlain } from 'js-yaml';
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';

/** One file of a config, as read. */
export interface ConfigSource {
  file: string;
  text: string;
}

/** Sections keyed by names: each name may be defined in one file only; the files' entries are merged. */
export const NAME_SECTIONS = new Set([
  'regions',
  'stacks',
  'environments',
  'apps',
  'factors',
  'people',
  'groups',
  'gitHosts',
]);
/** Sections that are lists: the files' items are concatenated in file order. */
export const LIST_SECTIONS = new Set(['rules', 'sync', 'redaction']);
// Every other section (primaryRegistry, workloads, build, limits, alerts, ops…) is set in one file only.

/** The singular a conflict message uses ("app", "group", "person"…). */
const SINGULAR: Record<string, string> = {
  regions: 'region',
  stacks: 'stack',
  environments: 'environment',
  apps: 'app',
  factors: 'factor',
  people: 'person',
  groups: 'group',
  gitHosts: 'git host',
};

const isConfigFile = (name: string) => !name.startsWith('.') && /\.ya?ml$/.test(name);

/**
 * The files of a config path: the file itself, or the `*.yaml` / `*.yml` files
 * of a directory in name order. Dot files are skipped, which also skips the
 * `..data` and `..<timestamp>` entries of a Kubernetes ConfigMap volume (the
 * visible names are symlinks through `..data`, and read the current version).
 */
export function readConfigSources(path: string): ConfigSource[] {
  if (!statSync(path).isDirectory()) return [{ file: path, text: readFileSync(path, 'utf8') }];
  return readdirSync(path)
    .filter(isConfigFile)
    .sort()
    .map((name) => {
      const file = join(path, name);
      return { file, text: readFileSync(file, 'utf8') };
    });
}

/** A digest of the files' names and contents: the same digest means the same config. */
export function sourcesDigest(sources: readonly ConfigSource[]): string {
  const h = createHash('sha256');
  for (const s of sources) h.update(`${s.file}\0${s.text.length}\0${s.text}\0`);
  return h.digest('hex');
}

export interface SourceProblem {
  file: string;
  line: number;
  /** Path inside the merged config. */
  path: readonly PropertyKey[];
  message: string;
}

/** Where each part of the merged config was written. */
export class SourceMap {
  /** `section\0name` → file, for the name sections. */
  private readonly named = new Map<string, string>();
  /** section → [file, index in that file] per merged item, for the list sections. */
  private readonly listed = new Map<string, [string, number][]>();
  /** section → file, for the one-file sections (and the first file of the others). */
  private readonly sections = new Map<string, string>();
  private readonly docs = new Map<string, { doc: Document; lines: LineCounter }>();

  /** The config path (the file, or the directory) for problems no file owns. */
  readonly root: string;
  private readonly texts: ReadonlyMap<string, string>;

  constructor(root: string, texts: ReadonlyMap<string, string>) {
    this.root = root;
    this.texts = texts;
  }

  nameOwner(section: string, name: string): string | undefined {
    return this.named.get(`${section}\0${name}`);
  }

  setName(section: string, name: string, file: string): void {
    this.named.set(`${section}\0${name}`, file);
  }

  addListItem(section: string, file: string, index: number): void {
    const l = this.listed.get(section) ?? [];
    this.listed.set(section, l);
    l.push([file, index]);
  }

  sectionOwner(section: string): string | undefined {
    return this.sections.get(section);
  }

  setSection(section: string, file: string): void {
    if (!this.sections.has(section)) this.sections.set(section, file);
  }

  /** The file that wrote `path` of the merged config, and the same path inside that file. */
  locate(path: readonly PropertyKey[]): { file: string; path: readonly PropertyKey[] } | undefined {
    const [section, second, ...rest] = path;
    if (typeof section !== 'string') return undefined;
    if (NAME_SECTIONS.has(section) && typeof second === 'string') {
      const file = this.nameOwner(section, second);
      if (file) return { file, path };
    }
    if (LIST_SECTIONS.has(section) && typeof second === 'number') {
      const at = this.listed.get(section)?.[second];
      if (at) return { file: at[0], path: [section, at[1], ...rest] };
    }
    const file = this.sections.get(section);
    return file ? { file, path } : undefined;
  }

  /**
   * The line of `path` in `file`: the key's line when the path ends at a map
   * key (a problem about a whole entry is reported where it is named), else
   * the deepest node on the path that exists (a missing key is reported at
   * its parent, where a person would add it). Files are parsed again for
   * this, only when there is a problem to report, so a valid config keeps no
   * syntax tree in memory.
   */
  lineIn(file: string, path: readonly PropertyKey[]): number {
    const text = this.texts.get(file);
    if (text === undefined) return 0;
    let parsed = this.docs.get(file);
    if (!parsed) {
      const lines = new LineCounter();
      parsed = { doc: parseDocument(text, { lineCounter: lines, uniqueKeys: false }), lines };
      this.docs.set(file, parsed);
    }
    const { doc, lines } = parsed;
    const parent = path.length ? doc.getIn(path.slice(0, -1) as unknown[], true) : undefined;
    if (isMap(parent)) {
      const key = parent.items.find((p) => isScalar(p.key) && p.key.value === path.at(-1))?.key;
      if (isNode(key) && key.range) return lines.linePos(key.range[0]).line;
    }
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return 1;
  }

  /** A problem about `path` of the merged config, at the file and line that wrote it. */
  problem(path: readonly PropertyKey[], message: string): SourceProblem {
    const at = this.locate(path);
    if (!at) return { file: this.root, line: 0, path, message };
    return { file: at.file, line: this.lineIn(at.file, at.path), path, message };
  }
}

/**
 * Duplicate keys in one map, found with a set per map. (The yaml library's
 * own `uniqueKeys` compares every pair of keys: minutes for a file with
 * thousands of apps.)
 */
function duplicateKeys(doc: Document, lines: LineCounter, file: string): SourceProblem[] {
  const out: SourceProblem[] = [];
  const walk = (node: unknown, path: PropertyKey[]) => {
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key))
          out.push({
            file,
            line: isNode(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : 0,
            path: [...path, String(key)],
            message: `"${String(key)}" is defined twice in this map; map keys must be unique`,
          });
        seen.add(key);
        walk(pair.value, [...path, String(key)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        walk(item, [...path, i]);
      });
    }
  };
  walk(doc.contents, []);
  return out;
}

/**
 * The yaml library's parser reads `process.env.LOG_TOKENS` once per token, and
 * a read of process.env is a call into the C++ environment: for a config of
 * thousands of apps that is a quarter of the parse. The parse is synchronous,
 * so a plain copy of the environment stands in for it meanwhile and nothing
 * else can observe the swap.
 */
function withPlainEnv<T>(fn: () => T): T {
  const real = process.env;
  process.env = { ...real };
  try {
    return fn();
  } finally {
    process.env = real;
  }
}

export interface MergedSources {
  /** The merged raw config, before the schema. */
  raw: Record<string, unknown>;
  map: SourceMap;
  problems: SourceProblem[];
}

/** Parses every file and merges them; problems are syntax errors and conflicts between files. */
export function mergeSources(root: string, sources: readonly ConfigSource[]): MergedSources {
  const map = new SourceMap(root, new Map(sources.map((s) => [s.file, s.text])));
  const problems: SourceProblem[] = [];
  const raw = Object.create(null) as Record<string, unknown>;
  const single = sources.length === 1;
  withPlainEnv(() => {
    for (const { file, text } of sources) {
      let value: unknown;
      try {
        // The happy path builds plain values with js-yaml, about 15× faster than yaml's syntax tree on
        // a 9,000-app config. It refuses what yaml would report (bad syntax, a key twice, several
        // documents); then the file is parsed again below, with yaml, for the problems and their lines.
        // CORE_SCHEMA: YAML 1.2's core types, as yaml reads them (no timestamps, no merge keys).
        value = loadPlain(text, { schema: CORE_SCHEMA, filename: file });
      } catch {
        value = undefined;
      }
      const lines = new LineCounter();
      const doc =
        value !== undefined || text.trim() === ''
          ? undefined
          : parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
      if (doc && doc.errors.length > 0) {
        for (const e of doc.errors)
          problems.push({
            file,
            line: lines.linePos(e.pos[0]).line,
            path: [],
            message: e.message.split('\n')[0] ?? e.message,
          });
        continue;
      }
      const dups = doc ? duplicateKeys(doc, lines, file) : [];
      if (dups.length) {
        problems.push(...dups);
        continue;
      }
      if (doc) value = doc.toJS();
      if (value === null || value === undefined) continue; // an empty file (a placeholder) adds nothing
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push({
          file,
          line: 1,
          path: [],
          message: 'a config file is a mapping of sections (apps:, groups:, …)',
        });
        continue;
      }
      for (const [section, part] of Object.entries(value as Record<string, unknown>)) {
        // One file: no merging, so the schema sees exactly what the file says.
        if (!Object.hasOwn(raw, section)) {
          put(raw, section, single ? part : mergeablePart(section, part));
          map.setSection(section, file);
          recordParts(map, section, part, file);
          continue;
        }
        const into = raw[section];
        if (NAME_SECTIONS.has(section) && isRecord(into) && isRecord(part)) {
          for (const [name, entry] of Object.entries(part)) {
            const first = map.nameOwner(section, name);
            if (first !== undefined) {
              problems.push({
                file,
                line: map.lineIn(file, [section, name]),
                path: [section, name],
                message: `${SINGULAR[section] ?? section} "${name}" is defined twice: here and at ${first}:${map.lineIn(first, [section, name])}`,
              });
              continue;
            }
            put(into, name, entry);
            map.setName(section, name, file);
          }
        } else if (LIST_SECTIONS.has(section) && Array.isArray(into) && Array.isArray(part)) {
          part.forEach((item, i) => {
            into.push(item);
            map.addListItem(section, file, i);
          });
        } else {
          const first = map.sectionOwner(section) as string;
          problems.push({
            file,
            line: map.lineIn(file, [section]),
            path: [section],
            message: `"${section}" is set in two files: here and at ${first}:${map.lineIn(first, [section])}; set it in one`,
          });
        }
      }
    }
  });
  return { raw, map, problems };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A section's value as the start of a merge: name maps and lists are copied so later files add to the copy. */
function mergeablePart(section: string, part: unknown): unknown {
  if (NAME_SECTIONS.has(section) && isRecord(part)) {
    const copy = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of Object.entries(part)) put(copy, k, v);
    return copy;
  }
  if (LIST_SECTIONS.has(section) && Array.isArray(part)) return [...part];
  return part;
}

/** An own property, even for a key such as "__proto__" (which assignment would read as the prototype). */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function recordParts(map: SourceMap, section: string, part: unknown, file: string): void {
  if (NAME_SECTIONS.has(section) && isRecord(part))
    for (const name of Object.keys(part)) map.setName(section, name, file);
  else if (LIST_SECTIONS.has(section) && Array.isArray(part))
    part.forEach((_, i) => {
      map.addListItem(section, file, i);
    });
}
