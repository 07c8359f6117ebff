// Reading ferry.yaml (or a ferry.d/ directory of files, see sources.ts): YAML
// syntax, then the zod schema, then cross-references. Every problem carries
// the file, the line and the path of the node it is about, so `ferry config
// check` can list them all at once.

import { configSchema, type FerryConfig } from '../domain/config.ts';
import { DEFAULT_FACTORS } from '../domain/factors.ts';
import { nullPrototype } from '../domain/lookup.ts';
import { type ConfigSource, mergeSources, readConfigSources, type SourceProblem } from './sources.ts';
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

/** Loads a config from a file or a directory of files (`ferry.d/*.yaml`), merged. */
export function loadConfigFile(path: string): ConfigResult {
  let sources: ConfigSource[];
  try {
    sources = readConfigSources(path);
  } catch (err) {
    return {
      ok: false,
      file: path,
      problems: [
        { file: path, line: 0, path: '', message: `cannot read the config: ${(err as Error).message}` },
      ],
    };
  }
  return parseSources(path, sources);
}

export function parseConfig(text: string, file = 'ferry.yaml'): ConfigResult {
  return parseSources(file, [{ file, text }]);
}

/** Parses and merges `sources` (the files of `root`), then checks the schema and the cross-references. */
export function parseSources(root: string, sources: readonly ConfigSource[]): ConfigResult {
  if (sources.length === 0)
    return {
      ok: false,
      file: root,
      problems: [{ file: root, line: 0, path: '', message: 'no *.yaml files in the config directory' }],
    };
  const merged = mergeSources(root, sources);
  const toProblem = (p: SourceProblem): ConfigProblem => ({
    file: p.file,
    line: p.line,
    path: pathToString(p.path),
    message: p.message,
  });
  if (merged.problems.length > 0) return { ok: false, file: root, problems: merged.problems.map(toProblem) };
  const parsed = configSchema.safeParse(merged.raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      // Unknown keys point at the key itself rather than its parent object.
      const keyPath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
      return toProblem(merged.map.problem(keyPath, issue.message));
    });
    return { ok: false, file: root, problems };
  }
  const config = withDefaultFactors(parsed.data);
  const refs = crossReferenceProblems(config);
  if (refs.length > 0)
    return {
      ok: false,
      file: root,
      problems: refs.map((p) => toProblem(merged.map.problem(p.path, p.message))),
    };
  return { ok: true, config, file: root };
}

/** Built-in factors first; a factor of the same name in the file replaces the built-in one. */
export function withDefaultFactors(config: FerryConfig): FerryConfig {
  // Without a prototype, like every other name map of the config (see nameMap in schema.ts).
  return { ...config, factors: nullPrototype({ ...DEFAULT_FACTORS, ...config.factors }) };
}

/** Loads a config (file or directory) or throws an error listing every problem (for processes that cannot start without one). */
export function loadConfigOrThrow(file: string): FerryConfig {
  const result = loadConfigFile(file);
  if (!result.ok)
    throw new Error(`invalid config ${file}:\n${result.problems.map(formatProblem).join('\n')}`);
  return result.config;
}
