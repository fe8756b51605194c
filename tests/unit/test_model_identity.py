"""`bench` and `report` know which model ran: each record names the model (its catalogue name) and file, a
published table is set only beside a run of the model it measured (a Step-3.7 run never meets the
Step-3.5 tables), runs of two models are never merged, and the community's Step-3.7 figures are shown as
such, with their source."""

from __future__ import annotations

from pathlib import Path

from orchestrator.app.commands.bench.batched import bench_table
from orchestrator.app.commands.bench.owner_report import _bench_data
from orchestrator.app.commands.bench.serve_bench import ServingComparison, ServingSweep, serving_data
from orchestrator.app.results import append_record, plot, read_serving_sweeps
from orchestrator.core.bench import (
    BenchRecord,
    catalogue_name,
    latest_per_set,
    markdown_report,
    model_key,
    reference_for,
)
from orchestrator.core.reference import COMMUNITY_SERVING, REFERENCES, STEP37, community_figures
from orchestrator.core.serve_bench import ServeRecord, ServeSample
from tests.planning import fixed_model

SPARK_TABLE = "dgx-spark-256k"
STEP35 = {"name": "step-3.5-flash", "alias": "step-3.5-flash", "file": "step3p5_flash_Q4_K_S.gguf"}
STEP37_FILE = {"name": STEP37, "alias": STEP37, "file": "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"}


def _bench(model: dict[str, object], finished: float = 1.0) -> BenchRecord:
    rows = [r for r in REFERENCES[SPARK_TABLE].rows if r.pp == 0]
    return BenchRecord(
        run_id=str(finished),
        started=0.0,
        finished=finished,
        complete=True,
        target="dgx-spark",
        profile="default",
        bench="spark-256k",
        reference=SPARK_TABLE,
        model=model,
        build={},
        runtime={},
        host={},
        rows=rows,
    )


def test_a_table_is_only_for_runs_of_the_model_it_measured() -> None:
    assert reference_for(STEP35, SPARK_TABLE) is REFERENCES[SPARK_TABLE]
    assert reference_for(STEP37_FILE, SPARK_TABLE) is None
    # Records made before the catalogue name was recorded: their alias says which model ran.
    assert reference_for({"alias": "step-3.5-flash"}, SPARK_TABLE) is REFERENCES[SPARK_TABLE]
    assert reference_for({"alias": "my-own-file"}, SPARK_TABLE) is None
    assert reference_for(STEP35, None) is None


def test_the_summary_and_the_table_leave_the_step35_figures_out_of_a_step37_run() -> None:
    text = markdown_report([_bench(STEP37_FILE)])
    assert "Against the publisher's" not in text and "that table measured another model" in text
    assert "step-3.7-flash (Step-3.7-flash-Q4_K_S-00001-of-00003.gguf" in text
    assert "Against the publisher's `dgx-spark-256k` table (step-3.5-flash)" in markdown_report(
        [_bench(STEP35)]
    )
    columns = [c.header for c in bench_table(_bench(STEP37_FILE)).columns]
    assert "published S_TG" not in columns
    assert "published S_TG" in [c.header for c in bench_table(_bench(STEP35)).columns]


def test_the_owner_report_compares_only_a_run_of_the_tables_model() -> None:
    data = _bench_data(_bench(STEP37_FILE))
    assert data is not None and data["published"] == [] and data["reference"] is None
    assert data["model"] == STEP37 and data["file"] == STEP37_FILE["file"]
    same = _bench_data(_bench(STEP35))
    assert same is not None and same["reference"] == SPARK_TABLE and same["published"]


def test_the_latest_run_of_one_model_never_replaces_the_other_models() -> None:
    kept = latest_per_set([_bench(STEP35, 1.0), _bench(STEP37_FILE, 2.0), _bench(STEP35, 3.0)])
    assert sorted((model_key(r.model), r.finished) for r in kept) == [("step-3.5-flash", 3.0), (STEP37, 2.0)]


def test_the_plot_draws_a_table_only_beside_its_own_models_run(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    drawn: list[str] = []
    original = plt.Axes.plot

    def spy(self: plt.Axes, *args: object, **kwargs: object) -> object:
        drawn.append(str(kwargs.get("label")))
        return original(self, *args, **kwargs)

    plt.Axes.plot = spy  # type: ignore[method-assign]
    try:
        plot([_bench(STEP37_FILE)], tmp_path / "a.png")
        assert not any(label.startswith("published") for label in drawn)
        plot([_bench(STEP35)], tmp_path / "b.png")
        assert "published dgx-spark-256k (step-3.5-flash)" in drawn
    finally:
        plt.Axes.plot = original  # type: ignore[method-assign]


def test_a_plan_records_the_catalogue_name_of_its_model() -> None:
    assert catalogue_name(fixed_model("dgx-spark")) == "step-3.5-flash"
    assert catalogue_name(fixed_model("cpu")) == "smollm2-135m-instruct"
    from dataclasses import replace

    assert catalogue_name(replace(fixed_model("cpu"), alias="someones-file")) is None


def _serve(speculation: str, model: dict[str, object], comparison: str, started: float) -> ServeRecord:
    sample = ServeSample("short-chat", 1, 20, 500.0, 30, 25.0, 40.0, 0, 0, "same", 1.0)
    return ServeRecord(
        run_id=f"{comparison}-{speculation}",
        comparison=comparison,
        started=started,
        finished=started + 1,
        target="dgx-spark",
        profile="default",
        speculation=speculation,
        model=model,
        build={},
        runtime={},
        host={},
        samples=[sample],
        rounds={"short-chat@1": 1.0},
    )


def test_serving_records_of_two_models_are_never_one_comparison(tmp_path: Path) -> None:
    for record in (
        _serve("off", STEP35, "a", 0),
        _serve("mtp:2", STEP35, "a", 1),
        _serve("off", STEP37_FILE, "b", 2),
        _serve("mtp:2", STEP37_FILE, "b", 3),
        # A record that claims run b but measured the other model: run b is not shown at all.
        _serve("mtp:3", STEP35, "b", 4),
    ):
        append_record(tmp_path, record)
    sweeps = read_serving_sweeps(tmp_path)
    assert [(model_key(off.model), [on.speculation for on in ons]) for off, ons in sweeps] == [
        ("step-3.5-flash", ["mtp:2"])
    ]


def test_the_community_figures_for_step37_are_shown_as_such_with_their_source() -> None:
    figures = community_figures(STEP37, "dgx-spark")
    assert figures is not None and figures in COMMUNITY_SERVING
    assert figures.source == "llama.cpp PR #23274, comment by coder543, 2026-06-03"
    assert figures.decode["off"] == (23.68, 23.74) and figures.decode["mtp:3"] == (27.87, 32.46)
    assert community_figures("step-3.5-flash", "dgx-spark") is None
    off = _serve("off", STEP37_FILE, "c", 0)
    on = _serve("mtp:2", STEP37_FILE, "c", 1)
    data = serving_data(ServingSweep(off, (ServingComparison(off, on),)))
    assert data["model"] == STEP37 and data["community"]["source"].startswith("llama.cpp PR #23274")
    off35, on35 = _serve("off", STEP35, "d", 0), _serve("mtp:2", STEP35, "d", 1)
    assert serving_data(ServingSweep(off35, (ServingComparison(off35, on35),)))["community"] is None


def test_a_step37_file_is_never_taken_for_step35(tmp_path: Path) -> None:
    from orchestrator.models.local import resolve_model

    # StepFun's 3.7 file naming as the fact sheet has it (Step-3.7-flash-<Q>-...); not checked on the hub.
    part = tmp_path / "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
    spec = resolve_model(part, "step-3.5-flash", tmp_path)
    assert catalogue_name(spec) == "step-3.7-flash"
