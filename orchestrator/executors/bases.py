"""Local base images for hosts that cannot pull from a registry, as core.bases describes them: debootstrap
a Debian root file system holding what a stage needs, for the image's architecture (another one runs
under QEMU), into a tarball the engine makes an image of. The CUDA toolkit is not in Debian main: the CUDA
bases unpack NVIDIA's CUDA 13 wheels for that architecture from PyPI into /usr/local/cuda, laid out as in
NVIDIA's own images."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from orchestrator.core.bases import BaseSpec
from orchestrator.core.platforms import platform_arch
from orchestrator.errors import OrchestratorError
from orchestrator.executors.probe import require_emulation

DIGEST_LABEL = "io.step-flash.base-digest"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CUDA_PREFIX = "usr/local/cuda"


@contextmanager
def rootfs_tarball(spec: BaseSpec, work_dir: Path) -> Iterator[Path]:
    """A tarball of the root file system the spec describes, made with debootstrap (and the CUDA wheels),
    for as long as the caller needs it to make an image; its scratch folder goes afterwards, however
    the caller ends."""
    if shutil.which("debootstrap") is None:
        raise OrchestratorError("debootstrap is not installed; install it (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise OrchestratorError(
            "making base images runs debootstrap, which needs root; run this command with sudo"
        )
    # debootstrap's second stage runs the new system's own programs, here under QEMU for another architecture.
    require_emulation(spec.platform)
    scratch = work_dir / "bases" / spec.tag.replace(":", "_")
    remove_scratch(scratch)
    root, tarball, log = (
        scratch / "rootfs",
        # In a folder of its own: it is the context of the image made of it.
        scratch / "image" / "rootfs.tar",
        work_dir / "logs" / f"base-{spec.tag.partition(':')[2]}.log",
    )
    tarball.parent.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as out:
            code = _run_whole(spec.debootstrap_argv(root), out)
        if code != 0:
            raise OrchestratorError(f"debootstrap of {spec.tag} failed (exit {code}); full log: {log}")
        if spec.wheels:
            _install_cuda_wheels(spec, root, work_dir / "wheels", log)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        yield tarball
    finally:
        remove_scratch(scratch)


def image_env(spec: BaseSpec) -> dict[str, str]:
    """The environment the base image declares: CUDA's tools on the PATH where it holds them."""
    if spec.wheels:
        return {"PATH": f"/{CUDA_PREFIX}/bin:{_PATH}", "CUDA_HOME": f"/{CUDA_PREFIX}"}
    return {"PATH": _PATH}


def _run_whole(argv: list[str], out: IO[str]) -> int:
    """Run argv in a process group of its own; when we are interrupted, the whole group (debootstrap
    forks shells and dpkg) is stopped and waited for before anything removes what it was writing."""
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return process.wait()
    except BaseException:
        for signum, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 20.0)):
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group's other members (forked shells, dpkg) may outlive its leader for a moment.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.2)
        raise


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def mounts_below(root: Path, mounts_text: str) -> list[Path]:
    """Mount points at or below root (deepest first), from the text of /proc/self/mounts."""
    prefix = str(root.resolve())
    found = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        # /proc/self/mounts escapes spaces and the like as octal (\040).
        point = fields[1].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_scratch(scratch: Path) -> None:
    """Remove a bootstrap's scratch folder, but never through a mount: debootstrap bind-mounts /dev,
    /proc and /sys into the root it makes, and a run cut short (a failure, Ctrl-C) can leave them
    there. They are unmounted first; if one stays, the folder stays too (and says so)."""
    if not scratch.exists():
        return
    mounts = Path("/proc/self/mounts")
    text = mounts.read_text() if mounts.is_file() else ""
    for point in mounts_below(scratch, text):
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
    left = mounts_below(scratch, mounts.read_text() if mounts.is_file() else "")
    if left:
        raise OrchestratorError(
            f"{left[0]} is still mounted inside {scratch}; unmount it (sudo umount -R {scratch}) and "
            "remove the folder, nothing else was touched"
        )
    shutil.rmtree(scratch, ignore_errors=True)


def _install_cuda_wheels(spec: BaseSpec, root: Path, cache: Path, log: Path) -> None:
    """Unpack the CUDA wheels into /usr/local/cuda, as NVIDIA's images lay the toolkit out."""
    machine = platform_arch(spec.platform).machine
    # One folder per architecture: the wheels of both carry the same names and versions.
    cache = cache / machine
    cache.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform=manylinux_2_{n}_{machine}" for n in (17, 27, 28)] + [
        f"--platform=manylinux2014_{machine}"
    ]
    with log.open("a") as out:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                *platforms,
                "--python-version=3.11",
                "--dest",
                str(cache),
                *spec.wheels,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise OrchestratorError(f"cannot download the CUDA wheels for {spec.tag}; full log: {log}")
    prefix = root / CUDA_PREFIX
    names = {w.split("==")[0].replace("-", "_") + "-" + w.split("==")[1] for w in spec.wheels}
    for wheel in sorted(cache.glob("*.whl")):
        if "-".join(wheel.name.split("-")[:2]) not in names:
            continue
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                inner = member.filename.removeprefix("nvidia/cu13/")
                if inner == member.filename or member.is_dir():
                    continue
                if spec.role == "runtime" and not inner.startswith("lib/"):
                    continue
                target = prefix / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
                target.chmod(0o755 if inner.startswith(("bin/", "nvvm/bin/")) or ".so" in inner else 0o644)
    lib = prefix / "lib"
    for versioned in lib.glob("*.so.*"):
        unversioned = lib / (versioned.name.split(".so.")[0] + ".so")
        if not unversioned.exists():
            unversioned.symlink_to(versioned.name)
    # nvcc's profile and CMake look in lib64, as NVIDIA's images lay it out.
    (prefix / "lib64").symlink_to("lib")
    (root / "etc/ld.so.conf.d/cuda.conf").write_text(f"/{CUDA_PREFIX}/lib\n")
    if spec.role == "build":
        # No driver on a build machine: link against an empty libcuda, the host's driver serves at run time.
        (lib / "stubs").mkdir(exist_ok=True)
        (root / "tmp/stub.c").write_text("void cuda_stub(void) {}\n")
        subprocess.run(
            [
                "chroot",
                str(root),
                "gcc",
                "-shared",
                "-Wl,-soname,libcuda.so.1",
                "-o",
                f"/{CUDA_PREFIX}/lib/stubs/libcuda.so",
                "/tmp/stub.c",
            ],
            check=True,
        )
        (root / "tmp/stub.c").unlink()
    subprocess.run(["chroot", str(root), "ldconfig"], check=True)
