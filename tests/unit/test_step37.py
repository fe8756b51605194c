"""Step-3.7-Flash as data (issue #37): the shared step35 architecture as published (96 query heads on the
sliding-window layers), the catalogue's 3.7 files and their fit per target with the projector and MTP
layers counted, pulling by catalogue name (the 3.7 layout: parts in a folder, MTP file and projector at
the root, placed beside the model), choosing it with --model, its MTP file found and checked, and eval /
quantize with its companion files."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.catalogue import CATALOGUE, DGX_SPARK, RYZEN_AI_MAX
from orchestrator.core.memory import GIB
from orchestrator.core.model_catalogue import (
    PUBLISHED,
    STEP37_Q4_K_S,
    companion_differences,
    published,
    serving_targets,
    verdict,
    verdicts,
)
from orchestrator.core.models import (
    KNOWN_MODELS,
    companion_kind,
    family_of,
    is_mtp_file_name,
    serves_line,
    step35_published,
)
from orchestrator.core.quality import reference_problem
from orchestrator.core.quantize import source_problem
from orchestrator.core.speculation import parse_speculative, resolve
from orchestrator.errors import UsageError
from orchestrator.models import hub
from orchestrator.models.local import _first_part, describe, find_sidecar, resolve_model
from tests.conftest import host_facts
from tests.tiny_gguf import write_tiny_step3vl_projector, write_tiny_step35
from tests.unit.conftest import Cli

GOLDEN = Path(__file__).parent.parent / "golden" / "step37-verdicts.json"
STEP37 = KNOWN_MODELS["step-3.7-flash"]


def tiny_projector(path: Path) -> Path:
    """The tiny step3vl projector (tests/tiny_gguf.py), made for the tiny step35's embedding size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny_step3vl_projector(path)


def test_the_published_architecture_has_96_query_heads_on_sliding_layers_and_64_on_full_ones() -> None:
    arch = step35_published()
    assert arch.n_layer == 45 and sum(arch.swa_layers) == 33
    assert {h for h, swa in zip(arch.n_head, arch.swa_layers, strict=True) if swa} == {96}
    assert {h for h, swa in zip(arch.n_head, arch.swa_layers, strict=True) if not swa} == {64}
    assert arch.n_head_kv == (8,) * 45 and arch.n_nextn == 0
    heads = step35_published(3).heads()
    assert heads.n_layer == 3 and heads.n_head_kv == (8, 8, 8) and heads.swa_layers == (True,) * 3
    # Both models plan from it before their files are here.
    assert STEP37.arch == KNOWN_MODELS["step-3.5-flash"].arch == arch


def test_the_catalogue_lists_step37_with_its_companions_and_where_each_was_seen() -> None:
    assert STEP37.repo == "stepfun-ai/Step-3.7-Flash-GGUF" and STEP37.quant == "Q4_K_S"
    assert (
        STEP37.expected_file == "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
        and STEP37.expected_arch == "step35"
    )
    assert (STEP37.mtp_file, STEP37.mtp_bytes) == ("Step3.7-flash-mtp-Q8_0.gguf", 3_707_276_416)
    assert (STEP37.projector_file, STEP37.projector_bytes) == ("mmproj-step3.7-flash-f16.gguf", 3_972_828_768)
    ours = [f for f in PUBLISHED if f.model == "step-3.7-flash"]
    # StepFun's own first, then the community's.
    assert ours[0] is STEP37_Q4_K_S and ours[0].repo == STEP37.repo and len(ours) >= 2
    assert (
        STEP37_Q4_K_S.pull == "step-3.7-flash"
        and STEP37_Q4_K_S.mtp_where == "separate Step3.7-flash-mtp-Q8_0.gguf"
    )
    assert STEP37_Q4_K_S.parts == 3 and STEP37_Q4_K_S.projector == STEP37.projector_file
    assert (
        STEP37_Q4_K_S.mtp_bytes == STEP37.mtp_bytes
        and STEP37_Q4_K_S.projector_bytes == STEP37.projector_bytes
    )
    for file in PUBLISHED:
        assert file.size_seen and file.mtp_seen and file.model in KNOWN_MODELS
        if file.projector is not None or file.model == "step-3.7-flash":
            assert file.projector_seen
    unsloth = next(f for f in ours if f.repo.startswith("unsloth/"))
    assert unsloth.pull == "unsloth/Step-3.7-Flash-GGUF:UD-Q4_K_S" and unsloth.mtp_where == "unchecked"
    # The Step-3.5 correction: its Q4_K_S is named by its first part (12, seen in third-party configs).
    step35 = PUBLISHED[0]
    assert step35.parts == 12 and "00001-of-00012" in KNOWN_MODELS["step-3.5-flash"].expected_file
    assert step35.parts_seen and "third-party" in step35.parts_seen
    assert published(STEP37.repo, "Q4_K_S") is STEP37_Q4_K_S and published(STEP37.repo, None) is None
    assert published("stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S", None) is step35
    said = companion_differences(STEP37_Q4_K_S, "Step3.7-flash-mtp-Q8_0.gguf", 5, "mtp")
    assert said == ["mtp file: the catalogue says 3707276416 bytes, Step3.7-flash-mtp-Q8_0.gguf has 5"]
    assert (
        companion_differences(STEP37_Q4_K_S, "mmproj-step3.7-flash-f16.gguf", 3_972_828_768, "projector")
        == []
    )


def test_the_fit_counts_the_projector_and_where_the_profile_speculates_the_mtp_layers() -> None:
    facts = host_facts("cpu-debian")
    spark = DGX_SPARK.profile("default")
    assert spark.speculative.kind == "mtp"
    bare = replace(STEP37_Q4_K_S, projector_bytes=None, mtp_bytes=None, mtp=False, mtp_file=None)
    with_all = verdict(STEP37_Q4_K_S, DGX_SPARK, spark, facts)
    without = verdict(bare, DGX_SPARK, spark, facts)
    companions = (STEP37_Q4_K_S.projector_bytes or 0) + (STEP37_Q4_K_S.mtp_bytes or 0)
    # The projector's and MTP file's weights, and the draft context's KV cache over the 3 heads on top.
    assert with_all.needs_gib > without.needs_gib + companions / GIB - 0.1
    assert with_all.needs_gib - without.needs_gib < companions / GIB + 2
    # Where the profile does not speculate, the MTP file is not loaded: only the projector counts.
    ryzen = RYZEN_AI_MAX.profile("default")
    assert ryzen.speculative.kind == "off"
    gap = (
        verdict(STEP37_Q4_K_S, RYZEN_AI_MAX, ryzen, facts).needs_gib
        - verdict(bare, RYZEN_AI_MAX, ryzen, facts).needs_gib
    )
    assert abs(gap - (STEP37_Q4_K_S.projector_bytes or 0) / GIB) < 0.1


def test_the_memory_plan_of_the_published_step37_files_on_each_target_matches_golden() -> None:
    facts = host_facts("cpu-debian")
    targets = serving_targets(list(CATALOGUE.values()))
    produced = {
        f.pull: [
            {
                "target": v.target,
                "profile": v.profile,
                "fits": v.fits,
                "needs_gib": v.needs_gib,
                "largest": v.largest_context,
            }
            for v in verdicts(f, targets, facts)
        ]
        for f in PUBLISHED
        if f.model == "step-3.7-flash"
    }
    text = json.dumps(produced, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"no golden file {GOLDEN.name}; run UPDATE_GOLDEN=1 pytest and review it"
    assert text == GOLDEN.read_text()
    spark = {(v["profile"]): v for v in produced["step-3.7-flash"] if v["target"] == "dgx-spark"}
    assert spark["default"]["fits"] in ("fits", "fits with q8_0 KV")


def test_model_list_available_shows_both_models_with_mtp_and_projector(cli: Cli) -> None:
    done = cli("model", "list", "--available", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["pull"]: row for row in json.loads(done.stdout)}
    assert {"step-3.5-flash", "step-3.7-flash"} <= set(rows)
    ours = rows["step-3.7-flash"]
    assert ours["model"] == "step-3.7-flash" and ours["mtp_where"].startswith("separate")
    assert ours["projector"] == "mmproj-step3.7-flash-f16.gguf" and ours["verdicts"]
    text = cli("model", "list", "--available", env={"COLUMNS": "400"})
    assert (
        text.returncode == 0
        and "step-3.7-flash" in text.stdout
        and "mmproj-step3.7-flash-f16.gguf" in text.stdout
    )


def test_pull_takes_catalogue_names_and_repositories() -> None:
    assert hub.parse_ref("step-3.7-flash") == (STEP37.repo, "Q4_K_S")
    assert hub.parse_ref("Step-3.7-Flash") == (STEP37.repo, "Q4_K_S")
    assert hub.parse_ref("step-3.5-flash") == ("stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S", None)
    assert hub.parse_ref("o/r:IQ4_XS") == ("o/r", "IQ4_XS")
    with pytest.raises(
        UsageError, match=r"neither a model of the catalogue .*step-3\.7-flash.* nor a hub repository"
    ):
        hub.parse_ref("step-9-flash")


# StepFun's 3.7 layout: each quantisation's parts in a folder, the MTP files and projector at the root.
LISTING = [
    hub.RemoteFile("Q4_K_S/Step-3.7-flash-Q4_K_S-00001-of-00003.gguf", 50, None),
    hub.RemoteFile("Q4_K_S/Step-3.7-flash-Q4_K_S-00002-of-00003.gguf", 50, None),
    hub.RemoteFile("Q4_K_S/Step-3.7-flash-Q4_K_S-00003-of-00003.gguf", 50, None),
    hub.RemoteFile("IQ4_XS/Step-3.7-flash-IQ4_XS-00001-of-00001.gguf", 40, None),
    hub.RemoteFile("Step3.7-flash-mtp-Q8_0.gguf", 4, None),
    hub.RemoteFile("Step3.7-flash-mtp-BF16.gguf", 7, None),
    hub.RemoteFile("mmproj-step3.7-flash-f16.gguf", 4, None),
    hub.RemoteFile("README.md", 1, None),
]


def test_the_step37_layout_is_chosen_whole_and_placed_beside_the_model(tmp_path: Path) -> None:
    chosen = hub.choose_files(LISTING, "Q4_K_S", STEP37.repo)
    assert [Path(f.name).name for f in chosen] == [
        f"Step-3.7-flash-Q4_K_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    sidecar = hub.choose_sidecar(LISTING, chosen)
    projector = hub.choose_projector(LISTING, chosen)
    assert sidecar is not None and sidecar.name == "Step3.7-flash-mtp-Q8_0.gguf"
    assert projector is not None and projector.name == "mmproj-step3.7-flash-f16.gguf"
    plan = hub.PullPlan(STEP37.repo, "c", (*chosen, sidecar, projector), tmp_path)
    folder = tmp_path / "Q4_K_S"
    assert [plan.local(f).parent for f in plan.files] == [folder] * 5
    assert plan.local(sidecar).name == sidecar.name
    # A repository whose model files all have "MTP" in their names (heads inside) still gives its model.
    inside = [hub.RemoteFile("Model-MTP-Q4_K_M.gguf", 9, None), hub.RemoteFile("mmproj-F16.gguf", 1, None)]
    assert [f.name for f in hub.choose_files(inside, None, "o/m")] == ["Model-MTP-Q4_K_M.gguf"]
    assert hub.choose_sidecar(inside, hub.choose_files(inside, None, "o/m")) is None
    # Several quantisations and no choice: one line that says how to choose.
    with pytest.raises(UsageError, match="several quantisations"):
        hub.choose_files(LISTING, None, STEP37.repo)


def test_mtp_files_are_known_by_name_and_found_beside_the_model(tmp_path: Path) -> None:
    assert is_mtp_file_name("Step3.7-flash-mtp-Q8_0.gguf") and is_mtp_file_name("mtp-model.gguf")
    assert not is_mtp_file_name("Step-3.7-flash-Q4_K_S-00001-of-00003.gguf") and not is_mtp_file_name(
        "smtpx.gguf"
    )
    assert companion_kind("mmproj-step3.7-flash-f16.gguf") == "vision projector"
    assert (
        family_of("Step3.7-flash-mtp-Q8_0.gguf") == "3.7" and family_of("step3p5_flash_Q4_K_S.gguf") == "3.5"
    )
    assert family_of("Step-3.7-flash-Q4_K_S-00001-of-00003.gguf") == "3.7" and family_of("tiny.gguf") is None
    folder = tmp_path / "stepfun-ai" / "Step-3.7-Flash-GGUF" / "Q4_K_S"
    folder.mkdir(parents=True)
    first = write_tiny_step35(
        folder / "Step-3.7-flash-Q4_K_S.gguf", "trunk-only", heads=3, split_max_tensors=13
    )
    assert first.name == "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
    mtp = write_tiny_step35(folder / "Step3.7-flash-mtp-Q8_0.gguf", "mtp-only", heads=3)
    tiny_projector(folder / "mmproj-step3.7-flash-f16.gguf")
    assert find_sidecar(first) == mtp
    assert _first_part(sorted(folder.glob("*.gguf"))) == first
    # Not pulled by name: the catalogue's model, found one folder down (the repository's quant folder).
    found = resolve_model(None, "step-3.7-flash", tmp_path)
    assert found.present and found.path == first and found.alias == "step-3.7-flash"
    described = describe(found, tmp_path / "cache.json")
    assert (
        described.sidecar is not None and described.sidecar.path == mtp and described.sidecar.family == "3.7"
    )
    assert described.mtp is not None and described.mtp.declared == 3
    # The declared general.name is read too, and says the family where the file name does not.
    assert described.general_name == "tiny-step35-trunk-only"
    renamed = replace(described, path=tmp_path / "model.gguf", alias="model", general_name="Step 3.7 Flash")
    assert renamed.family == "3.7" and replace(renamed, general_name=None).family is None
    ok = resolve(parse_speculative("mtp:3"), "step-3.7-flash", "step35", described.arch.n_vocab if described.arch else None,
                 described.mtp, described.sidecar, "3.7")  # fmt: skip
    assert ok.spec_type == "draft-mtp" and ok.draft_n == 3 and ok.sidecar == mtp
    with pytest.raises(UsageError, match=r"has 3 MTP heads .* use mtp:1 to mtp:3"):
        resolve(
            parse_speculative("mtp:4"),
            "step-3.7-flash",
            "step35",
            None,
            described.mtp,
            described.sidecar,
            "3.7",
        )


def test_a_step37_mtp_file_beside_a_step35_model_is_refused_in_one_line(tmp_path: Path, cli: Cli) -> None:
    model = write_tiny_step35(tmp_path / "step3p5_flash_tiny.gguf", "trunk-only")
    write_tiny_step35(tmp_path / "Step3.7-flash-mtp-Q8_0.gguf", "mtp-only")
    described = describe(resolve_model(model, "step-3.5-flash", tmp_path), tmp_path / "cache.json")
    assert described.sidecar is not None
    with pytest.raises(UsageError, match=r"made for Step-3.7-Flash but .* is Step-3.5-Flash"):
        resolve(
            parse_speculative("mtp"), described.alias, "step35", None, described.mtp, described.sidecar, "3.5"
        )
    done = cli(
        "plan", "--target", "cpu", "--model", str(model), "--spec", "mtp", "--models-dir", str(tmp_path)
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "made for Step-3.7-Flash" in done.stderr and "Traceback" not in done.stderr
    # Reaching a server does not need its MTP file: status, logs and down still answer.
    for command in ("status", "logs", "down"):
        ran = cli(
            command, "--target", "cpu", "--model", str(model), "--spec", "mtp", "--models-dir", str(tmp_path)
        )
        assert "made for Step-3.7-Flash" not in ran.stderr and "Traceback" not in ran.stderr, (
            command,
            ran.stderr,
        )
    # Not speculating, the plan still does not count the other model's MTP file as this one's heads.
    shown = cli(
        "plan", "--target", "cpu", "--model", str(model), "--spec", "off", "--models-dir", str(tmp_path)
    )
    assert shown.returncode == 0, shown.stderr
    assert "Step3.7-flash-mtp-Q8_0.gguf beside it is Step-3.7-Flash's, not this model's" in " ".join(
        shown.stdout.split()
    )


def test_plan_model_step37_before_it_is_pulled_plans_the_published_files(cli: Cli, tmp_path: Path) -> None:
    done = cli(
        "plan", "--target", "dgx-spark", "--model", "step-3.7-flash", "--models-dir", str(tmp_path), "--json"
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["model"]["alias"] == "step-3.7-flash" and plan["model"]["present"] is False
    assert plan["model"]["path"].endswith(
        "stepfun-ai/Step-3.7-Flash-GGUF/Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
    )
    assert plan["model"]["arch_source"].startswith("published architecture")
    # What the pull brings beside it is planned as published: drafting from its MTP file, its projector
    # read as images, and both in the memory the plan counts.
    folder = tmp_path / "stepfun-ai/Step-3.7-Flash-GGUF"
    assert plan["speculation"]["spec_type"] == "draft-mtp" and plan["speculation"]["heads"] == 3
    assert plan["speculation"]["sidecar"] == str(folder / "Step3.7-flash-mtp-Q8_0.gguf")
    assert plan["speculation"]["heads_bytes"] == STEP37.mtp_bytes
    assert plan["model"]["projector"]["path"] == str(folder / "mmproj-step3.7-flash-f16.gguf")
    assert plan["model"]["projector"]["weights_bytes"] == STEP37.projector_bytes
    text_only = cli(
        "plan", "--target", "dgx-spark", "--model", "step-3.7-flash", "--models-dir", str(tmp_path), "--json",
        "--mmproj", "none", "--spec", "off",
    )  # fmt: skip
    lean = json.loads(text_only.stdout)
    assert lean["model"]["projector"] is None and lean["speculation"]["spec_type"] is None

    companions = (STEP37.projector_bytes or 0) + (STEP37.mtp_bytes or 0)
    server, lean_server = plan["memory"]["rows"][0], lean["memory"]["rows"][0]
    assert server["total_gib"] - lean_server["total_gib"] > companions / GIB
    assert server["vision_mib"] > (STEP37.projector_bytes or 0) / 2**20 and server["draft_mib"] > 0
    text = cli("plan", "--target", "dgx-spark", "--model", "step-3.7-flash", "--models-dir", str(tmp_path),
               env={"COLUMNS": "400"})  # fmt: skip
    assert (
        "step-3.7-flash (the target's default is step-3.5-flash); serve the other with --model step-3.5-flash"
        in text.stdout
    )
    default = cli("plan", "--target", "dgx-spark", "--models-dir", str(tmp_path), env={"COLUMNS": "400"})
    assert (
        "step-3.5-flash (the target's default); serve the other with --model step-3.7-flash" in default.stdout
    )


def test_serves_line() -> None:
    assert serves_line("step-3.5-flash", "step-3.5-flash") == (
        "step-3.5-flash (the target's default); serve the other with --model step-3.7-flash"
    )
    assert (
        serves_line("smollm2-135m-instruct", "smollm2-135m-instruct")
        == "smollm2-135m-instruct (the target's default)"
    )


def test_eval_refuses_a_companion_or_the_other_models_reference() -> None:
    assert "is a MTP file" in (
        reference_problem("Step-3.7-flash-Q4_K_S-00001-of-00003.gguf", "Step3.7-flash-mtp-Q8_0.gguf") or ""
    )
    assert "vision projector" in (reference_problem("a.gguf", "mmproj-step3.7-flash-f16.gguf") or "")
    said = reference_problem("Step-3.7-flash-IQ4_XS.gguf", "step3p5_flash_Q4_K_S-00001-of-00012.gguf") or ""
    assert "is Step-3.5-Flash but" in said and "same model" in said
    assert reference_problem("Step-3.7-flash-IQ4_XS.gguf", "Step-3.7-flash-Q8_0-00001-of-00005.gguf") is None


def test_quantize_leaves_the_projector_and_mtp_file_as_they_are(tmp_path: Path, cli: Cli) -> None:
    from orchestrator.app.commands.quantize import carry_companions, output_folder

    folder = tmp_path / "src"
    folder.mkdir()
    model = write_tiny_step35(folder / "Step-3.7-flash-BF16.gguf", "trunk-only", heads=3)
    mtp = write_tiny_step35(folder / "Step3.7-flash-mtp-BF16.gguf", "mtp-only", heads=3)
    projector = tiny_projector(folder / "mmproj-step3.7-flash-f16.gguf")
    before = {p.name: p.read_bytes() for p in (mtp, projector)}
    # A folder of its own: no other quantised model finds these beside itself.
    out = output_folder(tmp_path / "models", model, "Step-3.7-flash-Q4_K_S.gguf")
    assert out == tmp_path / "models" / "quantized" / "Step-3.7-flash-Q4_K_S"
    (tmp_path / "plain").mkdir()
    plain = write_tiny_step35(tmp_path / "plain" / "tiny.gguf", "no-heads")
    assert output_folder(tmp_path / "models", plain, "tiny-Q4_K_S.gguf") == tmp_path / "models" / "quantized"
    out.mkdir(parents=True)
    said, linked = carry_companions(model, out)
    assert len(said) == 2 and all("left as it is" in line for line in said)
    assert sorted(p.name for p in linked) == sorted(before)
    for name, data in before.items():
        assert (out / name).read_bytes() == data and (out / name).stat().st_ino == (
            folder / name
        ).stat().st_ino
    # Quantising the MTP file itself (asked for with --from) carries nothing beside it.
    assert carry_companions(mtp, tmp_path / "elsewhere") == ([], [])
    assert source_problem("mmproj-step3.7-flash-f16.gguf") is not None and source_problem(model.name) is None
    done = cli("quantize", "--from", str(projector), "--type", "Q4_K_S", "--models-dir", str(tmp_path / "m"))
    assert done.returncode == 2 and "is a vision projector" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()


def test_the_default_model_is_found_by_the_name_its_pull_registered(cli: Cli, tmp_path: Path) -> None:
    """Where the published file is named otherwise than the catalogue's pattern expects (its names could
    not all be checked from here), the file `model pull` registered under the catalogue's name serves."""
    from orchestrator.models import store
    from tests.tiny_gguf import write_step35_metadata

    folder = tmp_path / "stepfun-ai" / "Step-3.5-Flash-GGUF-Q4_K_S"
    folder.mkdir(parents=True)
    first = write_step35_metadata(folder / "Step-3.5-Flash-renamed.gguf")
    files = (store.FileRecord(first.name, first.stat().st_size, None),)
    store.record_pull(
        tmp_path, "step-3.5-flash", store.Entry("step-3.5-flash", str(first), "hub", True, files)
    )
    done = cli("plan", "--target", "dgx-spark", "--models-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)["model"]
    assert (model["path"], model["present"], model["alias"]) == (str(first), True, "step-3.5-flash")


def test_of_several_mtp_files_the_one_of_the_models_family_and_q8_0_is_taken(tmp_path: Path) -> None:
    for name in ("Step3.7-flash-mtp-Q8_0.gguf", "Step3.7-flash-mtp-BF16.gguf", "step3p5-flash-mtp-Q8_0.gguf"):
        (tmp_path / name).write_bytes(b"")
    model37 = tmp_path / "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
    assert find_sidecar(model37) == tmp_path / "Step3.7-flash-mtp-Q8_0.gguf"
    # The 3.5 model has one of its own family: that one, whatever its quantisation.
    (tmp_path / "step3p5-flash-mtp-Q8_0.gguf").rename(tmp_path / "step3p5-flash-mtp-BF16.gguf")
    assert find_sidecar(tmp_path / "step3p5_flash_Q4_K_S-00001-of-00012.gguf") == (
        tmp_path / "step3p5-flash-mtp-BF16.gguf"
    )
    # llama.cpp's own name for a model's MTP file wins over any other.
    exact = tmp_path / f"mtp-{model37.name}"
    exact.write_bytes(b"")
    assert find_sidecar(model37) == exact
    # Nothing tells two of the same family apart but Q8_0: with none, none is guessed.
    (tmp_path / "Step3.7-flash-mtp-Q8_0.gguf").rename(tmp_path / "Step3.7-flash-mtp-Q6_K.gguf")
    exact.unlink()
    assert find_sidecar(model37) is None
