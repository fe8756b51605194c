"""Pulling instead of compiling, against a real registry on 127.0.0.1 (Debian's docker-registry): the cpu
image pushed, then pulled by the digest a release's lock names (its namespace the registry's default) and
served without a build step; a relabelled image under the plan's tag refused without a digest of ours and
taken only with --trust-tag; an image of another plan refused and rebuilt; a digest other than the lock's
refused; the registry stopped, the build; --no-build with nothing to pull, one line and nothing started."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orchestrator.core.published import ImageLock
from tests.integration import BuiltImage, docker, free_port, needs_docker, run_cli

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def _publish(image: str, registry: str, repo: str) -> tuple[str, str]:
    """image pushed as registry/<repo>:<its tag>, the local copy of that name removed; (reference, digest)."""
    reference = f"{registry}/{repo}:{image.split(':', 1)[1]}"
    for step in (("tag", image, reference), ("push", reference)):
        done = docker(*step)
        assert done.returncode == 0, done.stderr
    digests = docker("image", "inspect", reference, "--format", "{{json .RepoDigests}}")
    digest = json.loads(digests.stdout)[0].split("@", 1)[1]
    assert docker("rmi", reference).returncode == 0
    return reference, digest


def _env(cpu_image: BuiltImage, repo: str, registry: str, **extra: str) -> dict[str, str]:
    return {
        **cpu_image.env,
        "ORCHESTRATOR_IMAGE_REPO": repo,
        "ORCHESTRATOR_REGISTRY": registry,
        "ORCHESTRATOR_PROJECT": f"sfo-test-{repo}",
        **extra,
    }


def _gone(tag: str) -> None:
    docker("rmi", "-f", tag)


def test_up_pulls_the_released_image_by_digest_and_serves_without_compiling(
    cpu_image: BuiltImage, local_registry: str, tmp_path: Path
) -> None:
    registry = f"{local_registry}/ci"
    reference, digest = _publish(cpu_image.tag, registry, "step-flash-pull")
    # The lock a release ships: its namespace and the digest it pushed. No registry setting of our own:
    # the lock's namespace is the default.
    lock = tmp_path / "images.lock.json"
    lock.write_text(ImageLock({reference: {"linux/amd64": digest}}, registry).to_json())
    env = _env(cpu_image, "step-flash-pull", registry, ORCHESTRATOR_IMAGE_LOCK=str(lock))
    del env["ORCHESTRATOR_REGISTRY"]
    tag = "step-flash-pull:" + cpu_image.tag.split(":", 1)[1]
    _gone(tag)
    port = str(free_port())
    try:
        up = run_cli("up", *cpu_image.args, "--port", port, env=env)
        assert up.returncode == 0, up.stderr + up.stdout
        said = up.stdout + up.stderr
        assert f"pulled {reference} ({digest})" in said
        # No build step ran: neither the fallback nor a build's own line.
        assert "building it here" not in said and f"built {tag}" not in said, said
        assert "nothing compiled" in said
        status = json.loads(run_cli("status", *cpu_image.args, "--port", port, "--json", env=env).stdout)
        assert status["state"] == "running" and status["image"] == tag
    finally:
        run_cli("down", *cpu_image.args, "--port", port, env=env)
        _gone(tag)


def _relabelled(base: str, labels: dict[str, str], name: str) -> None:
    """Another image (the runtime base) carrying labels copied from ours: what anyone who can push a tag
    can make."""
    args = [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    done = subprocess.run(
        ["docker", "build", "-q", *args, "-t", name, "-"],
        input=f"FROM {base}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_relabelled_image_under_the_tag_is_pulled_only_when_trusted(
    cpu_image: BuiltImage, local_registry: str
) -> None:
    registry = f"{local_registry}/relabelled"
    labels = json.loads(
        docker("image", "inspect", cpu_image.tag, "--format", "{{json .Config.Labels}}").stdout
    )
    named = f"step-flash-impostor:{cpu_image.tag.split(':', 1)[1]}"
    _relabelled("step-flash-base:vulkan-runtime", labels, named)
    _publish(named, registry, "step-flash-relabel")
    _gone(named)
    env = _env(cpu_image, "step-flash-relabel", registry)
    tag = "step-flash-relabel:" + cpu_image.tag.split(":", 1)[1]
    _gone(tag)
    try:
        refused = run_cli("build", *cpu_image.args, "--no-build", env=env)
        assert refused.returncode == 1, refused.stderr + refused.stdout
        (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
        assert "holds no digest for" in line and "--trust-tag" in line
        assert docker("image", "inspect", tag).returncode != 0, "nothing was pulled"
        # Its labels are the plan's: with --trust-tag it is taken, and the run says so.
        trusted = run_cli("build", *cpu_image.args, "--no-build", "--trust-tag", env=env)
        assert trusted.returncode == 0, trusted.stderr
        assert "--trust-tag: pulling" in trusted.stdout + trusted.stderr
    finally:
        _gone(tag)


def test_an_image_of_another_plan_under_the_tag_is_refused_and_built_here(
    cpu_image: BuiltImage, local_registry: str
) -> None:
    registry = f"{local_registry}/other"
    # The runtime base under the plan's tag: an image, but not this plan's (no labels of ours).
    base = "step-flash-base:vulkan-runtime"
    named = f"{base.split(':')[0]}:{cpu_image.tag.split(':', 1)[1]}"
    assert docker("tag", base, named).returncode == 0
    _publish(named, registry, "step-flash-other")
    _gone(named)
    env = _env(cpu_image, "step-flash-other", registry, ORCHESTRATOR_TRUST_TAG="true")
    tag = "step-flash-other:" + cpu_image.tag.split(":", 1)[1]
    _gone(tag)
    try:
        built = run_cli("build", *cpu_image.args, "--json", env=env)
        assert built.returncode == 0, built.stderr
        assert (
            "is not this plan's image: its label io.step-flash.plan-digest is None"
            in built.stdout + built.stderr
        )
        assert json.loads(built.stdout)["built"] is True
    finally:
        _gone(tag)


def test_a_digest_other_than_the_locks_is_refused(
    cpu_image: BuiltImage, local_registry: str, tmp_path: Path
) -> None:
    registry = f"{local_registry}/locked"
    reference, digest = _publish(cpu_image.tag, registry, "step-flash-locked")
    wrong = "sha256:" + "0" * 64
    lock = tmp_path / "images.lock.json"
    lock.write_text(ImageLock({reference: {"linux/amd64": wrong}}).to_json())
    env = _env(cpu_image, "step-flash-locked", registry, ORCHESTRATOR_IMAGE_LOCK=str(lock))
    tag = "step-flash-locked:" + cpu_image.tag.split(":", 1)[1]
    _gone(tag)
    try:
        refused = run_cli("build", *cpu_image.args, env=env)
        assert refused.returncode == 1, refused.stderr + refused.stdout
        line = refused.stderr.strip().splitlines()[-1]
        assert f"is {digest}, not {wrong} as the image lock says" in line
        assert "--trust-tag" in line and "Traceback" not in refused.stderr
        assert docker("image", "inspect", tag).returncode != 0
        trusted = run_cli("build", *cpu_image.args, "--trust-tag", env=env)
        assert trusted.returncode == 0, trusted.stderr
        assert "--trust-tag: taking" in trusted.stdout + trusted.stderr
    finally:
        _gone(tag)


def test_a_registry_that_is_down_means_the_build_and_no_build_stops(cpu_image: BuiltImage) -> None:
    down = f"127.0.0.1:{free_port()}/ci"
    env = _env(cpu_image, "step-flash-down", down)
    tag = "step-flash-down:" + cpu_image.tag.split(":", 1)[1]
    _gone(tag)
    try:
        stopped = run_cli("up", *cpu_image.args, "--no-build", "--port", str(free_port()), env=env)
        assert stopped.returncode == 1
        (line,) = [ln for ln in stopped.stderr.strip().splitlines() if ln.startswith("error:")]
        assert f"the registry {down} does not answer" in line and "--no-build: nothing is compiled" in line
        assert (
            docker("ps", "-q", "--filter", "label=com.docker.compose.project=sfo-test-step-flash-down").stdout
            == ""
        )
        built = run_cli("build", *cpu_image.args, "--json", env=env)
        assert built.returncode == 0, built.stderr
        assert f"the registry {down} does not answer" in built.stdout + built.stderr
        assert json.loads(built.stdout)["built"] is True
    finally:
        _gone(tag)
