"""`orchestrator doctor`: the pure checks over recorded probes of each kind of machine, and once against
this machine's real Docker engine."""

from __future__ import annotations

from orchestrator.core.doctor import Check, DoctorFacts, diagnose, version_tuple
from orchestrator.core.facts import EngineFacts
from tests.conftest import host_facts
from tests.planning import fixed_plan

ENGINE_OK = EngineFacts(
    server="27.3.1",
    runtimes=("runc",),
    buildx="github.com/docker/buildx v0.17.1",
    compose="Docker Compose v2.29.7",
)
ENGINE_NVIDIA = EngineFacts(
    server="28.0.1", runtimes=("nvidia", "runc"), buildx="buildx v0.20", compose="Docker Compose v2.33"
)


def checks(
    target: str, host: str, engine: EngineFacts | None = ENGINE_OK, profile: str = "default"
) -> dict[str, Check]:
    plan = fixed_plan(target, profile)
    facts = DoctorFacts(host_facts(host), engine, disk_free_bytes=500 << 30, disk_path="/data")
    return {c.name: c for c in diagnose(plan, facts)}


def statuses(found: dict[str, Check]) -> dict[str, str]:
    return {name: c.status for name, c in found.items()}


def test_a_ready_dgx_spark_passes_everything() -> None:
    found = checks("dgx-spark", "dgx-spark", ENGINE_NVIDIA)
    assert set(statuses(found).values()) == {"pass"}, found
    assert found["GPU"].detail == "nvidia-smi sees NVIDIA GB10"
    assert "CUDA 13.0" in found["CUDA"].detail


def test_dgx_spark_without_the_container_toolkit_explains_dockers_error() -> None:
    host = host_facts("dgx-spark")
    plan = fixed_plan("dgx-spark", "default")
    bare = DoctorFacts(
        host.__class__(**{**host.__dict__, "cdi_specs": ()}),
        ENGINE_OK,
        disk_free_bytes=500 << 30,
        disk_path="/d",
    )
    toolkit = {c.name: c for c in diagnose(plan, bare)}["NVIDIA container toolkit"]
    assert toolkit.status == "fail"
    assert 'could not select device driver "" with capabilities: [[gpu]]' in (toolkit.fix or "")
    assert "nvidia-ctk runtime configure" in (toolkit.fix or "")


def test_an_h200_server_is_not_a_dgx_spark() -> None:
    found = statuses(checks("dgx-spark", "h200-server", ENGINE_NVIDIA))
    assert found["GPU"] == "fail" and found["NVIDIA driver"] == "fail" and found["CUDA"] == "fail"


def test_ryzen_ai_max_ready_and_not_ready() -> None:
    ready = statuses(checks("ryzen-ai-max", "ryzen-ai-max"))
    assert {k: v for k, v in ready.items() if v != "pass"} == {}, ready
    bare = checks("ryzen-ai-max", "ryzen-ai-max-no-kfd")
    assert bare["GTT size"].status == "fail" and "ttm.pages_limit" in (bare["GTT size"].fix or "")
    assert bare["kernel"].status == "warn" and "6.18.4" in bare["kernel"].detail
    assert bare["kernel parameters"].status == "warn"
    assert bare["RADV"].status == "warn"
    assert bare["render/video groups"].status == "pass"


def test_mac_wired_limit_for_long_context() -> None:
    default = checks("mac-studio", "mac-studio", None)
    assert default["wired limit"].status == "pass" and default["Xcode command line tools"].status == "pass"
    assert "docker engine" not in default
    long = checks("mac-studio", "mac-studio", None, profile="long-context")["wired limit"]
    assert long.status == "warn" and "sudo sysctl iogpu.wired_limit_mb=122880" in (long.fix or "")


def test_docker_problems_are_named_with_their_fix() -> None:
    down = checks("cpu", "cpu-debian", EngineFacts(error="Cannot connect to the Docker daemon"))
    assert down["docker engine"].status == "fail" and "systemctl start docker" in (
        down["docker engine"].fix or ""
    )
    old = checks("cpu", "cpu-debian", EngineFacts(server="20.10.24", buildx=None, compose="v2.26"))
    assert old["docker engine"].status == "warn" and old["docker buildx"].status == "fail"


def test_versions_compare_as_numbers() -> None:
    assert version_tuple("6.18.4-arch1-1") >= (6, 18, 4) > version_tuple("6.8.0-45-generic")
    assert version_tuple("580.95.05") >= (580,) and version_tuple(None) == ()


def test_an_arm64_image_on_an_amd64_machine_needs_qemu_with_the_f_flag() -> None:
    from dataclasses import replace

    from orchestrator.core.doctor import emulation_checks

    plan = fixed_plan("dgx-spark", "default")
    amd64 = host_facts("h200-server")
    (missing,) = emulation_checks(plan, amd64)
    assert missing.status == "fail" and "no qemu-aarch64 registered" in missing.detail
    assert missing.fix is not None and missing.fix.startswith("sudo apt install qemu-user-static")
    (lazy,) = emulation_checks(plan, replace(amd64, emulators=(("qemu-aarch64", "OC"),)))
    assert lazy.status == "warn" and "without the F (fix binary) flag (flags: OC)" in lazy.detail
    (ready,) = emulation_checks(plan, replace(amd64, emulators=(("qemu-aarch64", "OCF"),)))
    assert ready.status == "pass" and "builds run under qemu-aarch64" in ready.detail
    # A cross-compiled image (the cpu target's, planned on an amd64 machine) still runs its package
    # steps under QEMU, and says the compile is not emulated.
    cross = fixed_plan("cpu", "default", {"platform": "linux/arm64"}, host="cpu-debian")
    (cross_ready,) = emulation_checks(cross, replace(amd64, emulators=(("qemu-aarch64", "OCF"),)))
    assert cross_ready.status == "pass" and "cross-compiled on linux/amd64" in cross_ready.detail
    (cross_missing,) = emulation_checks(cross, amd64)
    assert cross_missing.status == "fail"
    # On the machine itself, or for an image of this machine's own architecture: nothing to check.
    assert emulation_checks(plan, host_facts("dgx-spark")) == []
    assert emulation_checks(fixed_plan("dgx-spark", "default", {"platform": "linux/amd64"}), amd64) == []


def test_binfmt_entries_are_read_with_their_flags() -> None:
    from orchestrator.core.facts import RawProbe, parse_facts

    raw = RawProbe(
        system="Linux",
        machine="x86_64",
        binfmt=(
            ("qemu-aarch64", "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\n"),
            ("qemu-riscv64", "disabled\nflags: F\n"),
        ),
    )
    assert parse_facts(raw).emulators == (("qemu-aarch64", "POCF"),)


def test_ryzen_reports_the_radv_the_image_brings_next_to_the_host_kernel() -> None:
    plan = fixed_plan("ryzen-ai-max", "default")
    host = host_facts("ryzen-ai-max")

    def radv(driver: str | None) -> Check:
        facts = DoctorFacts(host, ENGINE_OK, disk_free_bytes=500 << 30, disk_path="/d", image_driver=driver)
        return {c.name: c for c in diagnose(plan, facts)}["RADV in the image"]

    unbuilt = radv(None)
    assert unbuilt.status == "pass"
    assert unbuilt.detail.startswith("mesa-vulkan-drivers from trixie-backports; its version is recorded")
    assert host.kernel in unbuilt.detail
    built = radv("mesa-vulkan-drivers 26.1.6-1~bpo13+1")
    assert (
        built.status == "pass"
        and built.detail == f"Mesa 26.1.6-1~bpo13+1 in the image, on host kernel {host.kernel}"
    )
    old = radv("mesa-vulkan-drivers 25.0.7-2+deb13u1")
    assert old.status == "warn" and "older than 26.0.5" in old.detail
