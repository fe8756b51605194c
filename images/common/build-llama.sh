#!/bin/sh
# One build script for every image family (cuda, vulkan): what differs arrives as build arguments
# from the orchestrator's target catalogue (see `orchestrator plan`), never typed here.
#   build-llama.sh packages PKG...   install missing Debian/Ubuntu packages (none missing: no network)
#   build-llama.sh fetch             put the llama.cpp tree in /src (git clone at a commit, or the staged copy)
#   build-llama.sh build             configure and build the shipped tools into /opt/llama
#   build-llama.sh user UID DIR      create the unprivileged user the server runs as, and its cache DIR
#   build-llama.sh driver FILE [PKG] record the GPU driver package's version (none for CUDA: the host's)
#   build-llama.sh webui STAGED DIR  where DIR's llama-server has no page inside, the staged one instead
# The macOS / --native scripts (scripts/macos-native/build.sh) run `build` on the host, with SRC_DIR,
# BUILD_DIR, INSTALL_DIR and CCACHE_DIR pointing into the orchestrator's data directory.
set -eu

die() { echo "build-llama.sh: $*" >&2; exit 1; }

packages() {
    [ "$#" -gt 0 ] || die "no packages named: pass BUILD_PACKAGES / RUNTIME_PACKAGES build arguments"
    # PACKAGE/SUITE comes from that suite (trixie-backports), with what it needs from there: always
    # installed, since the base may hold the suite's older version. Plain names only when missing.
    missing="" suites=""
    for pkg in "$@"; do
        case "$pkg" in
            */*) suites="$suites ${pkg#*/}"; continue ;;
            # PACKAGE:ARCH, another architecture's library for cross-compiling (Debian multiarch).
            *:*) dpkg --print-foreign-architectures | grep -qx "${pkg#*:}" || dpkg --add-architecture "${pkg#*:}" ;;
        esac
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
    done
    [ -z "$missing$suites" ] && { echo "packages already present: $*"; return 0; }
    export DEBIAN_FRONTEND=noninteractive
    suites=$(echo "$suites" | tr ' ' '\n' | sort -u)
    if [ -n "$suites" ]; then
        # Other suites from the mirror the base already uses (Debian's own, or the one given at bootstrap).
        mirror=$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
            | grep -v security | head -n 1)
        [ -n "$mirror" ] || die "no Debian mirror in /etc/apt to take $suites from"
        for suite in $suites; do echo "deb $mirror $suite main" > "/etc/apt/sources.list.d/$suite.list"; done
    fi
    apt-get update
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    [ -z "$missing" ] || apt-get install -y --no-install-recommends $missing
    for suite in $suites; do
        wanted=""
        for pkg in "$@"; do
            [ "${pkg#*/}" = "$suite" ] && [ "$pkg" != "${pkg%/*}" ] && wanted="$wanted ${pkg%/*}"
        done
        # shellcheck disable=SC2086 # one package per word
        apt-get install -y --no-install-recommends -t "$suite" $wanted
    done
    rm -rf /var/lib/apt/lists/*
}

# The GPU driver the image brings (a Debian package), named with its version in FILE for the image's label.
driver() {
    file="${1:?file}"
    [ "$#" -gt 1 ] || return 0
    version=$(dpkg-query -W -f='${Version}' "$2") || die "driver package $2 is not installed"
    echo "$2 $version" > "$file"
    echo "driver: $2 $version"
}

fetch() {
    case "${LLAMA_SOURCE_KIND:?}" in
        git)
            if [ -z "${LLAMA_GIT_URL:-}" ] || [ -z "${LLAMA_GIT_COMMIT:-}" ]; then
                die "git source needs LLAMA_GIT_URL and LLAMA_GIT_COMMIT"
            fi
            git init -q /checkout
            git -C /checkout fetch -q --depth 1 "$LLAMA_GIT_URL" "$LLAMA_GIT_COMMIT" \
                || die "cannot fetch $LLAMA_GIT_COMMIT from $LLAMA_GIT_URL"
            git -C /checkout checkout -q FETCH_HEAD
            root="/checkout/${LLAMA_SOURCE_SUBDIR:-}"
            ;;
        local)
            root="/staged/${LLAMA_SOURCE_SUBDIR:-}"
            ;;
        *) die "LLAMA_SOURCE_KIND must be git or local, not $LLAMA_SOURCE_KIND" ;;
    esac
    if [ ! -f "$root/CMakeLists.txt" ] || [ ! -d "$root/ggml" ]; then
        die "no llama.cpp tree at $root (LLAMA_SOURCE_SUBDIR=${LLAMA_SOURCE_SUBDIR:-})"
    fi
    # A fixed path keeps ccache hits across source bumps and staging folders.
    mv "$root" /src
}

build() {
    [ -n "${CMAKE_ARGS:-}" ] || die "CMAKE_ARGS is empty: build through 'orchestrator build' (see 'orchestrator plan')"
    [ -n "${LLAMA_TARGETS:-}" ] || die "LLAMA_TARGETS is empty"
    src="${SRC_DIR:-/src}"
    out="${BUILD_DIR:-$src/build}"
    install="${INSTALL_DIR:-/opt/llama}"
    export CCACHE_DIR="${CCACHE_DIR:-/ccache}" CCACHE_BASEDIR="$src" CCACHE_COMPILERCHECK=content
    # shellcheck disable=SC2086 # CMAKE_ARGS is a list of -D flags
    # The commit (and build number where one is known) the binaries report in /props, the web UI and
    # every response's system_fingerprint; a tree without its git history would say b0-unknown.
    cmake -S "$src" -B "$out" $CMAKE_ARGS ${LLAMA_BUILD_NUMBER:+-DLLAMA_BUILD_NUMBER=$LLAMA_BUILD_NUMBER} \
        ${LLAMA_BUILD_COMMIT:+-DLLAMA_BUILD_COMMIT=$LLAMA_BUILD_COMMIT}
    # A word may name alternatives (rpc-server|ggml-rpc-server): targets were renamed across versions.
    known=$(cmake --build "$out" --target help)
    targets=""
    for word in $LLAMA_TARGETS; do
        found=""
        for name in $(echo "$word" | tr '|' ' '); do
            if echo "$known" | grep -Eq "(^|[ .:])$name(:| |$)"; then found="$name"; break; fi
        done
        [ -n "$found" ] || die "this llama.cpp has no target $word"
        targets="$targets $found"
    done
    # shellcheck disable=SC2086 # one target per word
    cmake --build "$out" --config Release -j "${BUILD_JOBS:-$(getconf _NPROCESSORS_ONLN)}" --target $targets
    check_architecture "$out/bin/llama-server"
    mkdir -p "$install"
    # Whether llama-server has its web page inside: upstream's UI step leaves the bundle it embedded in
    # tools/ui/dist. One line for the build log (the orchestrator reports it) and a file in the image.
    if [ -f "$out/tools/ui/dist/index.html" ]; then
        webui="embedded"
    else
        webui="none: the build could not fetch llama.cpp's web UI bundle; serve one with 'orchestrator up --ui DIR'"
    fi
    echo "$webui" > "$install/webui.txt"
    echo "web UI: $webui"
    # The RPC protocol this build speaks: a head and its workers must agree (recorded as an image label).
    header="$src/ggml/include/ggml-rpc.h"
    if [ -f "$header" ]; then
        for part in MAJOR MINOR PATCH; do
            sed -n "s/^#define RPC_PROTO_${part}_VERSION[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$header"
        done | paste -sd. - > "$install/rpc-protocol.txt"
        echo "RPC protocol: $(cat "$install/rpc-protocol.txt")"
    fi
    for word in $LLAMA_TARGETS; do
        wanted="${word%%|*}"
        for name in $(echo "$word" | tr '|' ' '); do
            if [ -x "$out/bin/$name" ]; then
                cp "$out/bin/$name" "$install/"
                [ "$name" = "$wanted" ] || ln -sf "$name" "$install/$wanted"
                break
            fi
        done
    done
    # Backends (GPU and each CPU variant) are plugins found next to the executables; on macOS the
    # libraries are .dylib files.
    find "$out" \( -name '*.so*' -o -name '*.dylib' \) -exec cp -P {} "$install/" \;
    ccache --show-stats 2>/dev/null | head -n 8 || true
}

# An image's programs must be of its architecture (TARGETARCH, from BuildKit): a cross-compiling
# Dockerfile handed a plan without cross settings would build the build machine's.
check_architecture() {
    [ -n "${TARGETARCH:-}" ] && command -v readelf >/dev/null || return 0
    case "$TARGETARCH" in
        amd64) wanted="X86-64" ;;
        arm64) wanted="AArch64" ;;
        *) return 0 ;;
    esac
    machine=$(readelf -h "$1" | sed -n 's/^ *Machine: *//p')
    case "$machine" in
        *"$wanted") echo "architecture: $machine" ;;
        *) die "$1 is built for $machine, not $TARGETARCH: the plan's CMAKE_ARGS and the Dockerfile's build platform disagree (see 'orchestrator plan')" ;;
    esac
}

user() {
    uid="${1:?uid}"
    cache="${2:?cache dir}"
    groupadd --system --gid "$uid" llama 2>/dev/null || true
    useradd --system --uid "$uid" --gid "$uid" --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin llama
    # The RPC worker's tensor cache: a named volume mounted here takes this owner.
    install -d -o "$uid" -g "$uid" -m 0750 "$cache"
}

# The built page the orchestrator staged (index.html and SOURCE, what it is) goes to DIR/webui where the
# build embedded none; DIR/webui.txt then says which page the image carries (read back into a label).
webui() {
    staged="${1:?staged page folder}"
    install="${2:?install prefix}"
    if grep -q '^embedded' "$install/webui.txt" 2>/dev/null || [ ! -f "$staged/index.html" ]; then
        rm -rf "$staged"
        echo "web UI: $(cat "$install/webui.txt" 2>/dev/null || echo none)"
        return 0
    fi
    mkdir -p "$install/webui"
    cp "$staged/index.html" "$install/webui/index.html"
    echo "fallback: $(cat "$staged/SOURCE")" > "$install/webui.txt"
    rm -rf "$staged"
    echo "web UI: $(cat "$install/webui.txt")"
}

cmd="${1:-}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
    packages) packages "$@" ;;
    fetch) fetch ;;
    build) build ;;
    user) user "$@" ;;
    driver) driver "$@" ;;
    webui) webui "$@" ;;
    *) die "usage: build-llama.sh packages|fetch|build|user|driver|webui" ;;
esac
