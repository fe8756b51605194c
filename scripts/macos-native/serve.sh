#!/bin/sh
# Start llama-server in the background: serve.sh -- ARGV...  (the server's argv from the plan).
# STATE_DIR holds llama-server.pid, llama-server.log and llama-server.argv, which stop.sh and the
# orchestrator's status and logs read.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/macos-native/env.sh
. "$here/env.sh"
: "${STATE_DIR:?set by the orchestrator}"
[ "${1:-}" = "--" ] && shift
[ "$#" -gt 0 ] || { echo "serve.sh: no server command given" >&2; exit 2; }

pidfile="$STATE_DIR/llama-server.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "serve.sh: llama-server is already running (pid $(cat "$pidfile")); stop.sh first" >&2
    exit 1
fi
mkdir -p "$STATE_DIR"
printf '%s\n' "$@" > "$STATE_DIR/llama-server.argv"
nohup "$@" >> "$STATE_DIR/llama-server.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
echo "started llama-server (pid $!); log: $STATE_DIR/llama-server.log"
