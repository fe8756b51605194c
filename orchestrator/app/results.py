"""Benchmark results on disk: records appended to `<results>/bench.jsonl`, read back, and plotted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.core.bench import BenchRecord
from orchestrator.core.reference import REFERENCES


def append_record(results: Path, record: BenchRecord) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / "bench.jsonl"
    with path.open("a") as out:
        out.write(record.to_json() + "\n")
    return path


def read_records(results: Path) -> list[BenchRecord]:
    path = results / "bench.jsonl"
    if not path.is_file():
        return []
    return [BenchRecord.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def plot(records: Sequence[BenchRecord], out: Path) -> Path:
    """S_PP and S_TG against context depth: one line per measured run, dashed for published tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
