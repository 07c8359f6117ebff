// The example config, loaded once for tests that need a realistic one.
import { fileURLToPath } from 'node:url';
import { loadConfigOrThrow } from '../../src/config/load.ts';
import type { FerryConfig } from '../../src/domain/config.ts';

export const EXAMPLE_CONFIG_PATH = fileURLToPath(new URL('../../examples/ferry.yaml', import.meta.url));

/** A fresh copy each call (tests change it). Loaded again rather than structuredClone'd: a clone would give the config's name maps back the prototype the loader leaves out. */
export function exampleConfig(): FerryConfig {
  return loadConfigOrThrow(EXAMPLE_CONFIG_PATH);
}
