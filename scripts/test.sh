#!/usr/bin/env bash
# The whole test suite, from a fresh clone: a private virtual environment, linters, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k plan).
set -euo pipefail
cd "$(dirname "$0")/.."

# The image tests drive docker buildx and compose, and bootstrap bases with debootstrap.
if command -v docker >/dev/null 2>&1; then
    scripts/install-docker-plugins.sh >/dev/null
    # The push test runs a throwaway registry on 127.0.0.1 (Debian's docker-registry, the CNCF distribution).
    if ! command -v docker-registry >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get -qq install -y docker-registry >/dev/null 2>&1 \
            || { apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y docker-registry >/dev/null; }
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
