"""`orchestrator bench`, `bench report` and `run` for real, on the cpu target with the gemma model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.app.results import read_records
from orchestrator.core.bench import compare, parse_markdown
from tests.assets import demo_model
from tests.conftest import FIXTURES
from tests.integration import BuiltImage, needs_docker, run_cli
from tests.tiny_gguf import write_tiny

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def test_bench_records_and_reports(cpu_image: BuiltImage, tmp_path: Path) -> None:
    model = demo_model()
    results = tmp_path / "results"
    args = [*cpu_image.args, "--model", str(model), "--results", str(results)]
    out = run_cli("bench", *args, "--npp", "0,64", "--ntg", "128", env=cpu_image.env)
    assert out.returncode == 0, out.stderr + out.stdout
    (record,) = read_records(results)
    assert record.complete and record.error is None
    assert [(r.pp, r.tg, r.pl) for r in record.rows] == [(0, 128, 1), (64, 128, 1)]
    assert record.model["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert record.build["image"] == cpu_image.tag and record.build["image_id"]
    assert "-DGGML_VULKAN=ON" in record.build["cmake_flags"]
    assert record.runtime["argv"][0] == "llama-batched-bench" and record.host["kernel"]
    # The run's own load log says where the model was: the CPU, for the cpu target.
    assert [d["name"] for d in record.runtime["devices"]["devices"]] == ["CPU"]
    assert record.runtime["device_problem"] is None
    # The (0, 128, 1) row lines up with every published table; what it is compared with is read from
    # the publisher's own table text (the fixture), not from orchestrator.core.reference.
    published = parse_markdown((FIXTURES / "bench" / "seed-dgx-spark-256k.md").read_text())
    (seed_row,) = [r for r in published if (r.pp, r.tg, r.pl) == (0, 128, 1)]
    (against,) = compare(record.rows, "dgx-spark-256k")
    assert (against.pp, against.tg, against.pl) == (0, 128, 1)
    assert against.published_tg == seed_row.speed_tg and against.published_pp == seed_row.speed_pp
    assert against.ratio_tg == pytest.approx(record.rows[0].speed_tg / seed_row.speed_tg)

    report = run_cli("bench", "report", "--results", str(results), env=cpu_image.env)
    assert report.returncode == 0, report.stderr
    png = results / "bench.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| 64 | 128 | 1 |" in (results / "bench.md").read_text()


def test_bench_whose_process_dies_is_one_line_and_incomplete(cpu_image: BuiltImage, tmp_path: Path) -> None:
    broken = tmp_path / "models" / "broken.gguf"
    broken.parent.mkdir()
    # Well-formed, so every check before the run passes, but llama.cpp cannot load it.
    write_tiny(broken, "dense", leave_out=("output_norm.weight",))
    results = tmp_path / "results"
    out = run_cli(
        "bench",
        *cpu_image.args,
        "--model",
        str(broken),
        "--results",
        str(results),
        "--npp",
        "64",
        "--ntg",
        "8",
        env=cpu_image.env,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "incomplete" in lines[0] and "exited with code" in lines[0], out.stderr
    (record,) = read_records(results)
    assert not record.complete and record.error and record.rows == []
    # A file cut short never reaches llama.cpp: it is refused first, in one line, and left as it was.
    cut = tmp_path / "models" / "cut.gguf"
    cut.write_bytes(demo_model().read_bytes()[:4_000_000])
    out = run_cli("bench", *cpu_image.args, "--model", str(cut), "--results", str(results), env=cpu_image.env)
    assert out.returncode == 3 and "truncated" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert cut.stat().st_size == 4_000_000 and len(read_records(results)) == 1


def test_run_answers_the_prompt(cpu_image: BuiltImage) -> None:
    out = run_cli("run", *cpu_image.args, "--model", str(demo_model()), "Name a colour.", env=cpu_image.env)
    assert out.returncode == 0, out.stderr
    assert "Name a colour." in out.stdout
    assert "Generation:" in out.stdout
    # The load log is read for the device check, not shown with the answer.
    assert "load_tensors" not in out.stdout
    assert "devices: CPU: model" in out.stdout + out.stderr


def test_report_measures_and_leaves_secrets_out(cpu_image: BuiltImage, tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-report-test-0123456789\n")
    key.chmod(0o600)
    token = "hf_ReportTestTokenAbcdefghij"
    env = {**cpu_image.env, "HF_TOKEN": token}
    out = run_cli(
        "report", *cpu_image.args, "--model", str(demo_model()), "--out", str(tmp_path / "reports"),
        "--host", "0.0.0.0", "--api-key-file", str(key), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    (markdown,) = (tmp_path / "reports").glob("report-cpu-*.md")
    (data_file,) = (tmp_path / "reports").glob("report-cpu-*.json")
    for text in (markdown.read_text(), data_file.read_text()):
        assert "sk-report-test" not in text and token not in text
        assert str(Path.home()) + "/" not in text
    data = json.loads(data_file.read_text())
    assert [d["name"] for d in data["devices"]["devices"]] == ["CPU"]
    assert [(r["pp"], r["tg"]) for r in data["bench"]["rows"]] == [(0, 128), (512, 128)]
    assert data["image_labels"]["io.step-flash.target"] == "cpu"
    assert "| CPU |" in markdown.read_text()
