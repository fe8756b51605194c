#!/usr/bin/env bash
# The whole test suite, from a fresh clone: a private virtual environment, linters, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k plan).
set -euo pipefail
cd "$(dirname "$0")/.."

# The image tests drive docker buildx and compose, and bootstrap bases with debootstrap.
if command -v docker >/dev/null 2>&1; then
    scripts/install-docker-plugins.sh >/dev/null
fi

# Host tools some tests drive: a throwaway registry on 127.0.0.1 for the push test (Debian's
# docker-registry), and cmake, ccache and shellcheck for the native (--native / macOS scripts) tests.
# chromium + chromedriver for the browser tests; caddy for the proxy in front of a --native server.
missing=""
for tool in docker-registry cmake ccache shellcheck chromium chromium-driver caddy; do
    command="$tool"
    [ "$tool" = chromium-driver ] && command=chromedriver
    command -v "$command" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086 # one package per word
    DEBIAN_FRONTEND=noninteractive apt-get -qq install -y $missing >/dev/null 2>&1 \
        || { apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y $missing >/dev/null; }
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
# The slowest tests are listed at the end, so a run that grows says where.
exec .venv/bin/python -m pytest --durations=15 "$@"
