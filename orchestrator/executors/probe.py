"""Reading the host: `probe_raw` gathers raw outputs (the only I/O of probing) and `probe` turns them into
facts once per process (see orchestrator.core.facts)."""

from __future__ import annotations

import functools
import glob
import os
import platform
import shutil
import socket
import subprocess

from orchestrator.core.facts import HostFacts, RawProbe, parse_facts, registered_emulators
from orchestrator.core.platforms import emulation_problem
from orchestrator.errors import OrchestratorError


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _nvidia_smi() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _run(argv: list[str]) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _names(*patterns: str) -> tuple[str, ...]:
    return tuple(sorted({os.path.basename(p) for pattern in patterns for p in glob.glob(pattern)}))


def _sysctl(name: str) -> str | None:
    exe = shutil.which("sysctl") or ("/usr/sbin/sysctl" if os.path.exists("/usr/sbin/sysctl") else None)
    if exe is None or platform.system() != "Darwin":
        return None
    try:
        out = subprocess.run([exe, "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def host_machine() -> str:
    """This machine's architecture as the kernel names it (uname -m)."""
    return platform.machine()


def probe_raw() -> RawProbe:
    drm = tuple(
        (
            _read(os.path.join(card, "device", "vendor")).strip(),
            _read(os.path.join(card, "device", "device")).strip(),
        )
        for card in sorted(glob.glob("/sys/class/drm/card[0-9]*"))
        if "-" not in os.path.basename(card)
    )
    return RawProbe(
        system=platform.system(),
        machine=host_machine(),
        nvidia_smi=_nvidia_smi(),
        kfd_properties=tuple(
            _read(p) for p in sorted(glob.glob("/sys/class/kfd/kfd/topology/nodes/*/properties"))
        ),
        drm_ids=drm,
        etc_group=_read("/etc/group"),
        meminfo=_read("/proc/meminfo"),
        gtt_totals=tuple(
            _read(p).strip() for p in sorted(glob.glob("/sys/class/drm/card[0-9]*/device/mem_info_gtt_total"))
        ),
        wired_limit_mb=_sysctl("iogpu.wired_limit_mb"),
        hw_memsize=_sysctl("hw.memsize"),
        kernel=platform.release(),
        kernel_cmdline=_read("/proc/cmdline"),
        dri_nodes=_names("/dev/dri/*"),
        vulkan_icds=_names("/usr/share/vulkan/icd.d/*.json", "/etc/vulkan/icd.d/*.json"),
        nvidia_smi_banner=_run(["nvidia-smi"]),
        cdi_specs=_names("/etc/cdi/*", "/var/run/cdi/*"),
        infiniband_nodes=_names("/dev/infiniband/*"),
        binfmt=binfmt_entries(),
        xcode_clt=(_run(["xcode-select", "-p"]) or "").strip() or None
        if platform.system() == "Darwin"
        else None,
        uid=os.getuid() if hasattr(os, "getuid") else 1000,
        gid=os.getgid() if hasattr(os, "getgid") else 1000,
        hostname=socket.gethostname(),
        fqdn=socket.getfqdn(),
        addresses=_interface_addresses(),
    )


def _interface_addresses() -> tuple[str, ...]:
    """Every IPv4 and IPv6 address of this machine's interfaces (link-local ones need a zone: left out)."""
    import psutil

    found = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6) and not entry.address.startswith("fe80"):
                found.append(entry.address)
    return tuple(found)


@functools.cache
def probe() -> HostFacts:
    """Once per process: one command plans several times (and doctor again), the host does not change."""
    return parse_facts(probe_raw())


def host_summary(facts: HostFacts) -> dict[str, object]:
    """What a benchmark record says about the machine it ran on."""
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "system": facts.system,
        "machine": facts.machine,
        "kernel": platform.release(),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "mem_total_kib": facts.mem_total_kib,
        "gpus": list(facts.nvidia_gpus) + list(facts.amd_gfx_targets),
        "nvidia_smi": _nvidia_smi(),
    }


def binfmt_entries() -> tuple[tuple[str, str], ...]:
    """QEMU's binfmt_misc entries: (name, the file's text)."""
    return tuple(
        (os.path.basename(path), _read(path) or "")
        for path in sorted(glob.glob("/proc/sys/fs/binfmt_misc/qemu-*"))
    )


def require_emulation(image_platform: str) -> None:
    """Refuse, in one line, to start work for another architecture that this machine cannot run."""
    problem = emulation_problem(image_platform, host_machine(), dict(registered_emulators(binfmt_entries())))
    if problem is not None:
        raise OrchestratorError(f"{problem.message}; {problem.fix}")
