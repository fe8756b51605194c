"""Quality and quantisation for real, on the cpu image: SmolLM2 (Q4_1) quantised down to Q2_K with an
importance matrix computed from the pinned text (llama-imatrix, llama-quantize), registered; then measured
against the Q4_1 it came from (llama-perplexity): the smaller one has the higher perplexity and KL
divergence, and the Q4_1 against its own saved probabilities diverges by next to nothing. The records
show in `bench report`. A reference of another model is refused before anything runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.core.quality import CORPUS
from tests.assets import cache_dir, demo_model, smollm2_model
from tests.integration import BuiltImage, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]

CHUNKS = "4"


@dataclass(frozen=True)
class Quantised:
    image: BuiltImage
    models: Path
    results: Path
    source: Path
    entry: dict[str, object]
    said: str

    def cli(self, *args: str) -> tuple[int, str, str]:
        done = run_cli(
            *args, *self.image.args, "--models-dir", str(self.models), env=self.image.env, timeout=1800
        )
        return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def quantised(cpu_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quantised]:
    work = tmp_path_factory.mktemp("quality")
    models = work / "models"
    models.mkdir()
    # The source in a folder of its own, readable by the tools' container user; never written to.
    source = work / "source" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    source.parent.mkdir()
    shutil.copyfile(smollm2_model(), source)
    source.chmod(0o444)
    source.parent.chmod(0o755)
    models.chmod(0o755)
    before = source.read_bytes()
    calibration = (
        cache_dir() / "data" / "cache" / "texts" / f"{CORPUS.package}-{CORPUS.version}" / CORPUS.file_name
    )
    state = Quantised(cpu_image, models, work / "results", source, {}, "")
    # The calibration text is the pinned one (fetched by the first eval or here through the CLI's cache).
    code, out, err = state.cli(
        "eval", "--model", str(source), "--chunks", "2", "--results", str(state.results)
    )
    assert code == 0, err + out
    assert calibration.is_file()
    code, out, err = state.cli(
        "quantize",
        "--from",
        str(source),
        "--type",
        "q2_k",
        "--calibration",
        str(calibration),
        "--chunks",
        "4",
    )
    assert code == 0, err + out
    assert source.read_bytes() == before
    listed = run_cli("model", "list", "--json", "--models-dir", str(models), env=cpu_image.env)
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    yield Quantised(cpu_image, models, state.results, source, entries["smollm2-135m-instruct-q2_k"], out)


def test_quantize_makes_a_smaller_calibrated_file_and_registers_it(quantised: Quantised) -> None:
    result = Path(str(quantised.entry["path"]))
    assert (
        result.name == "SmolLM2-135M-Instruct-Q2_K.gguf" and result.parent == quantised.models / "quantized"
    )
    assert result.stat().st_size < quantised.source.stat().st_size
    assert "Q2_K with an importance matrix" in quantised.said and "registered" in quantised.said
    assert str(quantised.entry["origin"]).startswith("quantized (Q2_K) from SmolLM2-135M-Instruct.Q4_1.gguf")
    assert not [p for p in result.parent.iterdir() if p.name.startswith(".")], "no staging left behind"
    verified = run_cli("model", "verify", str(result), env=quantised.image.env)
    assert verified.returncode == 0 and "consistent" in verified.stdout, verified.stderr


def test_the_smaller_quantisation_diverges_more(quantised: Quantised) -> None:
    results = str(quantised.results)
    code, out, err = quantised.cli(
        "eval", "--model", "smollm2-135m-instruct-q2_k", "--reference", str(quantised.source), "--chunks", CHUNKS,
        "--results", results, "--json",
    )  # fmt: skip
    assert code == 0, err + out
    q2k = json.loads(out)
    ppl, ref_ppl, kld, top = q2k["ppl"][0], q2k["ppl_reference"][0], q2k["kld"][0], q2k["same_top_p"][0]
    assert q2k["chunks"] == int(CHUNKS) and q2k["kind"] == "eval"
    assert ppl > ref_ppl > 1, q2k
    assert kld > 0.01 and 0 < top < 100, q2k
    # The Q4_1 against the probabilities its own run saved (the --reference a later eval may name).
    saved = Path(q2k["reference_probabilities"])
    assert saved.is_file() and saved.read_bytes()[:8] == b"_logits_"
    code, out, err = quantised.cli(
        "eval", "--model", str(quantised.source), "--reference", str(saved), "--results", results, "--json"
    )
    assert code == 0, err + out
    itself = json.loads(out)
    assert itself["kld"][0] < kld / 10, (itself, q2k)
    assert itself["same_top_p"][0] > top
    print(f"Q2_K against Q4_1: PPL {ppl:.3f} vs {ref_ppl:.3f}, KLD {kld:.4f}, same top {top:.1f} %; ")
    print(f"Q4_1 against itself: KLD {itself['kld'][0]:.6f}, same top {itself['same_top_p'][0]:.1f} %")
    code, out, err = quantised.cli("bench", "report", "--results", results)
    assert code == 0, err + out
    summary = (quantised.results / "bench.md").read_text()
    assert "## Quality (llama-perplexity)" in summary
    assert "| SmolLM2-135M-Instruct-Q2_K | SmolLM2-135M-Instruct.Q4_1 | 4 |" in summary


def test_a_reference_of_another_model_is_refused_before_anything_runs(quantised: Quantised) -> None:
    code, _out, err = quantised.cli(
        "eval", "--model", str(quantised.source), "--reference", str(demo_model())
    )
    assert code == 2 and "differs" in err and "same model" in err and len(err.strip().splitlines()) == 1, err
