"""Benchmark and quality results on disk: records appended to `<results>/bench.jsonl`, read back, plotted
and tabled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from rich.table import Table

from orchestrator.app.config import load_settings
from orchestrator.core.bench import BenchRecord, model_key, reference_for
from orchestrator.core.quality import EVAL_KIND, QUALITY_COLUMNS, EvalRecord, quality_row
from orchestrator.core.serve_bench import (
    SERVE_KIND,
    ServeRecord,
    compare_serving,
    group_sweeps,
    model_label,
    record_kind,
)
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


def read_serving_sweeps(results: Path) -> list[tuple[ServeRecord, tuple[ServeRecord, ...]]]:
    """The serving benchmark's records, as the (off, settings measured against it) each `bench serve`
    wrote; records of another model than their off record's are never put beside it."""
    return group_sweeps([ServeRecord.from_json(line) for line in _lines(results, SERVE_KIND)])


def plot_serving(sweeps: Sequence[tuple[ServeRecord, Sequence[ServeRecord]]], out: Path) -> Path:
    """Decode tokens/s per client count, speculation off and each setting side by side, one panel per
    `bench serve` (one model each)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4), squeeze=False)
    for axis, (off, ons) in zip(axes[0], sweeps, strict=True):
        width = 0.8 / (len(ons) + 1)
        clients = [r.clients for r in compare_serving(off, ons[0])]
        positions = range(len(clients))
        first = compare_serving(off, ons[0])
        axis.bar([x - 0.4 for x in positions], [r.decode_off for r in first], width=width, label="off")
        for i, on in enumerate(ons, start=1):
            rows = compare_serving(off, on)
            axis.bar(
                [x - 0.4 + i * width for x in positions],
                [r.decode_on for r in rows],
                width=width,
                label=on.speculation,
            )
        axis.set_xticks(list(positions), [f"{c} client{'s' if c > 1 else ''}" for c in clients])
        axis.set_ylabel("decode t/s per request")
        axis.set_title(f"{off.target} {off.profile} ({model_label(off.model)})", fontsize=9)
        axis.legend(fontsize=7)
    return _save(fig, out)


def plot(records: Sequence[BenchRecord], out: Path) -> Path:
    """S_PP and S_TG against context depth: one line per measured run, dashed for published tables."""
    plt = _pyplot()
    fig, (ax_pp, ax_tg) = plt.subplots(1, 2, figsize=(12, 4.5))
    shown: set[str] = set()
    for record in records:
        label = f"{record.target} {record.profile} ({model_key(record.model)}, {record.model.get('file')})"
        # S_PP means nothing at PP=0: that row only shows generation on an empty context.
        with_prompt = [r for r in record.rows if r.pp > 0]
        ax_pp.plot([r.pp for r in with_prompt], [r.speed_pp for r in with_prompt], marker="o", label=label)
        ax_tg.plot([r.pp for r in record.rows], [r.speed_tg for r in record.rows], marker="o", label=label)
        # A published table only beside a run of the model it measured.
        table = reference_for(record.model, record.reference)
        if table is not None and table.key not in shown:
            shown.add(table.key)
            ref_x = [max(r.pp, 1) for r in table.rows]
            ax_pp.plot(
                ref_x,
                [r.speed_pp for r in table.rows],
                linestyle="--",
                label=f"published {table.key} ({table.model})",
            )
            ax_tg.plot(
                ref_x,
                [r.speed_tg for r in table.rows],
                linestyle="--",
                label=f"published {table.key} ({table.model})",
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
