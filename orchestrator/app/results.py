"""Benchmark and quality results on disk: records appended to `<results>/bench.jsonl`, read back, plotted
and tabled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.table import Table

from orchestrator.app.config import load_settings
from orchestrator.core.bench import BenchRecord
from orchestrator.core.quality import EVAL_KIND, QUALITY_COLUMNS, EvalRecord, quality_row
from orchestrator.core.reference import REFERENCES
from orchestrator.core.serve_bench import SERVE_KIND, ServeRecord, compare_serving, record_kind
from orchestrator.files import writable_folder


class Record(Protocol):
    """A benchmark record of any kind (batched, serve, wake): one JSON line of the results store."""

    def to_json(self) -> str: ...


def results_dir(flags: dict[str, object], results: str | None) -> Path:
    """--results, or the data directory's results folder, there and writable."""
    folder = Path(results) if results else load_settings(flags).data_dir / "results"
    return writable_folder(folder, "the results folder")


def append_record(results: Path, record: Record) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / "bench.jsonl"
    with path.open("a") as out:
        out.write(record.to_json() + "\n")
    return path


def _lines(results: Path, kind: str) -> list[str]:
    path = results / "bench.jsonl"
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines() if line.strip() and record_kind(line) == kind]


def read_records(results: Path) -> list[BenchRecord]:
    """The llama-batched-bench records."""
    return [BenchRecord.from_json(line) for line in _lines(results, "batched")]


def read_eval_records(results: Path) -> list[EvalRecord]:
    """The quality records (orchestrator eval), oldest first."""
    return [EvalRecord.from_json(line) for line in _lines(results, EVAL_KIND)]


def read_serving_pairs(results: Path) -> list[tuple[ServeRecord, ServeRecord]]:
    """The serving benchmark's records, as the (off, on) pairs each `bench serve` wrote."""
    by_comparison: dict[str, list[ServeRecord]] = {}
    for line in _lines(results, SERVE_KIND):
        record = ServeRecord.from_json(line)
        by_comparison.setdefault(record.comparison, []).append(record)
    return [(pair[0], pair[1]) for pair in by_comparison.values() if len(pair) == 2]


def plot_serving(pairs: Sequence[tuple[ServeRecord, ServeRecord]], out: Path) -> Path:
    """Decode tokens/s per client count, speculation off and on side by side, one panel per comparison."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4), squeeze=False)
    for axis, (off, on) in zip(axes[0], pairs, strict=True):
        rows = compare_serving(off, on)
        positions = range(len(rows))
        axis.bar([x - 0.2 for x in positions], [r.decode_off for r in rows], width=0.4, label=off.speculation)
        axis.bar([x + 0.2 for x in positions], [r.decode_on for r in rows], width=0.4, label=on.speculation)
        axis.set_xticks(list(positions), [f"{r.clients} client{'s' if r.clients > 1 else ''}" for r in rows])
        axis.set_ylabel("decode t/s per request")
        axis.set_title(f"{on.target} {on.profile} ({on.model.get('alias')})", fontsize=9)
        axis.legend(fontsize=7)
    return _save(fig, out)


def plot(records: Sequence[BenchRecord], out: Path) -> Path:
    """S_PP and S_TG against context depth: one line per measured run, dashed for published tables."""
    plt = _pyplot()
    fig, (ax_pp, ax_tg) = plt.subplots(1, 2, figsize=(12, 4.5))
    shown: set[str] = set()
    for record in records:
        label = f"{record.target} {record.profile} ({record.model.get('alias')})"
        # S_PP means nothing at PP=0: that row only shows generation on an empty context.
        with_prompt = [r for r in record.rows if r.pp > 0]
        ax_pp.plot([r.pp for r in with_prompt], [r.speed_pp for r in with_prompt], marker="o", label=label)
        ax_tg.plot([r.pp for r in record.rows], [r.speed_tg for r in record.rows], marker="o", label=label)
        if record.reference and record.reference not in shown:
            shown.add(record.reference)
            table = REFERENCES[record.reference]
            ref_x = [max(r.pp, 1) for r in table.rows]
            ax_pp.plot(
                ref_x, [r.speed_pp for r in table.rows], linestyle="--", label=f"published {table.key}"
            )
            ax_tg.plot(
                ref_x, [r.speed_tg for r in table.rows], linestyle="--", label=f"published {table.key}"
            )
    for axis, title in ((ax_pp, "prompt processing S_PP (t/s)"), (ax_tg, "generation S_TG (t/s)")):
        axis.set_xscale("symlog", linthresh=1024)
        axis.set_xlabel("context depth (prompt tokens)")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    ax_tg.legend(fontsize=7)
    return _save(fig, out)


def _pyplot() -> Any:
    import matplotlib

    # Files only: no display, whatever the machine has.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def quality_table(records: Sequence[EvalRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in QUALITY_COLUMNS:
        table.add_column(column, justify="left" if column in ("model", "reference") else "right")
    for record in records:
        table.add_row(*quality_row(record))
    return table
