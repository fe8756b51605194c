"""Quality and quantisation, the pure parts: the types llama-quantize knows and their sizes, calibration
texts, what llama-perplexity prints, the records, the published GGUFs and their verdicts, the AMD
max-context profile; and the quantize / eval workflows' refusals through the recording fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.catalogue import CATALOGUE, MAX_CONTEXT, RYZEN_AI_MAX
from orchestrator.core.doctor import DoctorFacts, diagnose
from orchestrator.core.memory import GIB, estimate, largest_context
from orchestrator.core.memory_plan import profile_server
from orchestrator.core.model_catalogue import PUBLISHED, serving_targets, verdict
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.core.plan.jobs import CONTAINER_INPUTS, CONTAINER_OUTPUT, ToolJob, with_paths
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.quality import (
    CORPUS,
    EvalRecord,
    Vocabulary,
    compare_args,
    logits_bytes,
    parse_output,
    quality_markdown,
    read_logits_header,
    reference_args,
    vocabulary_problem,
)
from orchestrator.core.quantize import (
    _BLOCKS,
    QUANT_TYPES,
    Source,
    UnknownType,
    bits_per_weight,
    calibration_problem,
    canonical_type,
    disk_problem,
    memory_problem,
    output_bytes,
    output_name,
    quantize_args,
)
from orchestrator.errors import UsageError
from tests.conftest import host_facts
from tests.fakes import FakeEngine, Notes, cpu_plan, executors
from tests.planning import fixed_plan
from tests.tiny_gguf import Shape, write_tiny
from tests.unit.conftest import Cli

# What tools/perplexity/perplexity.cpp prints at the pin (its format strings, filled in).
COMPARE_LOG = """kl_divergence: computing over 4 chunks, n_ctx=512, batch_size=2048, n_seq=4
====== Perplexity statistics ======
Mean PPL(Q)                   :  21.345678 ±   1.234567
Mean PPL(base)                :  17.000001 ±   0.987654
Mean    KLD:   0.312345 ±   0.010000
====== Token probability statistics ======
Same top p:  71.234 ± 1.234 %
"""
REFERENCE_LOG = (
    "perplexity: calculating perplexity over 4 chunks\nFinal estimate: PPL = 17.0000 +/- 0.98765\n"
)


def test_types_are_llama_quantizes_and_sizes_are_ggufs() -> None:
    import gguf

    sizes = {k.name: v for k, v in gguf.GGML_QUANT_SIZES.items()}
    for name, blocks in _BLOCKS.items():
        assert sizes[name] == blocks, name
    assert canonical_type("q4_k_s") == "Q4_K_S"
    assert (
        bits_per_weight("Q4_K_S") == 4.5 and bits_per_weight("Q8_0") == 8.5 and bits_per_weight("BF16") == 16
    )
    assert bits_per_weight("Q2_0") == 2.25
    with pytest.raises(UnknownType, match=r"knows no type 'Q9_X'.*Q4_K_S"):
        canonical_type("Q9_X")
    assert len(QUANT_TYPES) == 39


def test_sizes_names_and_command_lines() -> None:
    # Step-3.5-Flash's ~196.8B parameters at Q4_K_S: about 111 GiB with the mix's headroom.
    assert 100 * GIB < output_bytes(196_800_000_000, "Q4_K_S") < 115 * GIB
    assert output_name(Path("SmolLM2-135M-Instruct.Q4_1.gguf"), "q2_k") == "SmolLM2-135M-Instruct-Q2_K.gguf"
    assert (
        output_name(Path("step3.5_flash_BF16-00001-of-00009.gguf"), "IQ4_XS") == "step3.5_flash-IQ4_XS.gguf"
    )
    assert output_name(Path("model.gguf"), "Q8_0") == "model-Q8_0.gguf"
    assert quantize_args("a", "b", "q4_k_s", imatrix="m", requantise=True) == (
        "llama-quantize", "--allow-requantize", "--imatrix", "m", "a", "b", "Q4_K_S",
    )  # fmt: skip
    assert reference_args("m", "t", "l", 8, None) == (
        "llama-perplexity", "-m", "m", "-f", "t", "-c", "512", "--chunks", "8", "--kl-divergence-base", "l",
    )  # fmt: skip
    assert "--kl-divergence" in compare_args("m", "l", 2) and compare_args("m", "l", 2)[-2:] == ("-t", "2")


def test_a_job_mounts_its_inputs_read_only_and_its_output_alone_writable(tmp_path: Path) -> None:
    model, text, out = tmp_path / "m" / "a.gguf", tmp_path / "t" / "s.txt", tmp_path / "o"
    job = ToolJob(
        with_paths(
            ("llama-imatrix", "-m", "{m}", "-f", "{t}", "-o", "{o}"), m=model, t=text, o=out / "i.gguf"
        ),
        out,
    )
    assert job.container_argv() == (
        "llama-imatrix", "-m", f"{CONTAINER_INPUTS}/0/a.gguf", "-f", f"{CONTAINER_INPUTS}/1/s.txt", "-o",
        f"{CONTAINER_OUTPUT}/i.gguf",
    )  # fmt: skip
    assert job.volumes() == (
        (str(model.parent), f"{CONTAINER_INPUTS}/0", "ro"),
        (str(text.parent), f"{CONTAINER_INPUTS}/1", "ro"),
        (str(out), str(CONTAINER_OUTPUT), "rw"),
    )
    native = NativeBuild("scripts/macos-native/build.sh", "/opt/prefix", {}, "d")
    assert (
        job.host_argv(native)[2] == str(model) and job.host_argv(native)[0] == "/opt/prefix/bin/llama-imatrix"
    )


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "is empty"),
        (b"  \n\t ", "is empty"),
        (b"words\0more", "is binary"),
        (b"\xff\xfe caf\xe9", "is not UTF-8"),
    ],
)
def test_a_calibration_text_must_be_text(data: bytes, said: str) -> None:
    assert said in (calibration_problem(data, "cal.txt") or "")


def test_calibration_disk_and_memory_checks() -> None:
    assert calibration_problem(b"Shall I compare thee to a summer's day?", "s.txt") is None
    assert disk_problem(200 * GIB, 120 * GIB, Path("/m")) is None
    short = disk_problem(50 * GIB, 120 * GIB, Path("/m")) or ""
    assert "50.0 GiB free" in short and "120.0 GiB" in short and "--models-dir" in short
    bf16 = Source(Path("/m/step-BF16.gguf"), 196_800_000_000, 393 * GIB, 2 * GIB, False, "step35")
    assert "Q8_0" in (memory_problem(bf16, 120 * GIB, with_imatrix=True) or "")
    assert memory_problem(bf16, 120 * GIB, with_imatrix=False) is None
    assert "largest tensor" in (memory_problem(bf16, 4 * GIB, with_imatrix=False) or "")


def test_what_llama_perplexity_prints_is_read() -> None:
    compared = parse_output(COMPARE_LOG.splitlines())
    assert compared.figures["ppl_q"] == (21.345678, 1.234567)
    assert compared.figures["ppl_base"] == (17.000001, 0.987654)
    assert compared.figures["kld"] == (0.312345, 0.01)
    assert compared.figures["same_top_p"] == (71.234, 1.234)
    assert compared.chunks == 4
    reference = parse_output(REFERENCE_LOG.splitlines())
    assert reference.figures["ppl"] == (17.0, 0.98765)
    short = parse_output(
        ["perplexity: you need at least 1024 tokens to evaluate perplexity with a context of 512"]
    )
    assert short.problem and "1024 tokens" in short.problem


def test_records_round_trip_and_show_in_the_report() -> None:
    record = EvalRecord(
        run_id="r1", started=1.0, target="cpu", model={"alias": "q2"}, reference={"alias": "q4"},
        text=CORPUS.describe(), chunk_tokens=512, chunks=4, ppl=(21.3, 1.2), ppl_reference=(17.0, 0.9),
        kld=(0.31, 0.01), same_top_p=(71.2, 1.2), build={}, host={},
    )  # fmt: skip
    assert EvalRecord.from_json(record.to_json()) == record
    table = quality_markdown([record])
    assert (
        "| q2 | q4 | 4 | 21.3000 ± 1.2000 | 17.0000 ± 0.9000 | 0.310000 ± 0.010000 | 71.20 ± 1.20 % |"
        in table
    )


def test_saved_probabilities_and_vocabularies() -> None:
    head = (
        b"_logits_" + (512).to_bytes(4, "little") + (49152).to_bytes(4, "little") + (4).to_bytes(4, "little")
    )
    saved = read_logits_header(head)
    assert saved is not None and (saved.n_ctx, saved.n_vocab, saved.n_chunk) == (512, 49152, 4)
    assert read_logits_header(b"GGUF" + bytes(20)) is None
    # 4 chunks of SmolLM2's 49152 tokens: 255 positions each, two bytes a token.
    assert logits_bytes(49152, 4) == 4 * 255 * (49152 + 4) * 2 + 4 * 512 * 4 + 64
    a, b = Vocabulary("gpt2", 49152, "aa"), Vocabulary("llama", 262144, "bb")
    assert vocabulary_problem(a, a, "m", "r") is None
    said = vocabulary_problem(a, b, "q2.gguf", "gemma.gguf") or ""
    assert "49152 tokens" in said and "262144 tokens" in said and "same model" in said


def test_the_published_files_each_say_where_seen() -> None:
    assert PUBLISHED[0].repo == KNOWN_MODELS["step-3.5-flash"].repo and PUBLISHED[0].pull == "step-3.5-flash"
    for file in PUBLISHED:
        assert file.size_seen and file.mtp_seen
    iq4 = next(f for f in PUBLISHED if f.quant == "IQ4_XS")
    assert iq4.size_gib == 91.31 and iq4.mtp is True and iq4.parts is None and iq4.pull.endswith(":IQ4_XS")


def test_verdicts_per_target_and_profile() -> None:
    facts = host_facts("cpu-debian")
    by = {f.quant: f for f in PUBLISHED if f.model == "step-3.5-flash"}
    ryzen = {p.name: p for p in RYZEN_AI_MAX.profiles}
    q4ks = verdict(by["Q4_K_S"], RYZEN_AI_MAX, ryzen["max-context"], facts)
    assert q4ks.fits == "fits" and q4ks.context == 262144 and q4ks.usable_gib == 120.0
    assert verdict(by["Q8_0"], RYZEN_AI_MAX, ryzen["default"], facts).fits == "does not fit"
    q4km = verdict(by["Q4_K_M"], RYZEN_AI_MAX, ryzen["long-context"], facts)
    assert q4km.fits == "fits with q8_0 KV" and q4km.largest_context is not None
    assert q4km.largest_context < 262144
    assert [t.name for t in serving_targets(list(CATALOGUE.values()))] == [
        "dgx-spark",
        "ryzen-ai-max",
        "mac-studio",
    ]


def test_the_max_context_profile_is_the_largest_the_plan_fits() -> None:
    profile = RYZEN_AI_MAX.profile("max-context")
    model = KNOWN_MODELS["step-3.5-flash"]
    assert model.arch is not None and model.weights_bytes is not None
    assert profile.cache_type_k == profile.cache_type_v == "q8_0"
    work = profile_server(profile, MAX_CONTEXT)
    usable = int(RYZEN_AI_MAX.memory.usable_gib * GIB)  # type: ignore[operator]
    assert (
        largest_context(model.arch, model.weights_bytes, work, usable)
        == MAX_CONTEXT
        == model.arch.context_length
    )
    assert estimate(model.arch, model.weights_bytes, work).total <= usable
    assert any("Unmeasured" in n and "ttm.pages_limit" in n for n in profile.notes)


def test_doctor_says_whether_this_gtt_allows_max_context() -> None:
    plan = fixed_plan("ryzen-ai-max", "max-context")
    ready = {
        c.name: c for c in diagnose(plan, DoctorFacts(host_facts("ryzen-ai-max"), None, 500 << 30, "/d"))
    }
    assert (
        ready["GTT size"].status == "pass" and "max-context profile (-c 262144)" in ready["GTT size"].detail
    )
    bare = {
        c.name: c
        for c in diagnose(plan, DoctorFacts(host_facts("ryzen-ai-max-no-kfd"), None, 500 << 30, "/d"))
    }
    assert bare["GTT size"].status == "fail" and "max-context" in bare["GTT size"].detail


# --- the workflows' refusals, through the recording fakes ---------------------------------------------


def tiny(path: Path, **shape: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny(path, "dense", Shape(**shape))


def test_quantize_refuses_a_disk_too_small_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.app.commands import quantize as command
    from orchestrator.models.gguf import quantise_source

    source = tiny(tmp_path / "src" / "tiny-F32.gguf")
    models = tmp_path / "models"
    models.mkdir()
    engine = FakeEngine()

    class Tiny:
        free = 1024

    monkeypatch.setattr(command.shutil, "disk_usage", lambda _p: Tiny())
    with pytest.raises(UsageError, match="free but the quantised file needs about"):
        command.quantize(
            cpu_plan(tmp_path / "data"), executors(engine), Notes().reporter(), source=quantise_source(source),
            quant_type="Q4_0", models_dir=models, name=None, calibration=None, imatrix=None, chunks=None,
        )  # fmt: skip
    assert list(models.iterdir()) == [] and not [c for c in engine.calls if c[0] == "stream"]


def test_quantize_types_that_need_a_matrix_say_so(tmp_path: Path) -> None:
    from orchestrator.app.commands import quantize as command
    from orchestrator.models.gguf import quantise_source

    source = tiny(tmp_path / "src" / "tiny-F32.gguf")
    with pytest.raises(UsageError, match="IQ2_XXS needs an importance matrix: pass --calibration"):
        command.quantize(
            cpu_plan(tmp_path / "data"), executors(), Notes().reporter(), source=quantise_source(source),
            quant_type="IQ2_XXS", models_dir=tmp_path, name=None, calibration=None, imatrix=None, chunks=None,
        )  # fmt: skip


def test_eval_refuses_a_reference_of_another_vocabulary(tmp_path: Path) -> None:
    from orchestrator.app.commands.quality import _reference

    model = tiny(tmp_path / "a" / "small.gguf")
    other = tiny(tmp_path / "b" / "other.gguf", extra_vocab=4)
    plan = cpu_plan(tmp_path / "data", model)
    with pytest.raises(UsageError, match=r"vocabulary .* differs .* same model"):
        _reference(plan, str(other), 4)
    same = _reference(plan, str(tiny(tmp_path / "c" / "twin.gguf")), 4)
    assert same.must_run and same.logits.suffix == ".kld"


def test_quantize_bad_input_on_the_command_line_is_one_line(
    tmp_path: Path, cli: Cli, isolated_env: Path
) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 8)
    models = tmp_path / "models"
    for extra, said in (
        (("--type", "Q9_X"), "llama-quantize knows no type 'Q9_X'"),
        (("--type", "Q4_K_S", "--calibration", str(tmp_path / "empty.txt")), "is empty"),
        (("--type", "Q4_K_S", "--calibration", str(tmp_path / "bin.txt")), "is binary"),
    ):
        done = cli("quantize", "--from", str(tmp_path / "x.gguf"), "--models-dir", str(models), *extra)
        assert done.returncode == 2, done.stderr
        assert (
            said in done.stderr
            and len(done.stderr.strip().splitlines()) == 1
            and "Traceback" not in done.stderr
        )
    assert not models.exists() and not (isolated_env / "data").exists()


def test_dry_runs_show_the_runs_and_run_nothing(
    tmp_path: Path, cli: Cli, isolated_env: Path, fake_executors: FakeEngine
) -> None:
    import json

    source = tiny(tmp_path / "src" / "tiny-F32.gguf")
    twin = tiny(tmp_path / "ref" / "tiny-Q8_0.gguf")
    (tmp_path / "cal.txt").write_text("Shall I compare thee to a summer's day? " * 50)
    models = tmp_path / "models"
    models.mkdir()

    def dry_run(*args: str) -> dict[str, object]:
        done = cli(*args, "--target", "cpu", "--dry-run", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    quantize = dry_run("quantize", "--from", str(source), "--type", "Q4_0", "--calibration", str(tmp_path / "cal.txt"),
                   "--models-dir", str(models))  # fmt: skip
    runs = quantize["runs"]
    assert isinstance(runs, list) and [r["argv"][0] for r in runs] == ["llama-imatrix", "llama-quantize"]
    assert runs[1]["argv"][-3:] == ["/inputs/0/tiny-F32.gguf", "/output/tiny-Q4_0.gguf", "Q4_0"]
    assert runs[1]["writes"] == str(models / "quantized" / ".tiny-Q4_0.gguf.partial")
    assert [p.name for p in models.iterdir()] == [".orchestrator.lock"]
    evaluation = dry_run("eval", "--model", str(source), "--reference", str(twin), "--chunks", "3")
    steps = evaluation["runs"]
    assert isinstance(steps, list) and len(steps) == 2
    assert (
        steps[0]["argv"][:3] == ["llama-perplexity", "-m", "/inputs/0/tiny-Q8_0.gguf"]
        and "3" in steps[0]["argv"]
    )
    assert "--kl-divergence" in steps[1]["argv"] and steps[1]["argv"][2] == "/inputs/0/tiny-F32.gguf"
