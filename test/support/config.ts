// The example config, loaded once for tests that need a realistic one.
import { fileURLToPath } from 'node:url';
import { loadConfigOrThrow } from '../../src/config/load.ts';
import type { FerryConfig } from '../../src/config/schema.ts';

export const EXAMPLE_CONFIG_PATH = fileURLToPath(new URL('../../examples/ferry.yaml', import.meta.url));

let cached: FerryConfig | undefined;
export function exampleConfig(): FerryConfig {
  cached ??= loadConfigOrThrow(EXAMPLE_CONFIG_PATH);
  return structuredClone(cached);
}
