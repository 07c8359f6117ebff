#!/usr/bin/env bash
# The README's run command: installs what Ferry needs (Debian packages, npm
# dependencies), then `ferry start` brings up the local infrastructure, the
# Slack emulator's chat console, the bot, the worker and the watcher.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
exec node bin/ferry.mjs start "$@"
