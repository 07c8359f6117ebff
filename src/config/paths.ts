// Paths in ferry.yaml may name environment variables (${FERRY_CACHE}/repos/…)
// so one config works on every machine. FERRY_CACHE defaults to
// ~/.cache/ferry, where the local infrastructure keeps its builds.
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout Ferry runs from; ${FERRY_REPO} in a config names it. */
export const FERRY_REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function ferryCache(): string {
  return process.env.FERRY_CACHE ?? join(homedir(), '.cache', 'ferry');
}

export function expandPath(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text
    .replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) =>
      name === 'FERRY_CACHE'
        ? ferryCache()
        : name === 'FERRY_REPO'
          ? (env.FERRY_REPO ?? FERRY_REPO)
          : (env[name] ?? ''),
    )
    .replace(/^~(?=\/|$)/, homedir());
}
