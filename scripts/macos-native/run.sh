#!/bin/sh
# One answer from llama-cli: run.sh ARGV...  (the plan's run command).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/macos-native/env.sh
. "$here/env.sh"
exec "$@"
