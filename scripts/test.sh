#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
biome check .
tsc --noEmit
vitest run "$@"
