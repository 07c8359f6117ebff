# shellcheck shell=bash
# `infra/infra.sh status`: what runs, where.
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

status() {
  local f name pid
  printf '%-32s %-8s %s\n' COMPONENT PID STATE
  for f in "$PIDS"/*.pid; do
    [[ -f $f ]] || continue
    name=$(basename "$f" .pid)
    if pid=$(pid_of "$name"); then printf '%-32s %-8s running\n' "$name" "$pid"
    else printf '%-32s %-8s DEAD (log %s)\n' "$name" "$(<"$f")" "$LOGS/$name.log"; fi
  done
  [[ -f $RUN/env.sh ]] && echo "env: $RUN/env.sh" && echo "json: $RUN/infra.json"
  return 0
}
