"""Local bases: what a bootstrap left mounted is found before its scratch folder is removed."""

from __future__ import annotations


def test_a_bootstraps_mounts_are_found_deepest_first() -> None:
    from pathlib import Path

    from orchestrator.executors.bases import mounts_below

    text = (
        "proc /proc proc rw 0 0\n"
        "udev /data/bases/x/rootfs/dev devtmpfs rw 0 0\n"
        "proc /data/bases/x/rootfs/proc proc rw 0 0\n"
        "devpts /data/bases/x/rootfs/dev/pts devpts rw 0 0\n"
        "tmpfs /data/bases/xy tmpfs rw 0 0\n"
        "tmpfs /data/bases/x/with\\040space tmpfs rw 0 0\n"
    )
    found = mounts_below(Path("/data/bases/x"), text)
    assert found[0] == Path("/data/bases/x/rootfs/dev/pts")
    assert set(found) == {
        Path("/data/bases/x/rootfs/dev/pts"),
        Path("/data/bases/x/rootfs/dev"),
        Path("/data/bases/x/rootfs/proc"),
        Path("/data/bases/x/with space"),
    }


def test_bases_for_each_architecture_have_their_own_tags_and_debootstrap() -> None:
    from pathlib import Path

    from orchestrator.core.bases import base_specs
    from orchestrator.core.families import FAMILIES

    amd64 = base_specs(FAMILIES["cuda"], "linux/amd64")
    arm64 = base_specs(FAMILIES["cuda"], "linux/arm64")
    assert [s.tag for s in amd64] == ["step-flash-base:cuda-build", "step-flash-base:cuda-runtime"]
    assert [s.tag for s in arm64] == [
        "step-flash-base:cuda-build-arm64",
        "step-flash-base:cuda-runtime-arm64",
    ]
    assert "--arch=arm64" in arm64[0].debootstrap_argv(Path("/r"))
    assert "--arch=amd64" in amd64[0].debootstrap_argv(Path("/r"))
    # Same packages and wheels, another architecture: another base, made again.
    assert arm64[0].wheels == amd64[0].wheels and arm64[0].digest != amd64[0].digest


def test_packages_of_another_suite_are_left_to_the_images_apt_step() -> None:
    from pathlib import Path

    from orchestrator.core.bases import base_specs
    from orchestrator.core.families import FAMILIES

    vulkan = FAMILIES["vulkan"]
    assert "mesa-vulkan-drivers/trixie-backports" in vulkan.runtime_packages
    _, runtime = base_specs(vulkan)
    include = next(a for a in runtime.debootstrap_argv(Path("/r")) if a.startswith("--include="))
    assert "mesa-vulkan-drivers" not in include and "libvulkan1" in include


def test_emulation_is_needed_only_for_another_architecture_and_only_with_the_f_flag() -> None:
    from orchestrator.core.platforms import emulation_problem

    assert emulation_problem("linux/arm64", "aarch64", {}) is None
    assert emulation_problem("linux/amd64", "x86_64", {}) is None
    missing = emulation_problem("linux/arm64", "x86_64", {})
    assert missing is not None and missing.severity == "fail"
    assert "scripts/register-qemu.sh aarch64" in missing.fix and "--platform linux/amd64" in missing.fix
    lazy = emulation_problem("linux/arm64", "x86_64", {"qemu-aarch64": "OC"})
    assert lazy is not None and lazy.severity == "warn" and "F (fix binary)" in lazy.message
    assert emulation_problem("linux/arm64", "x86_64", {"qemu-aarch64": "POF"}) is None
    # An arm64 machine building the amd64 image needs qemu-x86_64.
    other = emulation_problem("linux/amd64", "aarch64", {"qemu-aarch64": "POF"})
    assert other is not None and "qemu-x86_64" in other.message


def test_cross_compiled_image_takes_this_machines_build_base() -> None:
    from pathlib import Path

    from orchestrator.core.bases import base_specs
    from orchestrator.core.families import FAMILIES

    build, runtime = base_specs(FAMILIES["vulkan"], "linux/arm64", build_platform="linux/amd64")
    assert (build.tag, build.platform) == ("step-flash-base:vulkan-build", "linux/amd64")
    assert (runtime.tag, runtime.platform) == ("step-flash-base:vulkan-runtime-arm64", "linux/arm64")
    assert "--arch=amd64" in build.debootstrap_argv(Path("/r"))
    assert "--arch=arm64" in runtime.debootstrap_argv(Path("/r"))
    # The same build base as the amd64 image's: made once.
    assert build == base_specs(FAMILIES["vulkan"])[0]
