// How tests start Ferry's processes: the pinned Node.js (package.json "node", which runs the .ts files
// directly) rather than whatever Node runs vitest.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const PINNED_NODE = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
export const NODE = existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath;

/** Arguments for NODE: a worker with the recording runners (test/support/recording-worker.ts). */
export function recordingWorkerArgs(configFile: string): string[] {
  return [join(REPO_ROOT, 'test', 'support', 'recording-worker.ts'), '--config', configFile];
}
