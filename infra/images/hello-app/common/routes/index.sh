#!/bin/sh
# GET / — greeting; also appends to the application log.
v=$(cat /app/VERSION)
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) INFO  [hello-app] $v index served" >> "${LOG_FILE:-/var/log/app/app.log}"
echo "hello from hello-app $v on $(hostname)"
