#!/bin/sh
# v3 ships a readiness bug: it waits for a migration that never happens.
# HELLO_FORCE_READY=1 overrides it.
[ "${HELLO_FORCE_READY:-0}" = 1 ] && exit 0
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ERROR [hello-app] v3 not ready: migration 0042 pending" >> "${LOG_FILE:-/var/log/app/app.log}"
exit 1
