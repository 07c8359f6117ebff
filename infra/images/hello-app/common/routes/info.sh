#!/bin/sh
# GET /info — runtime facts for debugging.
echo "app=hello-app version=$(cat /app/VERSION) host=$(hostname) uid=$(id -u)"
echo "memory.limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max 2>/dev/null)"
