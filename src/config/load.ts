// Reading ferry.yaml: YAML syntax, then the zod schema, then cross-references.
// Every problem carries the file, the line and the path of the node it is
// about, so `ferry config check` can list them all at once.
import { readFileSync } from 'node:fs';
import { isMap, isNode, isScalar, LineCounter, parseDocument, visit, YAMLParseError } from 'yaml';
import { DEFAULT_FACTORS } from '../domain/factors.ts';
import { nullPrototype } from '../domain/lookup.ts';
import { configSchema, type FerryConfig } from './schema.ts';
import { crossReferenceProblems } from './validate.ts';

export interface ConfigProblem {
  file: string;
  line: number;
  path: string;
  message: string;
}

export type ConfigResult =
  | { ok: true; config: FerryConfig; file: string }
  | { ok: false; problems: ConfigProblem[]; file: string };

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}: ${p.path || '(top)'}: ${p.message}`;
}

export function pathToString(path: readonly PropertyKey[]): string {
  return path
    .map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`))
    .join('');
}

export function defaultConfigPath(): string {
  return process.env.FERRY_CONFIG ?? 'ferry.yaml';
}

export function loadConfigFile(file: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return {
      ok: false,
      file,
      problems: [{ file, line: 0, path: '', message: `cannot read the file: ${(err as Error).message}` }],
    };
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file = 'ferry.yaml'): ConfigResult {
  const lines = new LineCounter();
  // yaml's own unique-key check compares every key with every other (quadratic: minutes for a
  // map of 9,000 apps); duplicateKeyErrors does the same check with a set per map.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length === 0) doc.errors.push(...duplicateKeyErrors(doc));
  if (doc.errors.length > 0) {
    return {
      ok: false,
      file,
      problems: doc.errors.map((e) => ({
        file,
        line: lines.linePos(e.pos[0]).line,
        path: '',
        message: e.message.split('\n')[0] ?? e.message,
      })),
    };
  }
  // The line of the deepest node that exists on the path: a missing key is
  // reported at its parent, which is where a person would add it.
  const lineOf = (path: readonly PropertyKey[]): number => {
    // A problem with a name (`apps.ledger-`) is on the line of the key, not of the value below it.
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
  };
  const raw = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      // Unknown keys point at the key itself rather than its parent object.
      const keyPath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
      return { file, line: lineOf(keyPath), path: pathToString(keyPath), message: issue.message };
    });
    return { ok: false, file, problems };
  }
  const config = withDefaultFactors(parsed.data);
  const refs = crossReferenceProblems(config);
  if (refs.length > 0) {
    return {
      ok: false,
      file,
      problems: refs.map((p) => ({
        file,
        line: lineOf(p.path),
        path: pathToString(p.path),
        message: p.message,
      })),
    };
  }
  return { ok: true, config, file };
}

/** "Map keys must be unique" for each repeated scalar key, at the repeat (as yaml's uniqueKeys reports it). */
function duplicateKeyErrors(doc: ReturnType<typeof parseDocument>): YAMLParseError[] {
  const errors: YAMLParseError[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const k = isScalar(pair.key) ? pair.key.value : pair.key;
        if (!seen.has(k)) {
          seen.add(k);
          continue;
        }
        const at = isNode(pair.key) && pair.key.range ? pair.key.range[0] : 0;
        errors.push(new YAMLParseError([at, at + 1], 'DUPLICATE_KEY', 'Map keys must be unique'));
      }
    },
  });
  return errors;
}

/** Built-in factors first; a factor of the same name in the file replaces the built-in one. */
export function withDefaultFactors(config: FerryConfig): FerryConfig {
  // Without a prototype, like every other name map of the config (see nameMap in schema.ts).
  return { ...config, factors: nullPrototype({ ...DEFAULT_FACTORS, ...config.factors }) };
}

/** Loads a config or throws an error listing every problem (for processes that cannot start without one). */
export function loadConfigOrThrow(file: string): FerryConfig {
  const result = loadConfigFile(file);
  if (!result.ok)
    throw new Error(`invalid config ${file}:\n${result.problems.map(formatProblem).join('\n')}`);
  return result.config;
}
