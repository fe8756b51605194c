#!/bin/sh
# One llama-batched-bench parameter set: bench.sh ARGV...  (a plan's bench command).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/macos-native/env.sh
. "$here/env.sh"
exec "$@"
