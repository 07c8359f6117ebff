#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages,
# npm dependencies, the local infrastructure — Kubernetes is built from source
# on the first run and cached in ~/.cache/ferry), then runs every test:
# lint, types, unit, integration, end-to-end and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== lint and types" >&2
biome check .
tsc --noEmit
echo "== imports (no cycles; domain, commands and chat adapters keep to their layer; .dependency-cruiser.cjs)" >&2
depcruise --config .dependency-cruiser.cjs src commands jobs dev

echo "== local infrastructure (redis, registries, images, two clusters)" >&2
bash infra/infra.sh up
# On CI nothing may outlive the run; on a workstation the infrastructure stays
# up so the next run starts warm (`bash infra/infra.sh down` stops it).
if [[ "${CI:-}" == "true" || "${FERRY_INFRA_DOWN:-}" == "1" ]]; then
  trap 'bash infra/infra.sh down >&2 || true' EXIT
fi

echo "== tests" >&2
# Ferry's own logs are JSON lines; in tests only warnings and errors are worth reading.
export LOG_LEVEL="${LOG_LEVEL:-warn}"
status=0
vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || status=$?
# One plain closing line with the counts, whatever reads this log.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results/vitest.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
echo "test command took $(( $(date +%s) - started ))s" >&2
exit "$status"
