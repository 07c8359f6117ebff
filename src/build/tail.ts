// Composing an environment's Dockerfile: the app's Dockerfile, byte for byte,
// followed by the environment's dependency-injection tail.
//
// Why the tail is appended and never interleaved: buildah (`--layers
// --timestamp 0`) caches and reproduces a layer from its instruction, its
// inputs and every instruction before it. If every environment's Dockerfile
// starts with the same bytes, every layer up to the tail has the same diff id
// and the same compressed digest in every environment, so a registry stores
// them once and a node that pulled `v2-test` already holds all but the tail of
// `v2-prod`.
//
// Packages. Images are busybox-based and builds run offline (no apk/apt mirror
// reachable from a build, and no package manager in the image), so a
// "package" is a named bundle: a directory `<packageDir>/<name>/` on the build
// host laid out like a root filesystem (`bin/curl`, `opt/jdk-tools/...`). The
// builder copies each requested bundle into a separate build context
// (`ferry-tail`, passed with `--build-context`) and the tail installs it with
// one `COPY --from=ferry-tail packages/<name>/ /` per package. This is
// reproducible (the same bundle gives the same layer digest in every version
// and environment, so `testtools` is stored once for all versions), needs no
// network, and cannot leak into environments that do not name it. A platform
// team fills the package dir from its artifact mirror; the tail only names
// bundles. Running a package manager instead is still possible with `run`.
//
// Files are written into the same separate context (`files/<n>/content`) and
// copied one COPY per file with an explicit `--chmod`, so the app's build
// context (and with it `COPY . /app`) is identical for every environment.
//
// Pure: no I/O here. The builder materialises `contextEntries`.

export interface TailFile {
  /** Absolute path inside the image. */
  path: string;
  content: string;
  /** Permission bits, default 0o644. */
  mode?: number;
}

export interface TailSpec {
  packages?: string[];
  files?: TailFile[];
  env?: Record<string, string>;
  run?: string[];
  instructions?: string[];
}

/** Something the builder must place in the `ferry-tail` build context. */
export type TailContextEntry =
  | { kind: 'package'; name: string /** relative to the tail context */; dest: string }
  | { kind: 'file'; dest: string; content: string; mode: number };

export interface ComposeOptions {
  /** Environment name, recorded in a label and the tail's header comment. */
  envName: string;
  /** Extra labels set at the very end (config only, no layer). */
  labels?: Record<string, string>;
}

export interface ComposedDockerfile {
  /** The full Dockerfile: `prefix` + tail. */
  dockerfile: string;
  /** The app's Dockerfile with a guaranteed trailing newline; identical for every environment. */
  prefix: string;
  /** Only the appended tail text. */
  tail: string;
  contextEntries: TailContextEntry[];
  /** Tail instructions that produce a filesystem layer (COPY/RUN/ADD), in order. */
  tailLayerCount: number;
}

/** Name of the additional build context the tail's COPY instructions read from. */
export const TAIL_CONTEXT_NAME = 'ferry-tail';

export class TailSpecError extends Error {
  override name = 'TailSpecError';
}

const PACKAGE_RE = /^[a-z0-9][a-z0-9._+-]{0,63}$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

function quote(value: string): string {
  // Dockerfile double-quoted word: backslash escapes `"` and `\`. `$VAR`
  // still expands, deliberately (PATH=/opt/tools/bin:$PATH).
  return '"' + value.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

function assertSingleLine(what: string, s: string): void {
  if (/[\r\n]/.test(s)) throw new TailSpecError(`${what} must be a single line: ${JSON.stringify(s)}`);
}

function normalisePath(p: string): string {
  if (!p.startsWith('/')) throw new TailSpecError(`file path must be absolute: ${p}`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new TailSpecError(`file path must not contain "..": ${p}`);
  if (parts.length === 0) throw new TailSpecError(`file path must name a file: ${p}`);
  for (const part of parts) assertSingleLine('file path', part);
  if (parts.some((x) => /[\s"'\\$]/.test(x)))
    throw new TailSpecError(`file path must not contain whitespace, quotes, "\\" or "$": ${p}`);
  return '/' + parts.join('/');
}

const INSTRUCTION_RE = /^\s*([A-Za-z]+)\b/;

/**
 * The user the final stage runs as, if the app's Dockerfile sets one, so the
 * tail's RUN steps can switch to root and back. Looks only at instructions of
 * the last stage (after the last FROM).
 */
export function finalStageUser(dockerfile: string): string | undefined {
  let user: string | undefined;
  // Join continuation lines so `USER \` + `app` is one instruction.
  const logical = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const line of logical) {
    const m = INSTRUCTION_RE.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    const kw = m[1]!.toUpperCase();
    if (kw === 'FROM') user = undefined;
    else if (kw === 'USER') user = line.trim().slice(4).trim() || undefined;
  }
  return user;
}

/**
 * Appends `tail` to `appDockerfile`. Deterministic: the same spec gives the
 * same text (packages deduplicated and sorted, env sorted by key). The output
 * starts with exactly the bytes of `appDockerfile` (plus a newline if it had
 * none), which is what keeps every layer before the tail shared.
 */
export function composeDockerfile(
  appDockerfile: string,
  tail: TailSpec,
  options: ComposeOptions,
): ComposedDockerfile {
  if (!/^\s*FROM\s/im.test(appDockerfile))
    throw new TailSpecError('the app Dockerfile has no FROM instruction');
  assertSingleLine('environment name', options.envName);
  const prefix = appDockerfile.endsWith('\n') ? appDockerfile : appDockerfile + '\n';
  const lines: string[] = [];
  const entries: TailContextEntry[] = [];
  let layers = 0;

  lines.push(`# ---- ferry dependency-injection tail (environment ${options.envName}) ----`);

  const packages = [...new Set(tail.packages ?? [])].sort();
  for (const name of packages) {
    if (!PACKAGE_RE.test(name)) throw new TailSpecError(`invalid package name: ${JSON.stringify(name)}`);
    const dest = `packages/${name}`;
    entries.push({ kind: 'package', name, dest });
    lines.push(`COPY --from=${TAIL_CONTEXT_NAME} ${dest}/ /`);
    layers++;
  }

  const seen = new Set<string>();
  (tail.files ?? []).forEach((file, i) => {
    const path = normalisePath(file.path);
    if (seen.has(path)) throw new TailSpecError(`file listed twice: ${path}`);
    seen.add(path);
    const mode = file.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
      throw new TailSpecError(`invalid mode for ${path}: ${mode}`);
    const dest = `files/${i}/content`;
    entries.push({ kind: 'file', dest, content: file.content, mode });
    lines.push(
      `COPY --from=${TAIL_CONTEXT_NAME} --chmod=${mode.toString(8).padStart(4, '0')} ${dest} ${path}`,
    );
    layers++;
  });

  const env = Object.entries(tail.env ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (env.length > 0) {
    for (const [k, v] of env) {
      if (!ENV_KEY_RE.test(k)) throw new TailSpecError(`invalid env name: ${JSON.stringify(k)}`);
      assertSingleLine(`env ${k}`, v);
    }
    lines.push('ENV ' + env.map(([k, v]) => `${k}=${quote(v)}`).join(' '));
  }

  const run = tail.run ?? [];
  if (run.length > 0) {
    const user = finalStageUser(prefix);
    if (user && user !== 'root' && user !== '0') lines.push('USER root');
    for (const cmd of run) {
      assertSingleLine('run command', cmd);
      if (cmd.trim() === '') throw new TailSpecError('empty run command');
      lines.push(`RUN ${cmd}`);
      layers++;
    }
    if (user && user !== 'root' && user !== '0') lines.push(`USER ${user}`);
  }

  for (const ins of tail.instructions ?? []) {
    assertSingleLine('instruction', ins);
    const m = INSTRUCTION_RE.exec(ins);
    if (!m) throw new TailSpecError(`not a Dockerfile instruction: ${JSON.stringify(ins)}`);
    const kw = m[1]!.toUpperCase();
    if (kw === 'FROM') throw new TailSpecError('a tail must not start a new stage (FROM)');
    if (kw === 'RUN' || kw === 'COPY' || kw === 'ADD') layers++;
    lines.push(ins.trim());
  }

  const labels: Record<string, string> = { 'io.ferry.environment': options.envName, ...options.labels };
  const labelPairs = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of labelPairs) {
    if (!LABEL_KEY_RE.test(k)) throw new TailSpecError(`invalid label key: ${JSON.stringify(k)}`);
    assertSingleLine(`label ${k}`, v);
  }
  // Last, so the label never splits the build cache of otherwise equal tails.
  lines.push('LABEL ' + labelPairs.map(([k, v]) => `${k}=${quote(v)}`).join(' '));

  const tailText = lines.join('\n') + '\n';
  return {
    dockerfile: prefix + tailText,
    prefix,
    tail: tailText,
    contextEntries: entries,
    tailLayerCount: layers,
  };
}
