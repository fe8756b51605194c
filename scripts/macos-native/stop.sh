#!/bin/sh
# Stop the llama-server serve.sh started: TERM, then KILL after STOP_TIMEOUT seconds (default 30).
set -eu
: "${STATE_DIR:?set by the orchestrator}"
pidfile="$STATE_DIR/llama-server.pid"
if [ ! -f "$pidfile" ]; then
    echo "not running (no $pidfile)"
    exit 0
fi
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "${STOP_TIMEOUT:-30}" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped llama-server (pid $pid)"
else
    echo "llama-server (pid $pid) had already exited"
fi
rm -f "$pidfile"
