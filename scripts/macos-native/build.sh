#!/bin/sh
# Build llama.cpp on this machine (macOS with Metal, or any host with --native) into PREFIX. The
# orchestrator names PREFIX after the source commit and the cmake flags, so a finished prefix is never
# built again; it passes every setting (see 'orchestrator plan --target mac-studio'):
#   PREFIX CMAKE_ARGS LLAMA_TARGETS LLAMA_SOURCE_KIND (git|local) LLAMA_SOURCE_DIR
#   LLAMA_GIT_URL LLAMA_GIT_COMMIT LLAMA_SOURCE_SUBDIR [CCACHE_DIR] [BUILD_JOBS]
# The build itself is the images' own script (images/common/build-llama.sh build).
set -eu

die() { echo "build.sh: $*" >&2; exit 1; }

: "${PREFIX:?set by the orchestrator (see 'orchestrator plan')}"
here=$(cd "$(dirname "$0")" && pwd)
common="$here/../../images/common/build-llama.sh"
[ -f "$common" ] || die "missing $common"

if [ -f "$PREFIX/.complete" ]; then
    echo "up to date: $PREFIX"
    exit 0
fi

work="$PREFIX.work"
rm -rf "$work"
mkdir -p "$work"
# The work tree (checkout, objects) is gone when the script ends, built or not; ccache keeps the objects.
trap 'rm -rf "$work"' EXIT
case "${LLAMA_SOURCE_KIND:?}" in
    git)
        if [ -z "${LLAMA_GIT_URL:-}" ] || [ -z "${LLAMA_GIT_COMMIT:-}" ]; then
            die "git source needs LLAMA_GIT_URL and LLAMA_GIT_COMMIT"
        fi
        git init -q "$work/checkout"
        git -C "$work/checkout" fetch -q --depth 1 "$LLAMA_GIT_URL" "$LLAMA_GIT_COMMIT" \
            || die "cannot fetch $LLAMA_GIT_COMMIT from $LLAMA_GIT_URL"
        git -C "$work/checkout" checkout -q FETCH_HEAD
        src="$work/checkout/${LLAMA_SOURCE_SUBDIR:-}"
        ;;
    local)
        src="${LLAMA_SOURCE_DIR:?}"
        ;;
    *) die "LLAMA_SOURCE_KIND must be git or local, not $LLAMA_SOURCE_KIND" ;;
esac
[ -f "$src/CMakeLists.txt" ] || die "no llama.cpp tree at $src"

SRC_DIR="$src" BUILD_DIR="$work/build" INSTALL_DIR="$work/prefix/bin" \
    CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ccache}" sh "$common" build

# Only a finished build becomes PREFIX, so an interrupted one is never mistaken for it.
printf '%s\n' "$CMAKE_ARGS" > "$work/prefix/.complete"
rm -rf "$PREFIX"
mv "$work/prefix" "$PREFIX"
echo "built: $PREFIX"
