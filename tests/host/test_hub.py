"""`orchestrator model pull` end to end against a stand-in hub on 127.0.0.1 (HF_ENDPOINT), serving a small
GGUF split in parts: listing, disk check, transfers that drop and resume, sha256 checks, HF_TOKEN."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.models import hub
from tests.integration import run_cli as _run
from tests.standin_hub import Faults, StandInHub, serve, split_files
from tests.tiny_gguf import Shape, write_tiny

REPO = "someone/Tiny-GGUF"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    # A vocabulary big enough that the first part spans several of the downloader's 10 MB chunks, so a
    # transfer cut short leaves whole chunks on disk to resume from.
    src = tmp_path_factory.mktemp("hub-src")
    first = write_tiny(src / "tiny_Q4_K_S.gguf", "dense", Shape(extra_vocab=60000), split_max_tensors=8)
    return split_files(first)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield tmp_path / "models"


def run_cli(*args: str) -> tuple[int, str, str]:
    done = _run(*args, timeout=300)
    return done.returncode, done.stdout, done.stderr


def _pull(models: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("model", "pull", REPO, "--models-dir", str(models), *extra)


def _with_hub(monkeypatch: pytest.MonkeyPatch, stand_in: StandInHub) -> None:
    monkeypatch.setenv("HF_ENDPOINT", stand_in.url)


def test_pull_fetches_every_part_verifies_and_registers(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(StandInHub(REPO, dict(parts))) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, out, err = _pull(env)
        assert code == 0, err
        assert "3 fetched" in out and "sha256" in out
        for name, data in parts.items():
            assert hashlib.sha256((env / REPO / name).read_bytes()).digest() == hashlib.sha256(data).digest()
        assert not list((env / REPO).glob("*.part"))
        code, out, _ = run_cli("model", "list", "--models-dir", str(env))
        assert code == 0 and "tiny-gguf" in out
        # A second pull transfers nothing: every part is there and matches.
        before = len(stand_in.requests)
        code, out, _ = _pull(env)
        assert code == 0 and "0 fetched, 3 already there" in out
        assert not [r for r in stand_in.requests[before:] if r[0] == "GET" and "/resolve/" in r[1]]
        code, out, err = run_cli("model", "verify", "tiny-gguf", "--models-dir", str(env))
        assert code == 0, err
        assert "3 part(s) all present" in out and "sha256 of 3 file(s) match" in out
        # A byte changed on disk: verify says so in one line and leaves the file as it found it.
        last = env / REPO / list(parts)[-1]
        damaged = bytearray(last.read_bytes())
        damaged[-1] ^= 0xFF
        last.write_bytes(bytes(damaged))
        code, _out, err = run_cli("model", "verify", "tiny-gguf", "--models-dir", str(env))
        assert code == 3 and "does not match its published sha256" in err
        assert len(err.strip().splitlines()) == 1 and last.read_bytes() == bytes(damaged)


def test_a_dropped_connection_resumes_within_the_pull(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = next(iter(parts))
    cut = 15 << 20
    with serve(StandInHub(REPO, dict(parts), faults=Faults(cuts={first: [cut]}))) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
        assert code == 0, err
        ranges = stand_in.ranges(first)
        assert len(ranges) == 2 and ranges[0] is None and ranges[1] is not None
        assert (env / REPO / first).read_bytes() == parts[first]


def test_an_interrupted_pull_keeps_its_part_and_the_next_one_resumes(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = next(iter(parts))
    faults = Faults(cuts={first: [15 << 20]}, errors_after_cut=10)
    with serve(StandInHub(REPO, dict(parts), faults=faults)) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
        assert code == 1
        assert "stopped" in err and "resumes" in err and "Traceback" not in err
        part = env / REPO / (first + ".part")
        kept = part.stat().st_size
        assert 0 < kept < len(parts[first])
        assert parts[first].startswith(part.read_bytes())
        assert not (env / REPO / first).exists()
        faults.pending_errors.clear()
        code, out, err = _pull(env)
        assert code == 0, err
        assert f"resuming at {kept / 2**20:.1f} MiB" in out
        assert stand_in.ranges(first)[-1] == f"bytes={kept}-"
        assert (env / REPO / first).read_bytes() == parts[first]


def _pull_process(models: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "model", "pull", REPO, "--models-dir", str(models)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _when(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_pull_stopped_by_a_signal_keeps_its_part_and_resumes(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    first = next(iter(parts))
    faults = Faults(stalls={first: 15 << 20})
    part = env / REPO / (first + ".part")
    with serve(StandInHub(REPO, dict(parts), faults=faults)) as stand_in:
        _with_hub(monkeypatch, stand_in)
        pulling = _pull_process(env)
        # The downloader writes 10 MB chunks: once one is on disk the transfer is under way.
        _when(lambda: part.is_file() and part.stat().st_size >= 10 << 20)
        pulling.send_signal(signum)
        _out, err = pulling.communicate(timeout=60)
        faults.release.set()
        assert pulling.returncode == code, err
        assert len(err.strip().splitlines()) == 1 and "carry on" in err
        kept = part.stat().st_size
        assert kept >= 10 << 20 and parts[first].startswith(part.read_bytes())
        assert not (env / REPO / first).exists()
        again, _out, err = _pull(env)
        assert again == 0, err
        assert stand_in.ranges(first)[-1] == f"bytes={kept}-"
        assert (env / REPO / first).read_bytes() == parts[first]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_disk_that_fills_during_a_pull_keeps_the_part_and_says_how_much(
    parts: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    # Big enough for the check before the transfer (the files + 2 GiB spare); then filled while the
    # transfer stalls, as another program writing to the same disk would.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2200m", "tmpfs", str(disk)], check=True)
    try:
        first = next(iter(parts))
        faults = Faults(stalls={first: 12 << 20})
        models = disk / "models"
        part = models / REPO / (first + ".part")
        with serve(StandInHub(REPO, dict(parts), faults=faults)) as stand_in:
            _with_hub(monkeypatch, stand_in)
            pulling = _pull_process(models)
            _when(lambda: part.is_file() and part.stat().st_size >= 10 << 20)
            free = shutil.disk_usage(disk).free
            subprocess.run(["fallocate", "-l", str(free - (1 << 20)), str(disk / "filler")], check=True)
            faults.release.set()
            _out, err = pulling.communicate(timeout=60)
        assert pulling.returncode == 1, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "is full after" in err and "MiB more are needed" in err and "resumes" in err
        assert part.is_file() and parts[first].startswith(part.read_bytes())
        assert not (models / REPO / first).exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_damaged_download_is_discarded_not_kept(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = list(parts)[-1]
    with serve(StandInHub(REPO, dict(parts), published_sha={last: "0" * 64})) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
        assert code == 3 and "arrived damaged" in err and "Traceback" not in err
        assert not (env / REPO / last).exists() and not (env / REPO / (last + ".part")).exists()
        # The good parts fetched before it stay in place for the next pull; the first part, which
        # makes the model found, is fetched last, so it is not there yet.
        first, *middle = list(parts)[:-1]
        assert all((env / REPO / name).is_file() for name in middle) and middle
        assert not (env / REPO / first).exists()


def test_a_file_already_there_that_differs_is_left_alone(
    parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = next(iter(parts))
    mine = env / REPO / first
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"GGUF my own file")
    with serve(StandInHub(REPO, dict(parts))) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
        # Found before anything was fetched: the first part, fetched last, is checked first.
        assert not [r for r in stand_in.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert code == 3 and "move it aside" in err
    assert mine.read_bytes() == b"GGUF my own file"


@pytest.mark.parametrize("name", ["../../../escape-Q4_K_S.gguf", "sub/../../escape-Q4_K_S.gguf"])
def test_a_listing_that_names_a_path_outside_the_repository_is_refused_before_any_transfer(
    name: str, parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile mirror's listing cannot make the pull write outside the models folder."""
    first = next(iter(parts))
    with serve(StandInHub(REPO, {name: parts[first]})) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "outside the repository" in err, err
    assert "Traceback" not in err
    written = [p for p in env.parent.rglob("escape-Q4_K_S.gguf*")]
    assert written == [] and not (env / REPO).exists()


def test_hf_token_is_sent(parts: dict[str, bytes], env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(StandInHub(REPO, dict(parts), token="hf_secret")) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, _out, err = _pull(env)
        assert code == 1 and "HF_TOKEN" in err and "Traceback" not in err
        monkeypatch.setenv("HF_TOKEN", "hf_secret")
        code, _out, err = _pull(env)
        assert code == 0, err


def test_unreachable_hub_and_unknown_quant_are_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    code, _out, err = _pull(env)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "HF_ENDPOINT" in err


def test_choose_files_picks_one_quant_and_every_part() -> None:
    files = [
        hub.RemoteFile("m-Q4_K_S-00002-of-00002.gguf", 5, None),
        hub.RemoteFile("m-Q4_K_S-00001-of-00002.gguf", 5, None),
        hub.RemoteFile("m-Q8_0.gguf", 9, None),
        hub.RemoteFile("mmproj-m-F16.gguf", 1, None),
        hub.RemoteFile("README.md", 1, None),
    ]
    chosen = hub.choose_files(files, "q4_k_s", "o/m")
    assert [f.name for f in chosen] == ["m-Q4_K_S-00001-of-00002.gguf", "m-Q4_K_S-00002-of-00002.gguf"]
    with pytest.raises(UsageError, match="several quantisations"):
        hub.choose_files(files, None, "o/m")
    with pytest.raises(UsageError, match="has: Q4_K_S, Q8_0"):
        hub.choose_files(files, "IQ2_XS", "o/m")
    assert hub.parse_ref(None) == (hub.DEFAULT_REPO, None)
    assert hub.parse_ref("a/b:Q8_0") == ("a/b", "Q8_0")
    with pytest.raises(UsageError):
        hub.parse_ref("not a repo")


def test_disk_check_refuses_before_transferring(tmp_path: Path) -> None:
    plan = hub.PullPlan("o/m", "c", (hub.RemoteFile("huge.gguf", 1 << 60, None),), tmp_path / "o" / "m")
    with pytest.raises(UsageError, match="GiB free"):
        hub.check_disk(plan)
    assert not (tmp_path / "o").exists()


def test_choose_sidecar_takes_the_mtp_file_of_the_chosen_quant() -> None:
    files = [
        hub.RemoteFile("m-Q4_K_S.gguf", 5, None),
        hub.RemoteFile("m-Q8_0.gguf", 9, None),
        hub.RemoteFile("mtp-m-Q4_K_S.gguf", 1, None),
        hub.RemoteFile("mtp-m-Q8_0.gguf", 2, None),
    ]
    chosen = hub.choose_files(files, "Q8_0", "o/m")
    assert [f.name for f in chosen] == ["m-Q8_0.gguf"]
    sidecar = hub.choose_sidecar(files, chosen)
    assert sidecar is not None and sidecar.name == "mtp-m-Q8_0.gguf"
    assert hub.choose_sidecar(files[:2], chosen) is None


def test_pull_brings_the_mtp_sidecar_and_the_plan_drafts_with_it(
    tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tiny_gguf import write_tiny_step35

    src = tmp_path / "src"
    src.mkdir()
    files = {
        "tiny-step35-Q4_K_S.gguf": write_tiny_step35(src / "t.gguf", "trunk-only").read_bytes(),
        "mtp-tiny-step35-Q4_K_S.gguf": write_tiny_step35(src / "m.gguf", "mtp-only").read_bytes(),
    }
    repo = "someone/Tiny-Step35-GGUF"
    with serve(StandInHub(repo, files)) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, out, err = run_cli("model", "pull", repo, "--models-dir", str(env))
        assert code == 0, err
        assert "2 fetched" in out and "the MTP sidecar (2 heads)" in err + out
    model = env / repo / "tiny-step35-Q4_K_S.gguf"
    code, out, err = run_cli(
        "plan", "--target", "cpu", "--model", str(model), "--spec", "mtp", "--json", "--models-dir", str(env)
    )
    assert code == 0, err
    import json

    plan = json.loads(out)
    argv = plan["server"]["argv"]
    assert argv[argv.index("--spec-draft-model") + 1] == "/models/mtp-tiny-step35-Q4_K_S.gguf"
    assert plan["speculation"]["spec_type"] == "draft-mtp"
    code, out, err = run_cli("model", "verify", str(model), "--models-dir", str(env))
    assert code == 0 and "MTP heads: 2 declared, not in the file" in out, err


def test_a_pull_of_a_catalogued_file_is_checked_against_the_catalogue(
    tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for a repository the catalogue lists (model list --available), whose files are not what
    # the catalogue says: the pull names each difference and the files are what counts.
    repo = "AesSedai/Step-3.5-Flash-GGUF"
    first = write_tiny(tmp_path / "Step-3.5-Flash-IQ4_XS.gguf", "dense")
    monkeypatch.setenv("COLUMNS", "400")
    with serve(StandInHub(repo, {first.name: first.read_bytes()})) as stand_in:
        _with_hub(monkeypatch, stand_in)
        code, out, err = run_cli("model", "pull", f"{repo}:IQ4_XS", "--models-dir", str(env))
    assert code == 0, err
    said = " ".join((out + err).split())
    assert "checked against the catalogue" in said
    assert "the catalogue says 91.31 GiB of tensors" in said and "MTP heads: the catalogue says yes" in said
