#!/usr/bin/env bash
# Mutation testing of the refusals, limits and security rules: mutmut changes the modules that
# [tool.mutmut] in pyproject.toml names, one small change at a time, and runs their unit tests against
# each change. Prints, per module, how many of those changes a test noticed (killed / total, %), and
# fails when any module is below MUTATION_MIN percent (default 90). Not part of the suite: a run takes
# tens of minutes on two cores. Extra arguments go to `mutmut run` (e.g. a mutant name pattern).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'

# A fresh run: mutmut keeps results between runs, which would report figures for code since changed.
rm -rf mutants
started=$(date +%s)
# One mutant at a time: the machines this runs on share few cores.
nice -n 10 .venv/bin/mutmut run --max-children "${MUTATION_CHILDREN:-1}" "$@"
echo "mutation run: $(($(date +%s) - started)) s"

exec .venv/bin/python - "${MUTATION_MIN:-90}" <<'EOF'
import sys
from collections import Counter

from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

minimum = float(sys.argv[1])
short = []
print(f"{'module':40} {'killed':>6} {'total':>6} {'%':>6}  survived  timeout  no tests  other")
for path in sorted(walk_mutatable_files()):
    data = SourceFileMutationData(path=path)
    data.load()
    counts = Counter(status_by_exit_code[code] for code in data.exit_code_by_key.values())
    total = sum(counts.values())
    killed = counts["killed"]
    other = total - killed - counts["survived"] - counts["timeout"] - counts["no tests"]
    percent = 100 * killed / total if total else 0.0
    print(
        f"{str(path):40} {killed:6} {total:6} {percent:6.1f}  {counts['survived']:8} {counts['timeout']:8} "
        f"{counts['no tests']:9} {other:6}"
    )
    if percent < minimum:
        short.append(str(path))
if short:
    sys.exit(f"below {minimum:g}% killed: {', '.join(short)} ('.venv/bin/mutmut results' lists the survivors)")
EOF
