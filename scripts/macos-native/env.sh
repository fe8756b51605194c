# Sourced by serve.sh, run.sh and bench.sh: the libraries and backends live beside the executables.
# shellcheck shell=sh
: "${PREFIX:?set by the orchestrator (see 'orchestrator plan')}"
LD_LIBRARY_PATH="$PREFIX/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
DYLD_LIBRARY_PATH="$PREFIX/bin${DYLD_LIBRARY_PATH:+:$DYLD_LIBRARY_PATH}"
export LD_LIBRARY_PATH DYLD_LIBRARY_PATH
