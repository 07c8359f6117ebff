// The running config of a process, reloaded when its file or directory
// changes. Every part of a process reads the config through `get()` at the
// moment it needs it, so a valid change applies at once without a restart;
// parts that set something up from the config (the watcher's namespaces)
// subscribe with `onChange`. An invalid change is refused: the running config
// stays, and the problems go to `onRefused` once per distinct content.
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { FerryConfig } from '../domain/config.ts';
import { type ConfigProblem, formatProblem, parseSources } from './load.ts';
import { type ConfigSource, readConfigSources, sourcesDigest } from './sources.ts';

export type ReloadOutcome =
  | { kind: 'unchanged' }
  | { kind: 'applied'; digest: string }
  | { kind: 'refused'; digest: string; problems: ConfigProblem[]; again: boolean };

export interface LiveConfigOptions {
  /** Quiet time after the last file event before the config is read (editors and `kubectl apply` write in steps). */
  debounceMs?: number;
  /** A full re-read this often as well, for file systems whose events get lost. 0: never. */
  pollMs?: number;
  /** Called once per refused content with its problems (file and line each). */
  onRefused?: (problems: ConfigProblem[], digest: string) => void | Promise<void>;
  onApplied?: (config: FerryConfig, digest: string) => void;
  onError?: (err: Error) => void;
}

type Listener = (config: FerryConfig, previous: FerryConfig) => void;

export class LiveConfig {
  /** The config file or directory; undefined for a fixed config (tests, `ferry explain`). */
  readonly path: string | undefined;
  private config: FerryConfig;
  private digest: string | undefined;
  private refusedDigest: string | undefined;
  private readonly listeners = new Set<Listener>();
  private readonly opts: LiveConfigOptions;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private unreadable: string | undefined;

  private constructor(
    config: FerryConfig,
    path: string | undefined,
    digest: string | undefined,
    opts: LiveConfigOptions,
  ) {
    this.config = config;
    this.path = path;
    this.digest = digest;
    this.opts = opts;
  }

  /** A config that never changes. */
  static fixed(config: FerryConfig): LiveConfig {
    return new LiveConfig(config, undefined, undefined, {});
  }

  /** Loads `path` (a file or a directory); throws with every problem when it is invalid, as a process cannot start without one. */
  static load(path: string, opts: LiveConfigOptions = {}): LiveConfig {
    const sources = readConfigSources(path);
    const result = parseSources(path, sources);
    if (!result.ok)
      throw new Error(`invalid config ${path}:\n${result.problems.map(formatProblem).join('\n')}`);
    return new LiveConfig(result.config, path, sourcesDigest(sources), opts);
  }

  /** The running config. A bound function, so it can be handed out as `() => FerryConfig`. */
  readonly get = (): FerryConfig => this.config;

  /** Calls `fn` after each applied change; returns the unsubscribe. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Reads the config again and applies it when it changed and is valid. */
  reload(): ReloadOutcome {
    if (!this.path) return { kind: 'unchanged' };
    let sources: ConfigSource[];
    try {
      sources = readConfigSources(this.path);
    } catch (err) {
      const message = `cannot read the config: ${(err as Error).message}`;
      // An editor that deletes and then writes leaves the path briefly gone: look again before
      // calling it a problem.
      if (this.unreadable !== message) {
        this.unreadable = message;
        this.schedule(1000);
        return { kind: 'unchanged' };
      }
      return this.refuse(`unreadable:${message}`, [{ file: this.path, line: 0, path: '', message }]);
    }
    this.unreadable = undefined;
    const digest = sourcesDigest(sources);
    if (digest === this.digest) {
      this.refusedDigest = undefined;
      return { kind: 'unchanged' };
    }
    const result = parseSources(this.path, sources);
    if (!result.ok) return this.refuse(digest, result.problems);
    const previous = this.config;
    this.config = result.config;
    this.digest = digest;
    this.refusedDigest = undefined;
    this.opts.onApplied?.(result.config, digest);
    for (const fn of this.listeners) {
      try {
        fn(result.config, previous);
      } catch (err) {
        this.opts.onError?.(err as Error);
      }
    }
    return { kind: 'applied', digest };
  }

  private refuse(digest: string, problems: ConfigProblem[]): ReloadOutcome {
    const again = digest === this.refusedDigest;
    this.refusedDigest = digest;
    if (!again) {
      Promise.resolve(this.opts.onRefused?.(problems, digest)).catch((err) =>
        this.opts.onError?.(err as Error),
      );
    }
    return { kind: 'refused', digest, problems, again };
  }

  /**
   * Watches the config for changes. A file is watched through its directory,
   * because editors save by writing a new file and renaming it over the old
   * one, and a Kubernetes ConfigMap volume swaps its `..data` symlink: either
   * way the watched inode goes. A directory is watched itself (a new team
   * file, a removed one, the ConfigMap's `..data`). Events are debounced, and
   * a periodic re-read catches what a file system did not report.
   */
  watch(): this {
    if (!this.path || this.closed) return this;
    this.arm();
    const pollMs = this.opts.pollMs ?? 30_000;
    if (pollMs > 0) {
      this.poll = setInterval(() => this.check(), pollMs);
      this.poll.unref();
    }
    return this;
  }

  private arm(): void {
    if (!this.path || this.closed || this.watcher) return;
    const path = this.path;
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      return; // gone for now: the poll or the next check arms it again
    }
    const dir = isDir ? path : dirname(path);
    const name = basename(path);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        // In the parent directory of a file, only the file itself and a ConfigMap's `..data` matter.
        if (!isDir && file && file !== name && !file.startsWith('..')) return;
        this.schedule();
      });
    } catch (err) {
      this.opts.onError?.(err as Error);
      return;
    }
    this.watcher.on('error', () => {
      // The watched directory itself was removed or replaced: watch again where it is now.
      this.watcher?.close();
      this.watcher = undefined;
      this.schedule();
    });
  }

  private schedule(delayMs = this.opts.debounceMs ?? 250): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.check(), delayMs);
    this.debounce.unref();
  }

  private check(): void {
    if (this.closed) return;
    try {
      this.reload();
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
