#!/bin/sh
# Installs what python-on-whales drives and Debian bookworm lacks: the docker buildx and docker compose
# (v2) CLI plugins, taken as static binaries from Debian trixie's packages into the user's
# cli-plugins folder (nothing system-wide changes), and debootstrap for `orchestrator bases bootstrap`.
# Does nothing for what is already there. Docker Engine >= 23 installs usually ship both plugins.
set -eu

plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
suite="${DEBIAN_PLUGIN_SUITE:-trixie}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

need=""
docker buildx version >/dev/null 2>&1 || need="$need docker-buildx"
docker compose version >/dev/null 2>&1 || need="$need docker-compose"

if [ -n "$need" ]; then
    command -v apt-get >/dev/null || { echo "install the docker buildx and compose plugins for your system" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    arch=$(dpkg --print-architecture)
    mkdir -p "$work/lists/partial" "$work/debs"
    echo "deb [arch=$arch] $mirror $suite main" >"$work/sources.list"
    apt_opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$work/lists -o Debug::NoLocking=1"
    # shellcheck disable=SC2086 # apt options are separate words
    apt-get $apt_opts -qq update
    # shellcheck disable=SC2086
    (cd "$work/debs" && apt-get $apt_opts -qq download $need)
    mkdir -p "$plugins"
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$work/root"
    done
    for bin in "$work"/root/usr/libexec/docker/cli-plugins/*; do
        install -m 0755 "$bin" "$plugins/"
        echo "installed $(basename "$bin") into $plugins"
    done
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y debootstrap >/dev/null
        echo "installed debootstrap"
    else
        echo "note: debootstrap is missing; 'orchestrator bases bootstrap' needs it (apt-get install debootstrap)" >&2
    fi
fi
docker buildx version
docker compose version
