"""`model pull step-3.7-flash` and `up --model step-3.7-flash` against a stand-in hub on 127.0.0.1
(HF_ENDPOINT) laid out as StepFun's Step-3.7-Flash-GGUF is: each quantisation's parts in its own folder,
the MTP files (Q8_0 and BF16) and the vision projector at the repository's root. The pull fetches the
Q4_K_S parts, the Q8_0 MTP file and the projector together, and places the companions beside the model;
the plan then drafts with that MTP file, with up to its three heads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app.commands import server_lifecycle as serving
from orchestrator.core.models import KNOWN_MODELS
from orchestrator.core.plan import with_model
from orchestrator.models.local import describe, resolve_model
from tests.fakes import FakeEngine, Notes, executors
from tests.integration import run_cli as _run
from tests.planning import fixed_plan
from tests.standin_hub import StandInHub, serve, split_files
from tests.tiny_gguf import write_clip_gguf, write_tiny_step35
from tests.unit.test_step37 import tiny_projector

STEP37 = KNOWN_MODELS["step-3.7-flash"]
MTP = "Step3.7-flash-mtp-Q8_0.gguf"
PROJECTOR = "mmproj-step3.7-flash-f16.gguf"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    src = tmp_path_factory.mktemp("hub-37")
    first = write_tiny_step35(src / "Step-3.7-flash-Q4_K_S.gguf", "trunk-only", heads=3, split_max_tensors=13)
    files = {f"Q4_K_S/{name}": data for name, data in split_files(first).items()}
    assert len(files) == 3
    other = write_tiny_step35(src / "Step-3.7-flash-IQ4_XS.gguf", "trunk-only", heads=3)
    files["IQ4_XS/Step-3.7-flash-IQ4_XS.gguf"] = other.read_bytes()
    heads = write_tiny_step35(src / MTP, "mtp-only", heads=3).read_bytes()
    files[MTP] = heads
    files["Step3.7-flash-mtp-BF16.gguf"] = heads + bytes(0)
    files[PROJECTOR] = tiny_projector(src / PROJECTOR).read_bytes()
    return files


@pytest.fixture
def hub(layout: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandInHub]:
    assert STEP37.repo is not None
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "400")
    with serve(StandInHub(STEP37.repo, dict(layout))) as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        yield stand_in


def run_cli(*args: str) -> tuple[int, str, str]:
    done = _run(*args, timeout=300)
    return done.returncode, done.stdout, done.stderr


def fetched(stand_in: StandInHub) -> set[str]:
    return fetched_since(stand_in, 0)


def fetched_since(stand_in: StandInHub, start: int) -> set[str]:
    return {
        p.split("/resolve/", 1)[1].split("/", 1)[1]
        for m, p, _r in stand_in.requests[start:]
        if m == "GET" and "/resolve/" in p
    }


def test_pull_by_name_brings_the_parts_the_mtp_file_and_the_projector_beside_the_model(
    hub: StandInHub, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    code, out, err = run_cli("model", "pull", "step-3.7-flash", "--models-dir", str(models))
    assert code == 0, err
    said = " ".join((out + err).split())
    folder = models / "stepfun-ai" / "Step-3.7-Flash-GGUF" / "Q4_K_S"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f"Step-3.7-flash-Q4_K_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)), MTP, PROJECTOR]
    )
    assert not (models / "stepfun-ai" / "Step-3.7-Flash-GGUF" / MTP).exists()
    # Neither the other quantisation nor the BF16 heads.
    assert fetched(hub) == {
        *(f"Q4_K_S/Step-3.7-flash-Q4_K_S-0000{i}-of-00003.gguf" for i in (1, 2, 3)),
        MTP,
        PROJECTOR,
    }
    assert f"{MTP}: the MTP sidecar (3 heads)" in said and f"{PROJECTOR}: the vision projector" in said
    # Checked against the catalogue: the tiny files are not the published sizes, and the pull says so.
    assert "checked against the catalogue" in said and "the catalogue says 3707276416 bytes" in said
    # Registered under its catalogue name: --model step-3.7-flash now serves these files, drafting with the
    # MTP file beside them, up to its three heads.
    code, out, err = run_cli(
        "plan",
        "--target",
        "cpu",
        "--model",
        "step-3.7-flash",
        "--spec",
        "mtp:3",
        "--json",
        "--models-dir",
        str(models),
    )
    assert code == 0, err
    plan = json.loads(out)
    argv = plan["server"]["argv"]
    assert plan["model"]["path"] == str(folder / "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf")
    assert argv[argv.index("--spec-draft-model") + 1].endswith("/" + MTP)
    assert argv[argv.index("--spec-draft-n-max") + 1] == "3"
    code, out, err = run_cli(
        "plan", "--target", "cpu", "--model", "step-3.7-flash", "--spec", "mtp:4", "--models-dir", str(models)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has 3 MTP heads" in err, err
    # A second pull fetches nothing: every file is kept.
    before = len(hub.requests)
    code, out, err = run_cli("model", "pull", "step-3.7-flash", "--models-dir", str(models))
    assert code == 0, err
    assert not [p for m, p, _r in hub.requests[before:] if m == "GET" and "/resolve/" in p]
    # verify checks every file the pull brought where it lies: the parts in their folder and the
    # companions beside them; a damaged projector is named in one line and left as it was.
    code, out, err = run_cli("model", "verify", "step-3.7-flash", "--models-dir", str(models))
    assert code == 0 and "sha256 of 5 file(s) match" in out, out + err
    projector = folder / PROJECTOR
    kept = projector.read_bytes()
    projector.write_bytes(kept[:-1] + bytes([kept[-1] ^ 0xFF]))
    code, out, err = run_cli("model", "verify", "step-3.7-flash", "--models-dir", str(models))
    assert code == 3 and len(err.strip().splitlines()) == 1 and PROJECTOR in err and "sha256" in err, err
    projector.write_bytes(kept)
    # Another quantisation of the repository shares its MTP file and projector: linked, not fetched again.
    before = len(hub.requests)
    code, out, err = run_cli(
        "model", "pull", "stepfun-ai/Step-3.7-Flash-GGUF:IQ4_XS", "--models-dir", str(models)
    )
    assert code == 0, err
    assert fetched_since(hub, before) == {"IQ4_XS/Step-3.7-flash-IQ4_XS.gguf"}
    other = models / "stepfun-ai" / "Step-3.7-Flash-GGUF" / "IQ4_XS"
    for name in (MTP, PROJECTOR):
        assert (other / name).stat().st_ino == (folder / name).stat().st_ino
    # Removing it deletes what the pull brought, the companions beside the model included; the other
    # quantisation keeps its own links to them.
    code, out, err = run_cli("model", "rm", "step-3.7-flash", "--yes", "--models-dir", str(models))
    assert code == 0, err
    assert list(folder.iterdir()) == []
    assert (other / MTP).is_file() and (other / PROJECTOR).is_file()


def test_up_model_step37_pulls_it_as_it_pulls_the_default(hub: StandInHub, tmp_path: Path) -> None:
    models = tmp_path / "models"
    plan = fixed_plan("dgx-spark", "default", {"data_dir": tmp_path / "data", "models_dir": models})
    missing = describe(resolve_model(None, STEP37.name, models), tmp_path / "gguf.json")
    assert not missing.present and missing.arch_source is not None
    engine = FakeEngine()
    served = serving.up(
        with_model(plan, missing), executors(engine), Notes().reporter(), rebuild=False, force=False,
        decisions={}, pull=True,
    )  # fmt: skip
    model = served.plan.model
    assert model.present and model.path.name == "Step-3.7-flash-Q4_K_S-00001-of-00003.gguf"
    assert model.sidecar is not None and model.sidecar.path.name == MTP
    assert (model.path.parent / PROJECTOR).is_file()
    assert "compose_up" in engine.names()


def test_a_pull_cut_short_leaves_the_model_unfound_until_the_next_pull_completes_it(
    hub: StandInHub, tmp_path: Path
) -> None:
    """The first part comes last: a pull stopped anywhere before it leaves no model to serve without a
    part, its MTP file or its projector, so `up` pulls again (resuming) instead."""
    models = tmp_path / "models"
    last_part = "Q4_K_S/Step-3.7-flash-Q4_K_S-00003-of-00003.gguf"
    hub.faults.cuts[last_part] = [len(hub.files[last_part]) // 2]
    hub.faults.errors_after_cut = 10
    code, _out, err = run_cli("model", "pull", "step-3.7-flash", "--models-dir", str(models))
    assert code != 0 and "Traceback" not in err
    folder = models / "stepfun-ai" / "Step-3.7-Flash-GGUF" / "Q4_K_S"
    # The companions and the second part are in; the third is kept to resume; the first was not begun.
    assert (folder / MTP).is_file() and (folder / PROJECTOR).is_file()
    assert (folder / "Step-3.7-flash-Q4_K_S-00003-of-00003.gguf.part").is_file()
    assert not list(folder.glob("*00001-of-00003.gguf*"))
    assert not resolve_model(None, STEP37.name, models).present
    hub.faults.pending_errors.clear()
    code, out, err = run_cli("model", "pull", "step-3.7-flash", "--models-dir", str(models))
    assert code == 0 and "2 fetched, 3 already there" in " ".join(out.split()), out + err
    assert resolve_model(None, STEP37.name, models).present


def test_a_published_projector_that_is_none_is_refused_and_kept(
    layout: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Read as plan reads it: a 'clip' GGUF without a vision encoder is no projector to serve images with."""
    fake = write_clip_gguf(
        tmp_path / "fake.gguf", {"clip.projector_type": "step3vl"}, {"mm.model.fc.weight": (4, 4)}
    )
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    assert STEP37.repo is not None
    with serve(StandInHub(STEP37.repo, {**layout, PROJECTOR: fake.read_bytes()})) as stand_in:
        monkeypatch.setenv("HF_ENDPOINT", stand_in.url)
        models = tmp_path / "models"
        code, _out, err = run_cli("model", "pull", "step-3.7-flash", "--models-dir", str(models))
    assert code != 0 and "without a vision encoder" in err and "the files are kept" in err
    assert len(err.strip().splitlines()) == 1
    assert (models / STEP37.repo / "Q4_K_S" / PROJECTOR).is_file()
