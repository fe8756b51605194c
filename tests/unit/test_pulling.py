"""Pulling the plan's published image instead of compiling it, through the recording fakes: the labels held
against the plan, the lock's digest, the registry that does not answer, --build and --no-build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.app.steps import building
from orchestrator.app.steps.pulling import NotPulled
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.published import ImageLock, parse_lock
from orchestrator.errors import ConfigError, UsageError
from tests.fakes import FakeEngine, FakeHost, Notes, cpu_plan, executors

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
# The namespace a release pushed to, as its lock names it (none is spelled in the project).
REGISTRY = "ghcr.io/an-owner"


def released_plan(tmp_path: Path, **settings: object) -> Plan:
    """The cpu plan with the registry a release's lock names."""
    return cpu_plan(tmp_path, registry=REGISTRY, **settings)


def _image(plan: Plan) -> ImageBuild:
    assert isinstance(plan.build, ImageBuild)
    return plan.build


def _published(plan: Plan, **labels: str) -> dict[str, str]:
    return {**_image(plan).labels, "io.step-flash.rpc-protocol": "7.0.0", **labels}


def _lock(tmp_path: Path, reference: str, digest: str) -> Path:
    path = tmp_path / "images.lock.json"
    path.write_text(ImageLock({reference: {"linux/amd64": digest}}).to_json())
    return path


def _build(plan: Plan, engine: FakeEngine, notes: Notes | None = None) -> building.Built:
    return building.build(
        plan, executors(engine, FakeHost(registry_down=None)), (notes or Notes()).reporter(), rebuild=False
    )


def test_the_published_image_of_the_plan_is_pulled_by_the_locks_digest_not_compiled(tmp_path: Path) -> None:
    plan = released_plan(tmp_path)
    reference = _image(plan).published
    assert reference == f"{REGISTRY}/{_image(plan).tag}"
    repository = reference.rsplit(":", 1)[0]
    lock = _lock(tmp_path, reference, DIGEST)
    engine = FakeEngine(registry={f"{repository}@{DIGEST}": (_published(plan), "linux/amd64", DIGEST)})
    plan = released_plan(tmp_path, image_lock=lock)
    built = _build(plan, engine)
    assert built.outcome.pulled == f"{reference} ({DIGEST})"
    assert "build" not in engine.names()
    assert ("tag", (f"{repository}@{DIGEST}", _image(plan).tag)) in engine.calls
    # Next time it is there, and up to date: neither pulled nor built again.
    again = FakeEngine(images=dict(engine.images), registry=engine.registry)
    assert not _build(plan, again).outcome.built and "pull" not in again.names()


def test_a_tag_no_release_recorded_is_not_pulled_unless_trusted(tmp_path: Path) -> None:
    """Labels are free text anyone who pushes a tag writes: a relabelled image under the plan's tag is
    not pulled without a digest of ours; --trust-tag pulls it, saying so."""
    plan = released_plan(tmp_path)
    reference = _image(plan).published
    assert reference
    engine, notes = FakeEngine(registry={reference: (_published(plan), "linux/amd64", DIGEST)}), Notes()
    built = _build(plan, engine, notes)
    assert built.outcome.built and "pull" not in engine.names()
    assert any("holds no digest for" in n and "--trust-tag" in n for n in notes.lines)
    with pytest.raises(NotPulled, match="no release of ours published it"):
        _build(released_plan(tmp_path / "b", build="never"), FakeEngine(registry=engine.registry))
    trusted, notes = FakeEngine(registry=engine.registry), Notes()
    assert _build(released_plan(tmp_path / "c", trust_tag=True), trusted, notes).outcome.pulled
    assert any(n.startswith("--trust-tag: pulling") for n in notes.lines)


def test_an_image_of_another_plan_under_the_tag_is_refused_and_built(tmp_path: Path) -> None:
    plan = released_plan(tmp_path, trust_tag=True)
    reference = _image(plan).published
    assert reference
    labels = _published(plan, **{"io.step-flash.plan-digest": "0000000000000000"})
    engine, notes = FakeEngine(registry={reference: (labels, "linux/amd64", DIGEST)}), Notes()
    built = _build(plan, engine, notes)
    assert built.outcome.built and "build" in engine.names()
    (note,) = [n for n in notes.lines if "not this plan's image" in n]
    assert "its label io.step-flash.plan-digest is '0000000000000000'" in note and note.endswith(
        "building it here"
    )


def test_a_registry_that_does_not_answer_falls_back_to_the_build(tmp_path: Path) -> None:
    engine, notes = FakeEngine(), Notes()
    built = building.build(
        released_plan(tmp_path), executors(engine, FakeHost()), notes.reporter(), rebuild=False
    )
    assert built.outcome.built and "pull" not in engine.names()
    assert any("does not answer (connection refused); building it here" in n for n in notes.lines)


def test_no_build_with_nothing_to_pull_stops_in_one_line(tmp_path: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(NotPulled, match=r"cannot pull .*manifest unknown\); --no-build: nothing is compiled"):
        _build(released_plan(tmp_path, build="never", trust_tag=True), engine)
    assert "build" not in engine.names()


def test_build_always_never_pulls(tmp_path: Path) -> None:
    plan = cpu_plan(tmp_path, build="always")
    assert _image(plan).published is None
    engine = FakeEngine()
    _build(plan, engine)
    assert "pull" not in engine.names() and "build" in engine.names()


def test_the_lock_digest_is_pulled_and_a_tag_pushed_again_is_refused(tmp_path: Path) -> None:
    plan = released_plan(tmp_path)
    reference = _image(plan).published
    assert reference
    repository = reference.rsplit(":", 1)[0]
    lock = _lock(tmp_path, reference, DIGEST)
    # The lock's digest is there: pulled by it.
    engine = FakeEngine(registry={f"{repository}@{DIGEST}": (_published(plan), "linux/amd64", DIGEST)})
    assert _build(released_plan(tmp_path, image_lock=lock), engine).outcome.pulled
    assert ("pull", f"{repository}@{DIGEST}") in engine.calls
    # The tag now holds another image, the locked one is gone: refused, both digests named.
    moved = FakeEngine(registry={reference: (_published(plan), "linux/amd64", OTHER)})
    with pytest.raises(NotPulled) as refused:
        _build(released_plan(tmp_path / "b", image_lock=lock), moved)
    assert f"is {OTHER}, not {DIGEST} as the image lock says" in str(refused.value)
    assert "--build compiles it here, --trust-tag takes the tag's image as it is" in str(refused.value)
    # --trust-tag takes it, and says so.
    notes = Notes()
    trusted = _build(released_plan(tmp_path / "c", image_lock=lock, trust_tag=True), moved, notes)
    assert trusted.outcome.pulled and any(n.startswith("--trust-tag: taking") for n in notes.lines)


def test_an_image_for_another_platform_is_refused(tmp_path: Path) -> None:
    plan = released_plan(tmp_path, trust_tag=True)
    reference = _image(plan).published
    assert reference
    engine = FakeEngine(registry={reference: (_published(plan), "linux/arm64", DIGEST)})
    with pytest.raises(UsageError, match="is an image for linux/arm64, not linux/amd64"):
        _build(plan, engine)


def test_a_lock_that_does_not_parse_names_its_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"the image lock /x/images\.lock\.json does not parse"):
        parse_lock("{not json", "/x/images.lock.json")
    with pytest.raises(ConfigError, match="malformed digest"):
        parse_lock('{"version": 1, "images": {"r": {"linux/amd64": "sha256:12"}}}', "f")
    bad = tmp_path / "images.lock.json"
    bad.write_text("[]")
    with pytest.raises(ConfigError, match=re.escape(f"the image lock {bad}")):
        _build(released_plan(tmp_path, image_lock=bad), FakeEngine())


def test_the_packaged_lock_parses() -> None:
    from orchestrator.executors.published import PACKAGED_LOCK, read_lock

    assert PACKAGED_LOCK.is_file()
    assert isinstance(read_lock(None), ImageLock)


def test_ci_writes_the_lock_from_what_it_pushed(tmp_path: Path) -> None:
    from orchestrator.core.published import locked

    pushed = {
        "pushed": "ghcr.io/o/step-flash-llama:cuda-dgx-spark-0c1e570",
        "digest": DIGEST,
        "platform": "linux/arm64",
    }
    lock = locked(
        ImageLock(), [pushed, {"pushed": None, "digest": None, "platform": "linux/amd64"}], "build.json"
    )
    assert lock.digest(str(pushed["pushed"]), "linux/arm64") == DIGEST
    assert parse_lock(lock.to_json(), "x") == lock
    with pytest.raises(ConfigError, match="without its platform and sha256 digest"):
        locked(ImageLock(), [{"pushed": "r", "digest": "sha256:12", "platform": "linux/amd64"}], "build.json")


def test_the_registry_defaults_to_the_namespace_the_packages_release_names(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.app.config import load_settings
    from orchestrator.core.published import ImageLock

    # A package no release built names none: nothing is pulled.
    assert load_settings({}).registry == "none"
    released = isolated_env / "released.lock.json"
    released.write_text(ImageLock({}, "ghcr.io/an-owner").to_json())
    settings = load_settings({"image_lock": released})
    assert settings.registry == "ghcr.io/an-owner" and "image lock" in settings.origin("registry")
    monkeypatch.setenv("ORCHESTRATOR_IMAGE_LOCK", str(released))
    assert load_settings({}).registry == "ghcr.io/an-owner"
    # The owner's own setting stands above it.
    assert load_settings({"registry": "127.0.0.1:5000/ci"}).registry == "127.0.0.1:5000/ci"


def test_ci_lock_writes_the_namespace_the_release_pushed_to(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    record = tmp_path / "build.json"
    record.write_text(
        json.dumps({"pushed": f"{REGISTRY}/step-flash-llama:x", "digest": DIGEST, "platform": "linux/amd64"})
    )
    lock = tmp_path / "images.lock.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "ci-lock",
            str(record),
            "--lock",
            str(lock),
            "--registry",
            REGISTRY,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = parse_lock(lock.read_text(), str(lock))
    assert (
        written.registry == REGISTRY
        and written.digest(f"{REGISTRY}/step-flash-llama:x", "linux/amd64") == DIGEST
    )
