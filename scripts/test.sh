#!/usr/bin/env bash
# The whole test suite, from a fresh clone: a private virtual environment, linters, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k plan).
set -euo pipefail
cd "$(dirname "$0")/.."

# The image tests drive docker buildx and compose, and bootstrap bases with debootstrap.
if command -v docker >/dev/null 2>&1; then
    scripts/install-docker-plugins.sh >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
