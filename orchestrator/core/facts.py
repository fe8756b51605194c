"""What the host is, as plain facts: the raw outputs a probe gathers (`RawProbe`), the facts read from
them (`HostFacts`, by `parse_facts`, pure), and what the Docker engine reports (`EngineFacts`). Tests feed
recorded outputs from each kind of machine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RawProbe:
    system: str
    machine: str
    nvidia_smi: str | None = None
    kfd_properties: tuple[str, ...] = ()
    drm_ids: tuple[tuple[str, str], ...] = ()
    etc_group: str = ""
    meminfo: str = ""
    uid: int = 1000
    gid: int = 1000
    # /sys/class/drm/card*/device/mem_info_gtt_total of each AMD card (bytes, as text).
    gtt_totals: tuple[str, ...] = ()
    # `sysctl -n iogpu.wired_limit_mb` and `sysctl -n hw.memsize` on macOS.
    wired_limit_mb: str | None = None
    hw_memsize: str | None = None
    # For `doctor`: the kernel, its command line, GPU device nodes, Vulkan drivers, nvidia-smi's banner
    # (it names the CUDA version), CDI specs, and the Xcode command line tools' folder.
    kernel: str = ""
    kernel_cmdline: str = ""
    dri_nodes: tuple[str, ...] = ()
    vulkan_icds: tuple[str, ...] = ()
    nvidia_smi_banner: str | None = None
    cdi_specs: tuple[str, ...] = ()
    xcode_clt: str | None = None
    # /dev/infiniband/* (RDMA devices: ConnectX with RoCE), which llama.cpp's RPC uses on its own.
    infiniband_nodes: tuple[str, ...] = ()
    # binfmt_misc's QEMU entries: (name, the file's text), e.g. ("qemu-aarch64", "enabled\n...flags: OCF").
    binfmt: tuple[tuple[str, str], ...] = ()
    # What other machines may call this one: its host name, its fully qualified name, and the addresses
    # of its interfaces (the server's certificate and its Host check cover them).
    hostname: str = ""
    fqdn: str = ""
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFacts:
    system: str
    machine: str
    nvidia_gpus: tuple[str, ...] = ()
    amd_gfx_targets: tuple[str, ...] = ()
    drm_devices: tuple[tuple[str, str], ...] = ()
    render_gid: int | None = None
    video_gid: int | None = None
    mem_total_kib: int | None = None
    mem_available_kib: int | None = None
    page_cache_kib: int | None = None
    # What dropping the page cache would give back: clean cache and buffers, not shared memory.
    reclaimable_kib: int | None = None
    gtt_total_bytes: int | None = None
    wired_limit_mb: int | None = None
    hw_memsize_bytes: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    kernel: str = ""
    kernel_cmdline: str = ""
    dri_nodes: tuple[str, ...] = ()
    vulkan_icds: tuple[str, ...] = ()
    cdi_specs: tuple[str, ...] = ()
    xcode_clt: str | None = None
    infiniband_nodes: tuple[str, ...] = ()
    # Registered emulators (qemu-aarch64, ...) and their binfmt_misc flags (F: the interpreter is opened at
    # registration, so containers need no copy of it).
    emulators: tuple[tuple[str, str], ...] = ()
    uid: int = 1000
    gid: int = 1000
    hostname: str = ""
    fqdn: str = ""
    addresses: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def _gfx_name(version: int) -> str:
    major, minor, step = version // 10000, (version // 100) % 100, version % 100
    return f"gfx{major}{minor}{step:x}"


def _group_gid(etc_group: str, name: str) -> int | None:
    for line in etc_group.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] == name and parts[2].isdigit():
            return int(parts[2])
    return None


def _meminfo_kib(meminfo: str, key: str) -> int | None:
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        if name == key and rest.split():
            return int(rest.split()[0])
    return None


def _int_or_none(text: str | None) -> int | None:
    return int(text.strip()) if text is not None and text.strip().isdigit() else None


def _reclaimable_kib(meminfo: str) -> int | None:
    cached = _meminfo_kib(meminfo, "Cached")
    if cached is None:
        return None
    buffers = _meminfo_kib(meminfo, "Buffers") or 0
    shmem = _meminfo_kib(meminfo, "Shmem") or 0
    return max(cached + buffers - shmem, 0)


def _cuda_version(banner: str | None) -> str | None:
    found = re.search(r"CUDA Version: *([\d.]+)", banner or "")
    return found.group(1) if found else None


def registered_emulators(binfmt: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """binfmt_misc entries (name, the file's text) -> the enabled ones and their flags."""

    def flags(text: str) -> str:
        found = re.search(r"^flags:\s*(\S*)", text, re.MULTILINE)
        return found.group(1) if found else ""

    return tuple((name, flags(text)) for name, text in binfmt if "enabled" in text)


def parse_facts(raw: RawProbe) -> HostFacts:
    gpus = tuple(line.split(",")[0].strip() for line in (raw.nvidia_smi or "").splitlines() if line.strip())
    gfx: list[str] = []
    for props in raw.kfd_properties:
        for line in props.splitlines():
            key, _, value = line.partition(" ")
            if key == "gfx_target_version" and value.strip().isdigit() and int(value) > 0:
                gfx.append(_gfx_name(int(value)))
    return HostFacts(
        system=raw.system,
        machine=raw.machine,
        nvidia_gpus=gpus,
        amd_gfx_targets=tuple(dict.fromkeys(gfx)),
        drm_devices=raw.drm_ids,
        render_gid=_group_gid(raw.etc_group, "render"),
        video_gid=_group_gid(raw.etc_group, "video"),
        mem_total_kib=_meminfo_kib(raw.meminfo, "MemTotal"),
        mem_available_kib=_meminfo_kib(raw.meminfo, "MemAvailable"),
        page_cache_kib=_meminfo_kib(raw.meminfo, "Cached"),
        reclaimable_kib=_reclaimable_kib(raw.meminfo),
        gtt_total_bytes=max((int(t) for t in raw.gtt_totals if t.strip().isdigit()), default=None),
        wired_limit_mb=_int_or_none(raw.wired_limit_mb),
        hw_memsize_bytes=_int_or_none(raw.hw_memsize),
        driver_version=next(
            (line.split(",")[1].strip() for line in (raw.nvidia_smi or "").splitlines() if "," in line), None
        ),
        cuda_version=_cuda_version(raw.nvidia_smi_banner),
        kernel=raw.kernel,
        kernel_cmdline=raw.kernel_cmdline.strip(),
        dri_nodes=raw.dri_nodes,
        vulkan_icds=raw.vulkan_icds,
        cdi_specs=raw.cdi_specs,
        xcode_clt=raw.xcode_clt,
        infiniband_nodes=raw.infiniband_nodes,
        emulators=registered_emulators(raw.binfmt),
        uid=raw.uid,
        gid=raw.gid,
        hostname=raw.hostname.strip().lower(),
        fqdn=raw.fqdn.strip().lower(),
        addresses=tuple(dict.fromkeys(a.split("%")[0] for a in raw.addresses if a)),
    )


@dataclass(frozen=True)
class EngineFacts:
    server: str | None = None
    runtimes: tuple[str, ...] = ()
    buildx: str | None = None
    compose: str | None = None
    error: str | None = None
