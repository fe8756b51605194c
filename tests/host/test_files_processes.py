"""Files written whole while other processes write and read them: never torn, never missing (real
processes, so in the host tier)."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from orchestrator.files import write_atomic

WRITES = 300


def _writer(path: str, who: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    for n in range(WRITES):
        # Large enough that a torn write would show as a truncated JSON document.
        write_atomic(Path(path), json.dumps({"who": who, "n": n, "pad": "x" * (20000 + who * 7 + n)}))


def test_two_writers_and_a_reader_never_see_a_torn_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    write_atomic(path, json.dumps({"who": -1, "n": -1, "pad": ""}))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [context.Process(target=_writer, args=(str(path), who, start)) for who in (1, 2)]
    for writer in writers:
        writer.start()
    start.set()
    reads = 0
    while any(w.is_alive() for w in writers) or reads < 50:
        document = json.loads(path.read_text())  # FileNotFoundError or a torn JSON fail the test
        assert document["pad"].startswith("x" * 100) or document["who"] == -1
        reads += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert json.loads(path.read_text())["n"] == WRITES - 1
    # No temporary file is left behind by either writer.
    assert [p.name for p in tmp_path.iterdir()] == ["models.json"]
