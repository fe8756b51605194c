"""`orchestrator doctor`: one pass / warn / fail line per check, each failure with its fix. Pure: every check
reads facts probed beforehand (the host, the Docker engine, the plan), so recorded probes test them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from orchestrator.core.catalogue import CATALOGUE, GTT_KERNEL_PARAMS
from orchestrator.core.facts import EngineFacts, HostFacts
from orchestrator.core.plan import Plan
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.platforms import emulation_problem, machine_arch, platform_arch

Status = Literal["pass", "warn", "fail"]
GIB = 1 << 30

# CUDA 13 needs an R580 driver; the Ryzen AI Max+ 395's GPU wants these kernels for full GTT and stability.
MIN_DRIVER = (580,)
MIN_CUDA = (13, 0)
MIN_KERNEL_GFX1151 = (6, 18, 4)
MIN_DOCKER = (23,)
NVIDIA_TOOLKIT_FIX = (
    "install the NVIDIA container toolkit and register it with Docker: sudo apt install nvidia-container-toolkit "
    "&& sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker (without it, "
    'Docker says: could not select device driver "" with capabilities: [[gpu]])'
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerFacts:
    """One RPC worker as the head sees it: its HELLO answer and the link to it."""

    endpoint: str
    protocol: str | None
    problem: str | None
    interface: str | None
    speed_mbps: int | None
    mtu: int | None


@dataclass(frozen=True)
class DoctorFacts:
    host: HostFacts
    engine: EngineFacts | None
    disk_free_bytes: int | None
    disk_path: str
    workers: tuple[WorkerFacts, ...] = ()
    # The RPC protocol the head's image speaks (its label), when it is built.
    head_protocol: str | None = None
    # The GPU driver package the image brings and its version (its label), when it is built.
    image_driver: str | None = None


def version_tuple(text: str | None) -> tuple[int, ...]:
    found = re.search(r"(\d+(?:\.\d+)*)", text or "")
    return tuple(int(p) for p in found.group(1).split(".")) if found else ()


def _ok(name: str, detail: str) -> Check:
    return Check(name, "pass", detail)


def _judge(name: str, ok: bool, passed: str, problem: str, fix: str, severity: Status = "fail") -> Check:
    return Check(name, "pass", passed) if ok else Check(name, severity, problem, fix)


def docker_checks(engine: EngineFacts | None) -> list[Check]:
    if engine is None:
        return []
    if engine.error or engine.server is None:
        return [
            Check(
                "docker engine",
                "fail",
                f"unreachable: {engine.error}",
                "start it (sudo systemctl start docker) or check DOCKER_HOST; join the docker group to run without sudo",
            )
        ]
    checks = [
        _ok("docker engine", f"Docker Engine {engine.server}")
        if version_tuple(engine.server) >= MIN_DOCKER
        else Check(
            "docker engine",
            "warn",
            f"Docker Engine {engine.server}: older than 23; builds work through the buildx plugin",
            "upgrade to Docker Engine >= 23 (docs.docker.com/engine/install)",
        )
    ]
    checks.append(
        _ok("docker buildx", engine.buildx.split("\n")[0])
        if engine.buildx
        else Check(
            "docker buildx", "fail", "the buildx plugin is missing", "scripts/install-docker-plugins.sh"
        )
    )
    checks.append(
        _ok("docker compose", engine.compose.split("\n")[0])
        if engine.compose
        else Check(
            "docker compose",
            "fail",
            "compose v2 (docker compose) is missing",
            "scripts/install-docker-plugins.sh",
        )
    )
    return checks


def memory_checks(plan: Plan, facts: DoctorFacts) -> list[Check]:
    checks: list[Check] = []
    model = plan.model
    need = 0 if model.present else int((model.weights_bytes or 0) * 1.01) + 2 * GIB
    if facts.disk_free_bytes is not None and need:
        free = facts.disk_free_bytes / GIB
        checks.append(
            _ok(
                "disk for the model", f"{free:.0f} GiB free at {facts.disk_path}, {need / GIB:.0f} GiB needed"
            )
            if facts.disk_free_bytes >= need
            else Check(
                "disk for the model",
                "fail",
                f"{free:.0f} GiB free at {facts.disk_path} but the model needs {need / GIB:.0f} GiB",
                "free space, or pull into a bigger disk with --models-dir",
            )
        )
    elif model.present:
        checks.append(_ok("model file", f"{model.path} present"))
    host = facts.host
    if host.mem_available_kib is not None and host.system == "Linux":
        rows = plan.memory.rows
        available = host.mem_available_kib * 1024
        if rows:
            total = rows[0].fit.estimate.total
            checks.append(
                _ok(
                    "MemAvailable",
                    f"{available / GIB:.1f} GiB available, the server needs {total / GIB:.1f} GiB",
                )
                if available >= total
                else Check(
                    "MemAvailable",
                    # A machine the catalogue has no memory figure for (any Linux box) only warns.
                    "fail" if CATALOGUE[plan.target].memory.usable_gib is not None else "warn",
                    f"{available / GIB:.1f} GiB available but the server needs {total / GIB:.1f} GiB",
                    rows[0].fit.fixes[0] if rows[0].fit.fixes else "stop other programs using memory",
                )
            )
        cache = host.page_cache_kib
        total_kib = host.mem_total_kib or 0
        if cache is not None and total_kib:
            drop = next((h for h in plan.hooks if h.name == "drop-page-cache"), None)
            large = cache > total_kib // 10
            checks.append(
                Check(
                    "page cache",
                    "warn" if large and drop else "pass",
                    f"{cache / 2**20:.1f} GiB of page cache",
                    f"drop it before loading: {drop.shell()} (up asks)" if large and drop else None,
                )
            )
    return checks


def dgx_checks(host: HostFacts, engine: EngineFacts | None) -> list[Check]:
    gb10 = [g for g in host.nvidia_gpus if "GB10" in g]
    checks = [
        _ok("GPU", f"nvidia-smi sees {gb10[0]}")
        if gb10
        else Check(
            "GPU",
            "fail",
            f"nvidia-smi sees {', '.join(host.nvidia_gpus) or 'no NVIDIA GPU'}; no GB10",
            "run this on the DGX Spark, or choose the target that matches this machine (orchestrator targets)",
        )
    ]
    driver = version_tuple(host.driver_version)
    checks.append(
        _judge(
            "NVIDIA driver",
            bool(driver) and driver >= MIN_DRIVER,
            f"driver {host.driver_version}",
            f"driver {host.driver_version or 'not found'}; CUDA 13 needs R580 or newer",
            "install the R580+ driver (DGX OS updates ship it)",
        )
    )
    cuda = version_tuple(host.cuda_version)
    checks.append(
        _judge(
            "CUDA",
            bool(cuda) and cuda >= MIN_CUDA,
            f"the driver supports CUDA {host.cuda_version}",
            f"the driver supports CUDA {host.cuda_version or 'unknown'}; the image is built with CUDA 13.0",
            "update the NVIDIA driver to one that supports CUDA 13",
        )
    )
    runtimes = engine.runtimes if engine else ()
    if "nvidia" in runtimes or host.cdi_specs:
        how = (
            "nvidia runtime registered with Docker"
            if "nvidia" in runtimes
            else f"CDI spec {host.cdi_specs[0]}"
        )
        checks.append(_ok("NVIDIA container toolkit", how))
    else:
        checks.append(
            Check(
                "NVIDIA container toolkit",
                "fail",
                "Docker has no nvidia runtime and there is no CDI spec in /etc/cdi or /var/run/cdi",
                NVIDIA_TOOLKIT_FIX,
            )
        )
    return checks


_GTT_PARAMS = re.compile(r"(?:amdgpu\.gttsize|ttm\.pages_limit)=(\d+)")


# Mesa 26.0.5 fixed a RADV heap corruption that llama.cpp's Vulkan pipelines hit (llama.cpp #22128).
MIN_MESA_RADV = (26, 0, 5)


def radv_check(plan: Plan, host: HostFacts, image_driver: str | None) -> Check:
    """The RADV the image will drive the GPU with (the image's Mesa, not the host's), beside the host's
    kernel, whose amdgpu driver it talks to."""
    family = CATALOGUE[plan.target].family
    source = (family.driver_source if family else None) or "Mesa"
    if image_driver is None:
        return _ok(
            "RADV in the image",
            f"{source}; its version is recorded when the image is built; host kernel {host.kernel}",
        )
    version = image_driver.split()[-1]
    detail = f"Mesa {version} in the image, on host kernel {host.kernel}"
    if version_tuple(version) < MIN_MESA_RADV:
        return Check(
            "RADV in the image",
            "warn",
            f"{detail}: older than {'.'.join(map(str, MIN_MESA_RADV))}, which fixes a RADV heap corruption "
            "llama.cpp's Vulkan pipelines hit",
            f"build the image with the catalogue's bases ({source})",
        )
    return _ok("RADV in the image", detail)


def ryzen_checks(host: HostFacts, needed_bytes: int | None, needed_by: str = "the model") -> list[Check]:
    renders = [n for n in host.dri_nodes if n.startswith("renderD")]
    checks = [
        _ok("/dev/dri", f"render node {renders[0]}")
        if renders
        else Check(
            "/dev/dri",
            "fail",
            "no /dev/dri/renderD* node",
            "load the amdgpu driver (a kernel with gfx1151 support)",
        )
    ]
    gids = [
        f"{name} {gid}"
        for name, gid in (("render", host.render_gid), ("video", host.video_gid))
        if gid is not None
    ]
    checks.append(
        _ok("render/video groups", ", ".join(gids))
        if host.render_gid is not None
        else Check(
            "render/video groups",
            "fail",
            "no numeric render group in /etc/group",
            "add it: sudo groupadd -r render (the container is given the host's numeric gids)",
        )
    )
    gtt = host.gtt_total_bytes
    need = needed_bytes or int(120 * GIB)
    if gtt is None:
        checks.append(
            Check("GTT size", "fail", "no mem_info_gtt_total under /sys/class/drm", "load the amdgpu driver")
        )
    else:
        checks.append(
            _ok("GTT size", f"{gtt / GIB:.1f} GiB, {needed_by} needs {need / GIB:.1f} GiB")
            if gtt >= need
            else Check(
                "GTT size",
                "fail",
                f"{gtt / GIB:.1f} GiB but {needed_by} needs {need / GIB:.1f} GiB",
                f"raise it with kernel parameters {GTT_KERNEL_PARAMS} (120 GiB), then reboot",
            )
        )
    params = dict.fromkeys(m.group(0).split("=")[0] for m in _GTT_PARAMS.finditer(host.kernel_cmdline))
    checks.append(
        _ok("kernel parameters", " ".join(m.group(0) for m in _GTT_PARAMS.finditer(host.kernel_cmdline)))
        if params
        else Check(
            "kernel parameters",
            "warn",
            "neither ttm.pages_limit nor amdgpu.gttsize is on the kernel command line",
            f"add {GTT_KERNEL_PARAMS} to GRUB_CMDLINE_LINUX and update-grub",
        )
    )
    kernel = version_tuple(host.kernel)
    checks.append(
        _ok("kernel", host.kernel)
        if kernel >= MIN_KERNEL_GFX1151
        else Check(
            "kernel",
            "warn",
            f"{host.kernel}: older than 6.18.4, whose amdgpu fixes gfx1151 GTT and stability issues",
            "install a kernel >= 6.18.4",
        )
    )
    radv = [icd for icd in host.vulkan_icds if "radeon" in icd]
    checks.append(
        _ok("RADV", radv[0])
        if radv
        else Check(
            "RADV",
            "warn",
            "no radeon Vulkan driver on the host (the image brings its own Mesa RADV)",
            "for host tools: sudo apt install mesa-vulkan-drivers",
        )
    )
    return checks


def mac_checks(host: HostFacts, plan: Plan) -> list[Check]:
    hook = next((h for h in plan.hooks if h.name == "wired-limit"), None)
    limit = host.wired_limit_mb or 0
    default_gib = CATALOGUE[plan.target].memory.usable_gib
    checks: list[Check] = []
    if hook is not None and hook.wanted is not None:
        checks.append(
            _judge(
                "wired limit",
                limit >= hook.wanted,
                f"iogpu.wired_limit_mb={limit}",
                f"iogpu.wired_limit_mb={limit} (0 = macOS default, about {default_gib} GiB on 128 GiB); "
                f"this profile needs {hook.wanted}",
                f"sudo sysctl iogpu.wired_limit_mb={hook.wanted} (up asks; it resets at reboot); "
                f"or: {hook.alternative}",
                severity="warn",
            )
        )
    else:
        checks.append(_ok("wired limit", f"iogpu.wired_limit_mb={limit} (0 = macOS default)"))
    checks.append(
        _ok("Xcode command line tools", host.xcode_clt)
        if host.xcode_clt
        else Check("Xcode command line tools", "fail", "not installed", "xcode-select --install")
    )
    return checks


TARGET_CHECKS: dict[str, Callable[[Plan, DoctorFacts], list[Check]]] = {
    "dgx-spark": lambda plan, facts: dgx_checks(facts.host, facts.engine),
    "ryzen-ai-max": lambda plan, facts: [
        *ryzen_checks(
            facts.host,
            plan.memory.rows[0].fit.estimate.total if plan.memory.rows else None,
            f"the {plan.profile} profile (-c {plan.memory.rows[0].workload.ctx})"
            if plan.memory.rows
            else "the model",
        ),
        radv_check(plan, facts.host, facts.image_driver),
    ],
    "mac-studio": lambda plan, facts: mac_checks(facts.host, plan),
}


# Below this an RPC link moves activations (and, the first time, weights) too slowly to be worth it.
MIN_LINK_MBPS = 10_000


def rpc_checks(plan: Plan, facts: DoctorFacts) -> list[Check]:
    checks = []
    start = f"orchestrator worker up --target {plan.target} --listen"
    for worker in facts.workers:
        name = f"rpc worker {worker.endpoint}"
        if worker.protocol is None:
            checks.append(
                Check(
                    name,
                    "fail",
                    f"does not answer: {worker.problem}",
                    f"on that machine: {start} {worker.endpoint}",
                )
            )
            continue
        if facts.head_protocol is not None and worker.protocol != facts.head_protocol:
            checks.append(
                Check(
                    name,
                    "fail",
                    f"speaks RPC protocol {worker.protocol}, the head's image {facts.head_protocol}",
                    f"run the same build there: {start} {worker.endpoint} with this source",
                )
            )
        else:
            same = "the head's" if facts.head_protocol else "the head's image not built yet to compare"
            checks.append(_ok(name, f"answers, RPC protocol {worker.protocol} ({same})"))
        link = f"via {worker.interface or 'an unknown interface'}"
        details = ", ".join(
            part
            for part in (
                f"{worker.speed_mbps} Mb/s" if worker.speed_mbps else "",
                f"MTU {worker.mtu}" if worker.mtu else "",
            )
            if part
        )
        slow = worker.speed_mbps is not None and worker.speed_mbps < MIN_LINK_MBPS
        checks.append(
            _judge(
                f"rpc link {worker.endpoint}",
                not slow,
                f"{link}" + (f": {details}" if details else " (speed not reported: loopback or virtual)"),
                f"{link}: {details}: slower than 10 Gb/s",
                "join the machines by their fastest port (two DGX Sparks: the QSFP cable on the ConnectX port) "
                "and give the worker that link's address",
                severity="warn",
            )
        )
    return checks


def emulation_checks(plan: Plan, host: HostFacts) -> list[Check]:
    """An image for another architecture (a DGX Spark's arm64 on an amd64 machine) builds only with its
    RUN steps under QEMU, registered with binfmt_misc's F flag so the containers need no copy of it."""
    if not isinstance(plan.build, ImageBuild):
        return []
    platform, emulators = plan.build.platform, dict(host.emulators)
    wanted = platform_arch(platform)
    if wanted.name == machine_arch(host.machine):
        return []
    problem = emulation_problem(platform, host.machine, emulators)
    if problem is not None:
        return [Check("emulation", problem.severity, problem.message, problem.fix)]
    registered = f"{wanted.emulator} (flags {emulators[wanted.emulator]})"
    if plan.build.cross:
        what = (
            f"llama.cpp is cross-compiled on {plan.build.build_platform}; the image's package steps run "
            f"under {registered}"
        )
    else:
        what = f"{platform} builds run under {registered}; expect them slow (hours for a whole compile)"
    return [_ok("emulation", what)]


def diagnose(plan: Plan, facts: DoctorFacts) -> list[Check]:
    checks = docker_checks(facts.engine) if plan.runtime == "container" else []
    checks += emulation_checks(plan, facts.host)
    checks += memory_checks(plan, facts)
    checks += rpc_checks(plan, facts)
    specific = TARGET_CHECKS.get(plan.target)
    if specific is not None:
        checks += specific(plan, facts)
    return checks
