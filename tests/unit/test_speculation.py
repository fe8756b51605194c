"""Speculative decoding: the setting, the MTP heads read from real GGUFs of each shape upstream's loader
accepts, what the plan does with them (argv, mounts, memory), and the refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.memory import MIB, Workload, compute_bytes
from orchestrator.core.models import KNOWN_MODELS, ModelSpec
from orchestrator.core.plan import Plan
from orchestrator.core.speculation import MtpHeads, Sidecar, Speculative, parse_speculative, resolve
from orchestrator.errors import UsageError
from orchestrator.models.gguf import read_model
from orchestrator.models.local import describe
from tests.planning import fixed_model, fixed_plan
from tests.tiny_gguf import write_tiny_step35


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("off", Speculative("off")),
        ("mtp", Speculative("mtp")),
        ("MTP:2", Speculative("mtp", draft_n=2)),
        ("ngram-mod", Speculative("ngram", ngram="ngram-mod")),
    ],
)
def test_setting_forms(text: str, expected: Speculative) -> None:
    assert parse_speculative(text) == expected
    assert parse_speculative(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mtp:0", "must be 1 to 8"),
        ("mtp:99", "must be 1 to 8"),
        ("mtp:two", "must be 1 to 8"),
        ("eagle", "unknown"),
    ],
)
def test_bad_settings_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_speculative(text)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("step35")
    return {
        layout: write_tiny_step35(folder / f"s-{layout}.gguf", layout)  # type: ignore[arg-type]
        for layout in ("combined", "trunk-only", "mtp-only", "no-heads")
    }


def test_heads_read_from_each_shape(shapes: dict[str, Path]) -> None:
    combined = read_model(shapes["combined"])
    assert combined.arch.n_layer == 2 and combined.arch.n_nextn == 2
    assert combined.arch.nextn_swa == (True, True) and combined.arch.swa_layers == (False, True)
    assert combined.mtp.layout == "combined" and combined.mtp.describe() == "MTP heads: 2, in the file"
    trunk = read_model(shapes["trunk-only"])
    assert trunk.mtp.layout == "trunk-only"
    assert "declared, not in the file: pass --draft-model or pull the sidecar" in trunk.mtp.describe()
    sidecar = read_model(shapes["mtp-only"])
    assert sidecar.mtp.layout == "mtp-only" and not sidecar.mtp.trunk
    assert read_model(shapes["no-heads"]).mtp.layout == "none"
    # The heads' blocks are what the combined file has more than the trunk-only one.
    assert combined.mtp.bytes == combined.weights_bytes - trunk.weights_bytes > 0


def _described(path: Path, tmp_path: Path, draft: Path | None = None) -> ModelSpec:
    spec = ModelSpec(alias="tiny", path=path, present=True, origin="local file")
    return describe(spec, tmp_path / "gguf.json", draft)


def test_sidecar_found_beside_a_trunk_only_model(shapes: dict[str, Path], tmp_path: Path) -> None:
    trunk = tmp_path / "model.gguf"
    trunk.write_bytes(shapes["trunk-only"].read_bytes())
    (tmp_path / "mtp-model.gguf").write_bytes(shapes["mtp-only"].read_bytes())
    model = _described(trunk, tmp_path)
    assert model.sidecar is not None and model.sidecar.path.name == "mtp-model.gguf"
    # A sidecar is no model to serve.
    assert "holds only MTP heads" in (_described(shapes["mtp-only"], tmp_path).problem or "")


def _resolve(spec: str, path: Path, tmp_path: Path, draft: Path | None = None) -> object:
    model = _described(path, tmp_path, draft)
    assert model.arch is not None
    return resolve(
        parse_speculative(spec), "tiny", model.arch.name, model.arch.n_vocab, model.mtp, model.sidecar
    )


def test_resolution_per_shape(shapes: dict[str, Path], tmp_path: Path) -> None:
    on = _resolve("mtp", shapes["combined"], tmp_path)
    assert (on.spec_type, on.draft_n, on.sidecar, on.heads) == ("draft-mtp", 2, None, 2)  # type: ignore[attr-defined]
    off = _resolve("mtp:1", shapes["no-heads"], tmp_path)
    assert off.spec_type is None and off.fallback == "tiny has no MTP heads; speculative decoding is off"  # type: ignore[attr-defined]
    # Alone in its folder (beside the shapes, s-mtp-only.gguf would be found: "mtp" is a word of its name).
    alone = tmp_path / "alone" / "s-trunk-only.gguf"
    alone.parent.mkdir()
    alone.write_bytes(shapes["trunk-only"].read_bytes())
    lacking = _resolve("mtp", alone, tmp_path / "alone")
    assert lacking.spec_type is None and "pass --draft-model" in lacking.fallback  # type: ignore[attr-defined]
    paired = _resolve("mtp:1", shapes["trunk-only"], tmp_path, shapes["mtp-only"])
    assert paired.sidecar == shapes["mtp-only"] and paired.draft_n == 1  # type: ignore[attr-defined]
    ngram = _resolve("ngram-mod", shapes["no-heads"], tmp_path)
    assert ngram.spec_type == "ngram-mod" and ngram.draft_n == 64  # type: ignore[attr-defined]


def test_refusals(shapes: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"has 2 MTP heads .* use mtp:1 to mtp:2"):
        _resolve("mtp:3", shapes["combined"], tmp_path)
    other = write_tiny_step35(tmp_path / "mtp-other.gguf", "mtp-only", vocab="other")
    with pytest.raises(UsageError, match="vocabulary of 263 tokens but tiny has 269"):
        _resolve("mtp", shapes["trunk-only"], tmp_path, other)
    foreign = Sidecar(Path("/m/mtp-x.gguf"), "glm4moe", 269, 64, MtpHeads(1, 1, False, 10), 10)
    with pytest.raises(UsageError, match="is a 'glm4moe' sidecar but tiny is 'step35'"):
        resolve(Speculative("mtp"), "tiny", "step35", 269, MtpHeads(2, 0, True), foreign)
    with pytest.raises(UsageError, match="does not exist"):
        _described(shapes["trunk-only"], tmp_path, tmp_path / "nowhere.gguf")


def _with_heads(
    target: str, profile: str, heads: MtpHeads, spec: str | None = None, ctx: int | None = None
) -> Plan:
    model = fixed_model(target)
    assert model.arch is not None
    arch = replace(model.arch, n_nextn=3, nextn_head_kv=(8, 8, 8), nextn_swa=(True, True, True))
    overrides = {"speculative": spec, "ctx_size": ctx}
    plan = fixed_plan(target, profile, {k: v for k, v in overrides.items() if v is not None})
    return _replan(plan, replace(model, arch=arch, mtp=heads))


def _replan(plan: Plan, model: ModelSpec) -> Plan:
    from orchestrator.core.plan import with_model

    return with_model(plan, model)


HEADS = MtpHeads(3, 3, True, 3 * 2**30)


def test_spark_drafts_two_tokens_with_the_heads_and_counts_their_memory() -> None:
    plan = _with_heads("dgx-spark", "default", HEADS)
    argv = plan.server.argv
    assert argv[argv.index("--spec-type") + 1] == "draft-mtp"
    assert argv[argv.index("--spec-draft-n-max") + 1] == "2"
    assert "--spec-draft-model" not in argv and "-ctkd" not in argv
    server, bench = plan.memory.rows
    assert server.fit.estimate.draft > 0 and bench.fit.estimate.draft == 0
    # The heads are loaded only when drafting: the bench (llama-batched-bench) skips them.
    assert server.fit.estimate.weights - bench.fit.estimate.weights == HEADS.bytes
    long = _with_heads("dgx-spark", "long-context", HEADS).server.argv
    assert long[long.index("-ctkd") + 1] == "q8_0" and long[long.index("-ctvd") + 1] == "q8_0"


def test_no_heads_plans_without_speculation_and_says_so() -> None:
    plan = _with_heads("dgx-spark", "default", MtpHeads(0, 0, True))
    assert "--spec-type" not in plan.server.argv
    assert "step-3.5-flash has no MTP heads; speculative decoding is off" in plan.warnings
    ryzen = _with_heads("ryzen-ai-max", "default", HEADS)
    assert "--spec-type" not in ryzen.server.argv and not ryzen.speculation.fallback


def test_a_sidecar_elsewhere_gets_its_own_read_only_mount() -> None:
    model = fixed_model("dgx-spark")
    assert model.arch is not None
    arch = replace(model.arch, n_nextn=3, nextn_head_kv=(8, 8, 8), nextn_swa=(True, True, True))
    sidecar = Sidecar(
        Path("/elsewhere/mtp-step.gguf"), "step35", arch.n_vocab, 4096, MtpHeads(3, 3, False), 5 * 2**30
    )
    plan = _replan(
        fixed_plan("dgx-spark", "default"),
        replace(model, arch=arch, mtp=MtpHeads(3, 0, True), sidecar=sidecar),
    )
    argv = plan.server.argv
    assert argv[argv.index("--spec-draft-model") + 1] == "/draft/mtp-step.gguf"
    assert (
        plan.container is not None
        and ("/elsewhere/mtp-step.gguf", "/draft/mtp-step.gguf", "ro") in plan.container.volumes
    )
    assert plan.memory.rows[0].fit.estimate.weights == model.weights_bytes + sidecar.weights_bytes


def test_when_speculation_does_not_fit_the_fixes_name_it() -> None:
    # On a stock Mac at 40K: the server fits without drafting, not with three MTP heads drafting.
    plan = _with_heads("mac-studio", "default", HEADS, spec="mtp:3", ctx=40960)
    server = plan.memory.rows[0]
    assert server.fit.fits is False
    assert server.fit.fixes[0] == "speculative decoding off: --spec off"


@pytest.mark.parametrize(
    ("model", "ctx", "reported_mib"),
    # llama-server's own "CPU compute buffer size" lines, -ub 512, 4 slots, flash attention (issue #13).
    [("gemma-3-270m", 4096, 24.27), ("smollm2-135m-instruct", 8192, 21.51)],
)
def test_server_compute_buffer_matches_llama_server(model: str, ctx: int, reported_mib: float) -> None:
    arch = KNOWN_MODELS[model].arch
    assert arch is not None
    server = Workload(ctx=ctx, batch=2048, ubatch=512, n_seq=4, outputs=4)
    assert compute_bytes(arch, server) / MIB == pytest.approx(reported_mib, rel=0.05)
    # llama-batched-bench keeps every token's logits and needs far more.
    assert compute_bytes(arch, replace(server, outputs=None)) > 3 * compute_bytes(arch, server)
