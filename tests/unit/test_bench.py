"""Parsing, completeness, comparison and reporting of llama-batched-bench output (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.app.results import append_record, plot, read_records
from orchestrator.core.bench import (
    BenchRecord,
    compare,
    expected_rows,
    latest_per_set,
    markdown_report,
    missing_rows,
    parse_jsonl,
    parse_markdown,
    parse_output,
)
from orchestrator.core.reference import REFERENCES, check_references
from orchestrator.errors import OrchestratorError

BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "bench"


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_publishers_tables_parse_back_to_the_stored_data(key: str) -> None:
    rows = parse_markdown((BENCH / f"seed-{key}.md").read_text())
    assert rows == list(REFERENCES[key].rows)


def test_references_belong_to_their_targets() -> None:
    check_references()
    elsewhere = {key: replace(table, target="elsewhere") for key, table in REFERENCES.items()}
    with pytest.raises(OrchestratorError, match="target elsewhere's table; name a table of its own target"):
        check_references(references=elsewhere)
    with pytest.raises(OrchestratorError, match="no table; name a table of its own target"):
        check_references(references={})


def test_recorded_jsonl_and_markdown_agree_in_shape() -> None:
    jsonl = parse_jsonl((BENCH / "gemma-cpu.jsonl.txt").read_text())
    markdown = parse_markdown((BENCH / "gemma-cpu.md.txt").read_text())
    keys = [(0, 8, 1), (0, 8, 2), (64, 8, 1), (64, 8, 2), (128, 8, 1), (128, 8, 2)]
    assert [(r.pp, r.tg, r.pl) for r in jsonl] == keys
    assert [(r.pp, r.tg, r.pl) for r in markdown] == keys
    # PP=0: printf's nan becomes 0.00, as in the publisher's tables.
    assert jsonl[0].speed_pp == 0.0 and markdown[0].speed_pp == 0.0
    assert all(r.speed_tg > 0 for r in jsonl + markdown)
    assert parse_output((BENCH / "gemma-cpu.md.txt").read_text()) == markdown


def test_a_row_cut_off_at_exit_is_missing() -> None:
    text = (BENCH / "gemma-cpu.jsonl.txt").read_text()
    last = [line for line in text.splitlines() if line.startswith("{")][-1]
    truncated = text.replace(last, last[: len(last) // 2])
    rows = parse_jsonl(truncated)
    expected = expected_rows(1024, (0, 64, 128), (8,), (1, 2))
    assert missing_rows(expected, rows) == [(128, 8, 2)]


def test_expected_rows_follow_llama_batched_bench() -> None:
    # -c 262150 is padded to 262400: the 262144 + 128 row fits, as in the publisher's tables.
    seed = expected_rows(262150, (0, 2048, 8192, 16384, 32768, 65536, 262144), (128,), (1,))
    assert len(seed) == 7
    assert expected_rows(1024, (512, 1000), (64,), (1, 2)) == [(512, 64, 1)]


def test_comparison_ratios() -> None:
    rows = parse_markdown((BENCH / "seed-dgx-spark-256k.md").read_text())
    halved = [type(r)(**{**r.__dict__, "speed_pp": r.speed_pp / 2, "speed_tg": r.speed_tg / 2}) for r in rows]
    comparisons = compare(halved, "dgx-spark-256k")
    assert len(comparisons) == 7
    assert comparisons[0].ratio_pp is None  # nothing to compare at PP=0
    assert all(c.ratio_tg == pytest.approx(0.5) for c in comparisons)
    assert all(c.ratio_pp == pytest.approx(0.5) for c in comparisons[1:])


def _record(rows_file: str, finished: float, complete: bool = True) -> BenchRecord:
    return BenchRecord(
        run_id=f"r{finished:.0f}",
        started=finished - 10,
        finished=finished,
        complete=complete,
        target="dgx-spark",
        profile="long-context",
        bench="256k",
        reference="dgx-spark-256k",
        model={"alias": "step-3.5-flash", "file": "x.gguf", "size": 1, "sha256": "ab"},
        build={"image": "img", "source": "upstream", "commit": "0c1e570"},
        runtime={"argv": ["llama-batched-bench"]},
        host={"cpu": "test"},
        rows=parse_markdown((BENCH / rows_file).read_text()),
        missing=[] if complete else [(262144, 128, 1)],
    )


def test_records_round_trip_and_report(tmp_path: Path) -> None:
    first, second = (
        _record("seed-dgx-spark-256k.md", 100),
        _record("seed-dgx-spark-256k.md", 200, complete=False),
    )
    append_record(tmp_path, first)
    append_record(tmp_path, second)
    back = read_records(tmp_path)
    assert back == [first, second]
    assert latest_per_set(back) == [second]
    report = markdown_report([second])
    assert "INCOMPLETE" in report and "| 2048 | 392.17 | 392.17 | 1.00 |" in report


def test_plot_is_a_png(tmp_path: Path) -> None:
    import matplotlib.image

    out = plot([_record("seed-dgx-spark-256k.md", 100)], tmp_path / "bench.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(out).shape[0] > 100
