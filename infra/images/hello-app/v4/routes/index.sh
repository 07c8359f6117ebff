#!/bin/sh
# GET / — greeting (v2: adds the request count line) and an app log line.
v=$(cat /app/VERSION)
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) INFO  [hello-app] $v index served" >> "${LOG_FILE:-/var/log/app/app.log}"
echo "hello from hello-app $v on $(hostname)"
echo "served-by: ferry-run $(cat /opt/stack/conf/stack.properties)"
