"""The Vulkan image, built for real from local bases and the pinned llama.cpp source, then run on the
CPU backend and on Vulkan through Mesa's lavapipe with the gemma-3-270m GGUF mounted read-only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.core.families import VULKAN
from tests.assets import PINNED_UPSTREAM_COMMIT, demo_model, tiny_moe_model
from tests.integration import (
    BuiltImage,
    cli_env,
    docker,
    free_port,
    image_labels,
    model_mount,
    needs_docker,
    run_cli,
)

pytestmark = [needs_docker, pytest.mark.docker, pytest.mark.slow]


def _run(image: str, *argv: str, model: Path | None = None, env: dict[str, str] | None = None) -> str:
    model = model or demo_model()
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    out = docker(
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        *model_mount(model),
        *flags,
        image,
        *argv,
        timeout=900,
    )
    assert out.returncode == 0, f"{argv[0]} exited {out.returncode}: {out.stderr[-2000:]}"
    return out.stdout + out.stderr


def test_image_carries_its_recipe(cpu_image: BuiltImage) -> None:
    labels = image_labels(cpu_image.tag)
    assert labels["io.step-flash.target"] == "cpu"
    assert labels["org.opencontainers.image.source"] == str(cpu_image.source)
    # Unpacked from the package-index mirror, the tree still knows the commit it holds.
    assert labels["org.opencontainers.image.revision"] == PINNED_UPSTREAM_COMMIT
    assert "-DGGML_VULKAN=ON" in labels["io.step-flash.cmake-flags"]
    assert "-DGGML_BACKEND_DL=ON" in labels["io.step-flash.cmake-flags"]
    # The build fetched upstream's web UI bundle where it could reach it; else the image carries the
    # pinned fallback page. It says which it is, in the image and in a label.
    webui = _run(cpu_image.tag, "cat", "/opt/llama/webui.txt").strip()
    assert webui == "embedded" or webui.startswith(
        "fallback: llama.cpp web UI from the llama-cpp-python 0.3.16"
    )
    assert labels["io.step-flash.webui"] == webui
    if webui != "embedded":
        assert "<html" in _run(cpu_image.tag, "head", "-c", "4096", "/opt/llama/webui/index.html").lower()
    # The proxy that alone is published: Debian's caddy.
    assert _run(cpu_image.tag, "caddy", "version").lstrip("v").startswith("2.")
    # The GPU driver the image brings: Mesa (RADV, and lavapipe here) from trixie-backports.
    driver = labels["io.step-flash.driver"]
    assert driver.startswith("mesa-vulkan-drivers ") and "~bpo13" in driver, driver
    # The quality tools (eval, quantize) beside the server, and the image within its family's budget.
    tools = _run(
        cpu_image.tag,
        "ls",
        "-l",
        "/opt/llama/llama-perplexity",
        "/opt/llama/llama-imatrix",
        "/opt/llama/llama-quantize",
    )
    tool_bytes = sum(int(line.split()[4]) for line in tools.strip().splitlines())
    size = int(docker("image", "inspect", cpu_image.tag, "--format", "{{.Size}}").stdout)
    print(f"image {size / 1e6:.0f} MB, of which the quality tools {tool_bytes / 1e6:.1f} MB")
    assert size <= (VULKAN.size_budget_mb or 0) * 10**6, f"{size / 1e6:.0f} MB"
    config = json.loads(docker("image", "inspect", cpu_image.tag, "--format", "{{json .Config}}").stdout)
    assert config["User"] == "10001"
    assert "/health" in " ".join(config["Healthcheck"]["Test"])


def test_local_bases_are_images_of_their_platform(cpu_image: BuiltImage) -> None:
    for tag in ("step-flash-base:vulkan-build", "step-flash-base:vulkan-runtime"):
        found = docker(
            "image", "inspect", tag, "--format", "{{.Os}}/{{.Architecture}} {{json .Config.Labels}}"
        )
        platform, labels = found.stdout.strip().split(" ", 1)
        assert platform == "linux/amd64"
        assert "io.step-flash.base-digest" in json.loads(labels)
    # Made FROM scratch out of the root file system: the Debian tree is all there, with its owners.
    tree = docker(
        "run", "--rm", "step-flash-base:vulkan-runtime", "stat", "-c", "%U %a", "/usr/bin/passwd", "/tmp"
    )
    assert tree.stdout.split("\n")[:2] == ["root 4755", "root 1777"], tree.stdout + tree.stderr


def test_unchanged_plan_is_not_rebuilt(cpu_image: BuiltImage) -> None:
    again = run_cli(
        "build", "--target", "cpu", "--source", str(cpu_image.source), "--bases", "local", env=cpu_image.env
    )
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout


def test_cpu_backend_answers(cpu_image: BuiltImage) -> None:
    assert _run(cpu_image.tag, "id", "-u").strip() == "10001"
    text = _run(
        cpu_image.tag,
        "llama-cli",
        "-m",
        "/models/gemma-3-270m-Q4_K_M.gguf",
        "--chat-template",
        "gemma",
        "-p",
        "Name a colour.",
        "-n",
        "12",
        "--temp",
        "0",
        "-st",
        "-c",
        "512",
        "-v",
    )
    # The CPU code is a plugin picked for this processor at run time.
    assert "loaded CPU backend from /opt/llama/libggml-cpu-" in text
    assert "assigned to device CPU" in text
    assert "Generation:" in text, text[-1500:]


def _bench_rows(image: str, npp: list[int], env: dict[str, str] | None = None) -> list[dict[str, object]]:
    argv = [
        "llama-batched-bench",
        "-m",
        "/models/gemma-3-270m-Q4_K_M.gguf",
        "-c",
        "1024",
        "-b",
        "256",
        "-ub",
        "256",
        "-npp",
        ",".join(map(str, npp)),
        "-ntg",
        "8",
        "-npl",
        "1",
        "--output-format",
        "jsonl",
    ]
    # llama-batched-bench can exit 0 with its last row lost (field notes): a short run is retried once.
    for _ in range(2):
        output = _run(image, *argv, env=env)
        rows = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"pp"' in line]
        if len(rows) == len(npp):
            return rows
    raise AssertionError(f"expected {len(npp)} rows, got {len(rows)}: {output[-1500:]}")


def test_batched_bench_on_cpu(cpu_image: BuiltImage) -> None:
    rows = _bench_rows(cpu_image.tag, [64, 128])
    assert [row["pp"] for row in rows] == [64, 128]
    assert all(float(str(row["speed_tg"])) > 0 for row in rows)


def test_vulkan_on_lavapipe(cpu_image: BuiltImage) -> None:
    # llama.cpp skips CPU-type Vulkan devices unless they are named; Mesa's lavapipe is one. It is
    # ~100x slower than the CPU backend, so the run uses a tiny mixture-of-experts GGUF.
    env = {"GGML_VK_VISIBLE_DEVICES": "0"}
    model = tiny_moe_model()
    devices = _run(cpu_image.tag, "llama-cli", "--list-devices", model=model, env=env)
    assert "Vulkan0: llvmpipe" in devices, devices
    text = _run(
        cpu_image.tag,
        "llama-cli",
        "-m",
        f"/models/{model.name}",
        "-p",
        "hello",
        "-n",
        "6",
        "--temp",
        "0",
        "-st",
        "-c",
        "256",
        "-ngl",
        "99",
        "-v",
        model=model,
        env=env,
    )
    assert "using device Vulkan0 (llvmpipe" in text
    assert "offloaded 3/3 layers to GPU" in text
    assert "Generation:" in text, text[-1500:]


def test_build_failure_names_the_stage(cpu_image: BuiltImage, tmp_path: Path) -> None:
    broken = tmp_path / "broken-llama"
    (broken / "ggml").mkdir(parents=True)
    (broken / "CMakeLists.txt").write_text(
        'cmake_minimum_required(VERSION 3.14)\nmessage(FATAL_ERROR "broken on purpose")\n'
    )
    args = ["--target", "cpu", "--source", str(broken), "--bases", "local"]
    tag = json.loads(run_cli("plan", *args, "--json", env=cpu_image.env).stdout)["build"]["tag"]
    out = run_cli("build", *args, env=cpu_image.env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    message = out.stderr.strip().splitlines()[-1]
    assert "stage 'build'" in message, out.stderr
    log = Path(message.rsplit("full log: ", 1)[1])
    assert "broken on purpose" in log.read_text()
    assert docker("image", "inspect", tag).returncode != 0, "a failed build must not leave a tagged image"


def test_defaults_fall_back_to_the_mirror_and_local_bases(cpu_image: BuiltImage) -> None:
    """`orchestrator build --target cpu` with nothing else: on a host without GitHub and without a
    registry the same commit comes from the package index and the bases are made locally."""
    if os.geteuid() != 0:
        pytest.skip("making local bases needs root")
    out = run_cli("build", "--target", "cpu", env=cpu_image.env)
    assert out.returncode == 0, out.stderr + out.stdout
    if "cannot reach" in out.stdout:
        assert "llama-cpp-python 0.3.36 sdist" in out.stdout
    if "cannot be pulled here" in out.stdout:
        assert "step-flash-base:vulkan-build: present" in out.stdout
    # Same commit, same flags, same bases: the image the tests built is the one the defaults want.
    assert "up to date" in out.stdout


def test_unpullable_base_says_how_to_bootstrap(tmp_path: Path) -> None:
    """The real engine, asked for the image family's stage on a base no registry serves, fails in a way
    the build recognises as a pull failure, and its one line names the bootstrap. The base is on a
    registry address where nothing listens: unpullable wherever the test runs, Docker Hub in reach or not."""
    from orchestrator.executors.assets import asset
    from orchestrator.executors.docker import DockerEngine
    from orchestrator.executors.engine import BuildFailed

    unpullable = f"127.0.0.1:{free_port()}/debian:trixie-slim"
    tag = "step-flash-test:unpullable-base"
    with pytest.raises(BuildFailed) as failed:
        DockerEngine().build(
            context=asset("images/common"),
            dockerfile=asset(VULKAN.dockerfile),
            stage="toolchain",
            tag=tag,
            build_args={"BUILD_BASE": unpullable, "BUILD_PACKAGES": " ".join(VULKAN.build_packages)},
            labels={},
            platform=None,
            log_path=tmp_path / "build.log",
        )
    assert failed.value.pull_failed, (tmp_path / "build.log").read_text()[-3000:]
    message = str(failed.value)
    assert len(message.splitlines()) == 1
    assert "could not be pulled" in message and "bases bootstrap" in message and "--bases local" in message
    assert unpullable in (tmp_path / "build.log").read_text()
    assert docker("image", "inspect", tag).returncode != 0, "a failed build leaves no tagged image"


def test_unknown_commit_fails_in_the_build_stage(cpu_image: BuiltImage) -> None:
    out = run_cli(
        "build",
        "--target",
        "cpu",
        "--bases",
        "local",
        "--source",
        "https://github.com/ggml-org/llama.cpp.git@0000000",
        env=cpu_image.env,
    )
    assert out.returncode == 1
    message = out.stderr.strip().splitlines()[-1]
    assert "stage 'build'" in message and "build-llama.sh fetch" in message, out.stderr
    assert "cannot fetch 0000000" in Path(message.rsplit("full log: ", 1)[1]).read_text()


def test_foreign_architecture_is_refused_before_building() -> None:
    import platform

    foreign = "dgx-spark" if platform.machine() in {"x86_64", "AMD64"} else "ryzen-ai-max"
    if (
        Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
        or Path("/proc/sys/fs/binfmt_misc/qemu-x86_64").exists()
    ):
        pytest.skip("QEMU emulation is registered here")
    out = run_cli("build", "--target", foreign, env=cli_env())
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "registered with binfmt_misc: it cannot run" in out.stderr, out.stderr
    assert "scripts/register-qemu.sh" in out.stderr and "--platform" in out.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_build_push_to_a_registry(cpu_image: BuiltImage, local_registry: str) -> None:
    import urllib.request

    done = run_cli(
        "build", *cpu_image.args, "--push", "--registry", f"{local_registry}/ci", "--json", env=cpu_image.env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tag"] == cpu_image.tag and result["built"] is False
    assert result["pushed"] == f"{local_registry}/ci/{cpu_image.tag}"
    assert str(result["digest"]).startswith("sha256:")
    repo, tag = cpu_image.tag.split(":")
    with urllib.request.urlopen(f"http://{local_registry}/v2/ci/{repo}/tags/list", timeout=10) as answer:
        assert tag in json.loads(answer.read())["tags"]
    refused = run_cli("build", *cpu_image.args, "--push", env=cpu_image.env)
    assert refused.returncode == 2 and "--registry" in refused.stderr


def test_verify_image_checks_an_image_against_its_plan(cpu_image: BuiltImage, tmp_path: Path) -> None:
    """What CI runs after each build (scripts/verify-image.sh), on the image the tests built."""
    import subprocess

    plan = run_cli("plan", *cpu_image.args, "--json", env=cpu_image.env)
    assert plan.returncode == 0, plan.stderr
    (tmp_path / "plan.json").write_text(plan.stdout)
    from tests.conftest import REPO

    script = str(REPO / "scripts" / "verify-image.sh")
    done = subprocess.run([script, str(tmp_path / "plan.json")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok   {cpu_image.tag} is linux/amd64" in done.stdout
    assert "CPU variants for amd64:" in done.stdout and "libggml-cpu-x64.so" in done.stdout
    assert "llama-server starts" in done.stdout
    # A plan that says another platform than the image's is refused.
    data = json.loads(plan.stdout)
    data["build"]["platform"] = "linux/arm64"
    (tmp_path / "arm64.json").write_text(json.dumps(data))
    wrong = subprocess.run(
        [script, str(tmp_path / "arm64.json")], capture_output=True, text=True, check=False
    )
    assert wrong.returncode == 1 and "the plan says linux/arm64" in wrong.stderr, wrong.stdout + wrong.stderr


def test_an_image_of_another_platform_takes_its_labels_and_tag(tmp_path: Path) -> None:
    """The after-build step (labels, then the plan's tag) on an arm64 image: a config-only build that
    must name the image's platform, or BuildKit looks for an amd64 one and asks a registry. Nothing runs
    arm64 code here, so no QEMU is needed."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.executors.docker import DockerEngine

    staged, tag = "step-flash-test:promote-arm64-staged", "step-flash-test:promote-arm64"
    (tmp_path / "note.txt").write_text("arm64\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY note.txt /note.txt\n")
    made = docker("buildx", "build", "--platform", "linux/arm64", "--load", "-t", staged, str(tmp_path))
    assert made.returncode == 0, made.stderr[-2000:]
    try:
        DockerEngine().promote(staged, tag, {"io.step-flash.test": "promoted"}, "linux/arm64")
        inspected = docker("image", "inspect", tag, "--format", "{{.Os}}/{{.Architecture}}")
        assert inspected.stdout.strip() == "linux/arm64", inspected.stdout + inspected.stderr
        assert image_labels(tag)["io.step-flash.test"] == "promoted"
        assert docker("image", "inspect", staged).returncode != 0
        # A staged image that is not there: one line naming it, no traceback.
        with pytest.raises(OrchestratorError) as failed:
            DockerEngine().promote(staged, tag, {}, "linux/arm64")
        assert f"could not label the built image {staged}" in str(failed.value)
        assert len(str(failed.value).splitlines()) == 1
    finally:
        docker("image", "rm", "-f", staged, tag)
