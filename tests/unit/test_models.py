"""Model files: GGUF checks on real files written with the gguf package, the registry (add, list, verify,
rm) through the CLI, and the memory arithmetic that reads their architecture."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.memory import GIB, MIB, Workload, cells, estimate, fit, kv_bytes
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.errors import InvalidModel
from orchestrator.models.gguf import read_model
from tests.fakes import FakeEngine
from tests.tiny_gguf import Shape, write_step35_metadata, write_tiny
from tests.unit.conftest import Cli

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_cli(cli: Cli, isolated_env: Path) -> RunCli:
    """The CLI in this process on the recording fakes: its exit code, what it printed and its errors."""

    def run(*args: str) -> tuple[int, str, str]:
        done = cli(*args)
        return done.returncode, done.stdout, done.stderr

    return run


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny.gguf", "dense", split_max_tensors=8)


def test_a_split_set_reads_as_one_model(split: Path) -> None:
    model = read_model(split)
    assert [p.path.name for p in model.parts] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert model.arch.name == "llama" and model.arch.n_layer == 2
    assert model.weights_bytes == sum(p.tensor_bytes for p in model.parts) > 0


def test_sliding_window_layers_follow_llama_cpp(tmp_path: Path) -> None:
    arch = read_model(write_tiny(tmp_path / "swa.gguf", "swa", Shape(n_layer=12, window=128))).arch
    # gemma3: five sliding layers, then one full, repeated.
    assert arch.swa_layers == tuple(il % 6 < 5 for il in range(12)) and arch.sliding_window == 128
    moe = read_model(write_tiny(tmp_path / "moe.gguf", "moe")).arch
    assert moe.n_expert == 4 and moe.n_expert_used == 2 and not any(moe.swa_layers)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "truncated"),
        ("magic", "not a GGUF file"),
        ("missing-part", "1 of 3 parts of tiny-00001-of-00003.gguf are missing"),
        ("foreign-part", "does not belong with"),
        ("second-part", "give the first part"),
    ],
)
def test_damaged_models_are_one_line_errors_and_left_alone(
    split: Path, tmp_path: Path, damage: str, message: str, run_cli: RunCli
) -> None:
    second = split.with_name("tiny-00002-of-00003.gguf")
    target = split
    if damage == "truncate":
        second.write_bytes(second.read_bytes()[:-4096])
    elif damage == "magic":
        data = split.read_bytes()
        split.write_bytes(b"GGML" + data[4:])
    elif damage == "missing-part":
        second.unlink()
    elif damage == "foreign-part":
        (tmp_path / "other").mkdir()
        other = write_tiny(tmp_path / "other" / "tiny.gguf", "dense", seed=1, split_max_tensors=14)
        # A part of a two-part set where the third part of a three-part set should be.
        shutil.copy(other, split.with_name("tiny-00003-of-00003.gguf"))
    elif damage == "second-part":
        target = second
    before = {p.name: p.read_bytes() for p in split.parent.glob("*.gguf")}
    with pytest.raises(InvalidModel, match=message) as caught:
        read_model(target)
    assert "\n" not in str(caught.value)
    code, _out, err = run_cli("model", "verify", str(target), "--models-dir", str(tmp_path / "models"))
    assert code == 3 and message.split()[0] in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in split.parent.glob("*.gguf")} == before


def test_registry_add_list_verify_rm(split: Path, tmp_path: Path, run_cli: RunCli) -> None:
    models = str(tmp_path / "models")
    code, out, err = run_cli("model", "add", str(split), "--name", "tiny", "--models-dir", models)
    assert code == 0, err
    assert "registered tiny (llama, 3 file(s))" in out
    code, out, _ = run_cli("model", "list", "--json", "--models-dir", models)
    assert code == 0 and '"name": "tiny"' in out and '"present": true' in out
    code, out, err = run_cli("model", "verify", "tiny", "--models-dir", models)
    assert code == 0 and "no published sha256" in out, err
    # A registered name stands for its file wherever --model is taken.
    code, out, err = run_cli("plan", "--target", "cpu", "--model", "tiny", "--models-dir", models, "--json")
    assert code == 0 and f'"path": "{split}"' in out, err
    # Without a terminal, rm asks for --yes instead of deciding; an added model's files are never deleted.
    code, _out, err = run_cli("model", "rm", "tiny", "--models-dir", models)
    assert code == 2 and "--yes" in err
    code, out, err = run_cli("model", "rm", "tiny", "--yes", "--models-dir", models)
    assert code == 0 and "files kept" in out, err
    assert split.is_file() and len(list(split.parent.glob("tiny-*.gguf"))) == 3
    code, _out, err = run_cli("model", "rm", "tiny", "--yes", "--models-dir", models)
    assert code == 2 and "no registered model" in err


def test_a_known_name_with_a_foreign_architecture_is_refused(
    tmp_path: Path, run_cli: RunCli, fake_executors: FakeEngine
) -> None:
    # A llama file dressed up with the Step-3.5-Flash file name.
    impostor = write_tiny(tmp_path / "step3p5_flash_Q4_K_S.gguf", "dense")
    code, _out, err = run_cli(
        "plan", "--target", "cpu", "--model", str(impostor), "--json", "--models-dir", str(tmp_path)
    )
    assert code == 0 and "declares architecture 'llama', not 'step35'" in _out
    code, _out, err = run_cli("up", "--target", "cpu", "--model", str(impostor), "--port", "18093")
    assert code == 3 and "not 'step35'" in err and "Traceback" not in err
    # Refused before anything was built or started (the engine was only asked whether it runs).
    assert set(fake_executors.names()) <= {"require"}


# --- memory arithmetic --------------------------------------------------------------------------------

STEP = KNOWN_MODELS["step-3.5-flash"]


def test_step_kv_cache_sizes_by_hand() -> None:
    arch = STEP.arch
    assert arch is not None
    assert sum(not s for s in arch.swa_layers) == 12 and arch.swa_layer_count == 33
    work = Workload(ctx=16384, batch=2048, ubatch=2048, n_seq=1)
    full, swa = kv_bytes(arch, work)
    # 12 full layers x 16384 cells x (K+V) 8 heads x 128 x 2 bytes; 33 sliding layers x (512 + 2048) cells.
    assert full == 12 * 16384 * 2 * 8 * 128 * 2
    assert swa == 33 * 2560 * 2 * 8 * 128 * 2
    # q8_0: 34 bytes per 32 values.
    q8 = kv_bytes(arch, replace(work, cache_k="q8_0", cache_v="q8_0"))[0]
    assert q8 == 12 * 16384 * 2 * (8 * 128 // 32 * 34)


def test_context_pads_to_256_cells_and_the_window_grows_with_sequences() -> None:
    arch = STEP.arch
    assert arch is not None
    assert cells(arch, Workload(ctx=262150, batch=2048, ubatch=1024, n_seq=1)) == (262400, 1536)
    assert cells(arch, Workload(ctx=262150, batch=2048, ubatch=1024, n_seq=4)) == (262400, 3072)
    assert cells(arch, Workload(ctx=262150, batch=2048, ubatch=1024, swa_full=True)) == (262400, 262400)


def test_the_seeds_mac_rules_come_out_of_the_arithmetic() -> None:
    arch, weights = STEP.arch, STEP.weights_bytes
    assert arch is not None and weights is not None
    default_limit = int(107.5 * GIB)
    # Up to 76K context with a q8_0 cache fits the stock limit; with f16 it does not.
    k76 = Workload(ctx=76 * 1024, batch=2048, ubatch=2048, cache_k="q8_0", cache_v="q8_0")
    assert estimate(arch, weights, k76).total <= default_limit
    assert estimate(arch, weights, replace(k76, cache_k="f16", cache_v="f16")).total > default_limit
    # 256K at -ub 1024 needs the wired limit raised to 120 GiB, and fits once it is.
    k256 = Workload(ctx=262150, batch=2048, ubatch=1024)
    assert estimate(arch, weights, k256).total > default_limit
    assert estimate(arch, weights, k256).total <= 122880 * MIB


def test_fixes_are_named_and_each_would_fit() -> None:
    arch, weights = STEP.arch, STEP.weights_bytes
    assert arch is not None and weights is not None
    work = Workload(ctx=262150, batch=2048, ubatch=2048)
    usable = int(114 * GIB)
    result = fit(arch, weights, work, usable, ("raise the wired limit", 122880 * MIB))
    assert result.fits is False
    assert result.fixes[0] == "raise the wired limit"
    assert any("-ctk q8_0 -ctv q8_0" in f for f in result.fixes)
    context = next(f for f in result.fixes if "-c " in f)
    ctx = int(context.split("-c ")[1].split()[0])
    assert estimate(arch, weights, replace(work, ctx=ctx)).total <= usable
    assert estimate(arch, weights, replace(work, ctx=ctx + 4096)).total > usable
    assert "does not fit" in result.verdict() and "GiB" in result.verdict()


def test_load_log_parsing_and_the_estimate_against_a_recorded_load() -> None:
    from orchestrator.core.memory import parse_load_log

    log = (
        (Path(__file__).resolve().parents[1] / "fixtures" / "llama-load-gemma-c4096-ub512.log")
        .read_text()
        .splitlines()
    )
    reported = parse_load_log(log)
    assert (reported.cells, reported.swa_cells) == (4096, 1024)
    assert (reported.kv, reported.kv_swa, reported.compute) == (12.0, 15.0, 514.5)
    gemma = KNOWN_MODELS["gemma-3-270m"]
    assert gemma.arch is not None
    est = estimate(gemma.arch, 0, Workload(ctx=4096, batch=512, ubatch=512))
    assert (est.cells, est.swa_cells) == (4096, 1024)
    assert est.kv / MIB == reported.kv and est.kv_swa / MIB == reported.kv_swa
    assert abs(est.compute / MIB / reported.compute - 1) < 0.05


def test_step35_metadata_as_upstreams_loader_reads_it(tmp_path: Path) -> None:
    """A GGUF carrying Step-3.5-Flash's metadata the way upstream's step35 loader reads it (per-layer
    arrays, a sliding_window_pattern array, 3 MTP layers on top of 45) plans like the published figures."""
    # Written out, not computed the way orchestrator.core.models computes it: the 12 full-attention
    # layers of the 45-layer trunk as the publisher describes them (the rest slide over 512 tokens).
    full_attention = (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44)
    path = write_step35_metadata(tmp_path / "step35-meta.gguf", full_attention=full_attention)

    read = read_model(path).arch
    published = STEP.arch
    assert published is not None
    assert read.n_layer == 45 and read.swa_layers == published.swa_layers
    assert tuple(il for il, sliding in enumerate(published.swa_layers) if not sliding) == full_attention
    assert (read.n_vocab, read.n_ff, read.n_ff_exp, read.n_expert_used) == (128896, 11264, 1280, 8)
    for work in (
        Workload(ctx=16384, batch=2048, ubatch=2048, n_seq=4),
        Workload(ctx=262150, batch=2048, ubatch=1024, cache_k="q8_0", cache_v="q8_0", n_seq=4),
    ):
        assert kv_bytes(read, work) == kv_bytes(published, work)
        assert cells(read, work) == cells(published, work)


def test_model_rm_refuses_what_a_running_server_maps_and_deletes_the_mtp_file_pulled_with_it(
    isolated_env: Path, fake_executors: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.app.cli import main
    from orchestrator.models import store
    from tests.fakes import FakeEngine
    from tests.tiny_gguf import write_tiny_moe

    assert isinstance(fake_executors, FakeEngine)
    models = isolated_env / "models"
    folder = models / "someone" / "Some-GGUF"
    folder.mkdir(parents=True)
    model = write_tiny_moe(folder / "some-Q4_K_S.gguf")
    sidecar = folder / "mtp-some-Q4_K_S.gguf"
    sidecar.write_bytes(b"GGUF sidecar")
    entry = store.Entry(
        name="some-q4",
        path=str(model),
        origin="hub someone/Some-GGUF@main",
        managed=True,
        files=(
            store.FileRecord(model.name, model.stat().st_size, None),
            store.FileRecord(sidecar.name, sidecar.stat().st_size, None),
        ),
    )
    store.record_pull(models, entry.name, entry)
    fake_executors.in_use = {model: "sfo-llama-server-1"}
    assert main(["model", "rm", "some-q4", "--yes", "--models-dir", str(models)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "sfo-llama-server-1" in err[0] and "down" in err[0]
    assert model.is_file() and sidecar.is_file() and "some-q4" in store.load(models)
    # Once no server maps it: the model and the MTP file pulled with it go, and the entry.
    fake_executors.in_use = {}
    assert main(["model", "rm", "some-q4", "--yes", "--models-dir", str(models)]) == 0
    assert not model.exists() and not sidecar.exists() and store.load(models) == {}


def test_model_rm_sees_the_model_a_macs_launchd_agent_serves(
    isolated_env: Path, fake_executors: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plistlib

    from orchestrator.app.cli import main
    from orchestrator.models import store
    from tests.tiny_gguf import write_tiny_moe

    monkeypatch.setenv("HOME", str(isolated_env / "home"))
    models = isolated_env / "models"
    (models / "pulled").mkdir(parents=True)
    model = write_tiny_moe(models / "pulled" / "served.gguf")
    entry = store.Entry("served", str(model), "hub a/b@main", True, (store.FileRecord(model.name, 1, None),))
    store.record_pull(models, "served", entry)
    agents = isolated_env / "home" / "Library" / "LaunchAgents"
    agents.mkdir(parents=True)
    argv = ["/bin/sh", "-c", "guard", "/tmp/x.sock", "/prefix/bin/llama-server", "-m", str(model)]
    (agents / "io.step-flash.step-flash.plist").write_bytes(plistlib.dumps({"ProgramArguments": argv}))
    assert main(["model", "rm", "served", "--yes", "--models-dir", str(models)]) == 2
    assert model.is_file()


def test_model_rm_deletes_nothing_outside_the_pulls_folder(isolated_env: Path) -> None:
    from orchestrator.models import store
    from tests.tiny_gguf import write_tiny_moe

    models = isolated_env / "models"
    (models / "pulled").mkdir(parents=True)
    model = write_tiny_moe(models / "pulled" / "m.gguf")
    outside = isolated_env / "keep.txt"
    outside.write_text("the owner's")
    files = (store.FileRecord(model.name, 1, None), store.FileRecord("../../keep.txt", 1, None))
    store.record_pull(models, "m", store.Entry("m", str(model), "hub a/b@main", True, files))
    deleted = store.remove(models, "m", lambda _q: True, {})
    assert deleted == [model] and outside.read_text() == "the owner's"


def test_model_rm_keeps_a_projector_another_pulled_model_uses(isolated_env: Path) -> None:
    """Two quantisations pulled from one folder share its projector: removing one keeps it for the other."""
    from orchestrator.models import store
    from tests.tiny_gguf import write_tiny_moe

    models = isolated_env / "models"
    folder = models / "pulled"
    folder.mkdir(parents=True)
    first, second = write_tiny_moe(folder / "m-Q4_K_M.gguf"), write_tiny_moe(folder / "m-Q8_0.gguf", seed=1)
    projector = folder / "mmproj-m-f16.gguf"
    projector.write_bytes(b"projector")
    for name, model in (("q4", first), ("q8", second)):
        files = (store.FileRecord(model.name, 1, None), store.FileRecord(projector.name, 9, None))
        store.record_pull(models, name, store.Entry(name, str(model), "hub a/b@main", True, files))
    assert store.remove(models, "q4", lambda _q: True, {}) == [first]
    assert projector.is_file() and second.is_file()
    # The last one that uses it takes it along.
    assert sorted(store.remove(models, "q8", lambda _q: True, {})) == sorted([second, projector])


def test_model_rm_keeps_a_projector_a_model_added_in_the_same_folder_finds(isolated_env: Path) -> None:
    """`model add` registers a file, not its companions: it finds the projector by folder, so a pulled
    model's rm leaves a projector in that folder while the added model is registered."""
    from orchestrator.models import store
    from tests.tiny_gguf import write_tiny_moe

    models = isolated_env / "models"
    folder = models / "pulled"
    folder.mkdir(parents=True)
    pulled, mine = write_tiny_moe(folder / "m-Q4_K_M.gguf"), write_tiny_moe(folder / "mine-Q4_0.gguf", seed=1)
    projector = folder / "mmproj-m-f16.gguf"
    projector.write_bytes(b"projector")
    files = (store.FileRecord(pulled.name, 1, None), store.FileRecord(projector.name, 9, None))
    store.record_pull(models, "q4", store.Entry("q4", str(pulled), "hub a/b@main", True, files))
    store.add(models, mine, "mine")
    assert store.remove(models, "q4", lambda _q: True, {}) == [pulled]
    assert projector.is_file() and mine.is_file()
