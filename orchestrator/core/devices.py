"""Where llama.cpp put the model, read from its own load log, and whether that is where the target needs it.

The lines, as llama.cpp 0c1e570 writes them at its default verbosity (src/llama.cpp, src/llama-model.cpp,
src/llama-kv-cache.cpp, src/llama-context.cpp):
    llama_prepare_model_devices: using device CUDA0 (NVIDIA GB10) (0000:01:00.0) - 119000 MiB free
    load_tensors: offloaded 46/46 layers to GPU
    load_tensors:   CPU_Mapped model buffer size =   380.00 MiB
    llama_kv_cache:      CUDA0 KV buffer size =  5120.00 MiB
    sched_reserve:      CUDA0 compute buffer size =   980.00 MiB
all at verbosity 4 (libllama's info lines are llama.cpp's trace level), and at verbosity 5 one
`load_tensors: layer N assigned to device NAME` per layer. The offload count is
what was asked for (-ngl), not what happened: with no GPU at all it still says every layer went to the
GPU. The buffers' devices are the evidence. The CPU is not listed among the `using device` lines; it
holds the input layer (token embeddings) whatever the offload, and every host buffer (`CPU_Mapped`,
`CPU_REPACK`, `CUDA_Host`, `Vulkan_Host`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.core.catalogue import DeviceKind

CPU = "CPU"
MIB = 1 << 20

_USING = re.compile(r"using device (\S+) \((.*)\) \(([^()]*)\) - (\d+) MiB free")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"\w: +(\S+) (model|KV|compute) buffer size = +([\d.]+) MiB")
_LAYER = re.compile(r"load_tensors: layer +(\d+) assigned to device (\S+),")
# Each start of llama-server begins so; a log that holds several runs (a restarted container, a launchd
# agent's file) is read from the last one. A run may load more than one file (an MTP sidecar): all of a
# run's buffers count.
_RUN_START = re.compile(r"llama_server: initializing")

# A line of llama.cpp's log at info, debug or trace level: "0.00.936.461 I load_tensors: ..." (a
# program's own output, its warnings and errors are not). llama-cli's spinner may stand before it.
LOG_LINE = re.compile(r"\d+\.\d+\.\d+\.\d+ [IDT] ")

# Vulkan drivers that run on the CPU: llama.cpp lists them as Vulkan devices.
SOFTWARE_RASTERISERS = ("llvmpipe", "lavapipe", "swiftshader", "softpipe")


def mib(value: float) -> str:
    """A buffer's size as llama.cpp's MiB, whole above 10 (a tiny model's buffers are fractions of one)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


@dataclass(frozen=True)
class DeviceUse:
    """One device and what it holds (MiB), as llama.cpp names and describes it."""

    name: str
    description: str = ""
    model_mib: float = 0.0
    kv_mib: float = 0.0
    compute_mib: float = 0.0
    # Layers assigned to it, where the log says (verbosity 4); None where it does not.
    layers: int | None = None

    def held(self, compute: bool = False) -> str:
        """What it holds: "model 92.10 MiB, KV 45.00 MiB[, compute ...][, N layers]"."""
        text = f"model {mib(self.model_mib)} MiB, KV {mib(self.kv_mib)} MiB"
        if compute:
            text += f", compute {mib(self.compute_mib)} MiB"
        return text + (f", {self.layers} layers" if self.layers is not None else "")

    @property
    def software(self) -> bool:
        return any(word in self.description.lower() for word in SOFTWARE_RASTERISERS)

    @property
    def rpc(self) -> bool:
        return self.name.startswith("RPC")


@dataclass(frozen=True)
class Placement:
    """The devices of one load, the CPU last; the offload llama.cpp reports (asked, of total)."""

    devices: tuple[DeviceUse, ...] = ()
    offloaded: tuple[int, int] | None = None

    @property
    def found(self) -> bool:
        return any(d.model_mib for d in self.devices)

    def device(self, name: str) -> DeviceUse | None:
        return next((d for d in self.devices if d.name == name), None)

    @property
    def cpu(self) -> DeviceUse:
        return self.device(CPU) or DeviceUse(CPU)

    @property
    def accelerators(self) -> tuple[DeviceUse, ...]:
        return tuple(d for d in self.devices if d.name != CPU)

    def describe(self) -> str:
        """One line: each device with its share of the weights, KV cache and layers."""
        if not self.found:
            return "not read from the log"
        parts = []
        for d in self.devices:
            if not (d.model_mib or d.kv_mib):
                continue
            what = f"{d.name}" + (f" ({d.description})" if d.description else "")
            parts.append(f"{what}: {d.held()}")
        text = "; ".join(parts)
        if self.offloaded:
            text += f"; offloaded {self.offloaded[0]}/{self.offloaded[1]} layers (as llama.cpp reports it)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "devices": [asdict(d) for d in self.devices],
            "offloaded": list(self.offloaded) if self.offloaded else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Placement:
        offloaded = data.get("offloaded")
        return cls(
            tuple(DeviceUse(**d) for d in data.get("devices", ())),
            (int(offloaded[0]), int(offloaded[1])) if offloaded else None,
        )


# Devices of the backends our targets use, as the pinned ggml names them (GGML_CUDA_NAME, GGML_VK_NAME,
# "MTL%d", "RPC%d"); any other backend's device is known by its `using device` line.
_ACCELERATOR = re.compile(r"(CUDA|Vulkan|MTL|RPC)\d+")


def buffer_device(buffer: str, devices: Iterable[str] = ()) -> str:
    """The device a buffer lives on: MTL0_Mapped on MTL0; RPC0[10.0.0.2:50052] on RPC0; host buffers
    (CPU_Mapped, CPU_REPACK, CUDA_Host, Vulkan_Host) and the CPU's own extra types (AMX, ...) on the CPU."""
    name = buffer.partition("[")[0].removesuffix("_Mapped")
    if name in devices or _ACCELERATOR.fullmatch(name):
        return name
    return CPU


def last_run(lines: Iterable[str]) -> list[str]:
    """The lines of the last run in a log (a restarted server's log holds every run)."""
    kept: list[str] = []
    for line in lines:
        if _RUN_START.search(line):
            kept = []
        kept.append(line)
    return kept


def read_placement(lines: Iterable[str]) -> Placement:
    """Where the last run in a log put the model. A speculating server loads a draft context too: its
    KV and compute buffers count with the device that holds them."""
    described: dict[str, str] = {}
    held: dict[str, dict[str, float]] = {}
    layers: dict[str, int] = {}
    offloaded = None
    for line in last_run(lines):
        if found := _USING.search(line):
            described.setdefault(found.group(1), found.group(2))
        elif found := _OFFLOADED.search(line):
            offloaded = (int(found.group(1)), int(found.group(2)))
        elif found := _BUFFER.search(line):
            device = buffer_device(found.group(1), described)
            sizes = held.setdefault(device, {})
            sizes[found.group(2)] = sizes.get(found.group(2), 0.0) + float(found.group(3))
        elif found := _LAYER.search(line):
            layers[found.group(2)] = layers.get(found.group(2), 0) + 1
    names = [*described, *(n for n in held if n not in described and n != CPU), CPU]
    devices = tuple(
        DeviceUse(
            name=name,
            description=described.get(name, ""),
            model_mib=round(held.get(name, {}).get("model", 0.0), 2),
            kv_mib=round(held.get(name, {}).get("KV", 0.0), 2),
            compute_mib=round(held.get(name, {}).get("compute", 0.0), 2),
            layers=layers.get(name),
        )
        for name in names
        if name in held or name in described
    )
    return Placement(devices, offloaded)


# --- what each kind of target needs ---------------------------------------------------------------


@dataclass(frozen=True)
class DeviceNeed:
    """The backend a target's model must land on (llama.cpp's device name prefix), and the fix when not."""

    backend: str
    what: str
    fix: str
    # The variable that limits which of the backend's devices llama.cpp may use (the gpu setting).
    visible_env: str | None = None
    # Weights that stay on the CPU whatever the offload (the input layer), beyond their own size: the
    # buffers' alignment and padding.
    slack_mib: float = 64.0


NEEDS: Mapping[DeviceKind, DeviceNeed] = {
    "nvidia": DeviceNeed(
        backend="CUDA",
        what="an NVIDIA GPU (CUDA)",
        visible_env="CUDA_VISIBLE_DEVICES",
        fix=(
            "the image's CUDA 13.0 needs an R580 NVIDIA driver or newer on the host (nvidia-smi shows it); "
            "install the NVIDIA Container Toolkit and check that 'docker run --gpus all' sees the GPU "
            "(the compose file reserves it); then 'orchestrator up' again"
        ),
    ),
    "dri": DeviceNeed(
        backend="Vulkan",
        what="the Radeon GPU (Vulkan/RADV)",
        visible_env="GGML_VK_VISIBLE_DEVICES",
        fix=(
            "the container needs /dev/dri and the host's render and video group ids (ls -ln /dev/dri "
            "shows them; 'orchestrator doctor' checks both) and Mesa's RADV driver, not a software one "
            "(llvmpipe/lavapipe); then 'orchestrator up' again"
        ),
    ),
    "metal": DeviceNeed(
        backend="MTL",
        what="the Apple GPU (Metal)",
        fix=(
            "build with -DGGML_METAL=ON ('orchestrator build --target mac-studio') and raise the Metal "
            "wired limit for the model (sudo sysctl iogpu.wired_limit_mb=...; 'orchestrator doctor' "
            "names the value); then 'orchestrator up' again"
        ),
    ),
}


def expectation(kind: DeviceKind) -> str:
    """Where the plan expects the model, as `plan` shows it."""
    need = NEEDS.get(kind)
    if need is None:
        return "the CPU (any device llama.cpp finds is taken)"
    return f"every layer and the KV cache on {need.what}; the input layer on the CPU"


@dataclass(frozen=True)
class Verdict:
    """Whether the model landed where the target needs it; the problem in one line where it did not."""

    placement: Placement
    problem: str | None = None
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def judge(
    placement: Placement, kind: DeviceKind, input_bytes: int | None, rpc: Sequence[str] = ()
) -> Verdict:
    """Whether the model is on the target's GPU (and its RPC workers): every layer, the KV cache, and no
    weights on the CPU beyond the input layer (input_bytes, the GGUF's tensors outside the layers). A
    target with no GPU of its own (cpu) takes whatever device llama.cpp chose."""
    need = NEEDS.get(kind)
    if need is None:
        return Verdict(placement)
    if not placement.found:
        # Nothing to judge by (a log rotated away, or a build that logs otherwise): not a refusal.
        return Verdict(placement)

    def refuse(problem: str) -> Verdict:
        return Verdict(placement, f"{problem}; it needs {need.what}", need.fix)

    gpus = [d for d in placement.accelerators if d.name.startswith(need.backend)]
    real = [d for d in gpus if not d.software]
    if not gpus:
        return refuse("the model was loaded on the CPU: llama.cpp found no " + need.backend + " device")
    if not real:
        names = ", ".join(f"{d.name} ({d.description})" for d in gpus)
        return refuse(
            f"the model was loaded on the CPU: the only {need.backend} device is {names}, "
            "a software rasteriser"
        )
    software = [d for d in gpus if d.software and (d.model_mib or d.kv_mib)]
    if software:
        return refuse(
            f"part of the model is on {software[0].name} ({software[0].description}), a software "
            "rasteriser that runs on the CPU"
        )
    cpu = placement.cpu
    allowed = (input_bytes or 0) / MIB + need.slack_mib
    partly = []
    if cpu.model_mib > allowed:
        partly.append(f"{mib(cpu.model_mib)} MiB of weights")
    if cpu.kv_mib:
        partly.append(f"{mib(cpu.kv_mib)} MiB of KV cache")
    if placement.offloaded and placement.offloaded[0] < placement.offloaded[1]:
        partly.append(f"{placement.offloaded[1] - placement.offloaded[0]} of {placement.offloaded[1]} layers")
    if partly:
        return refuse("part of the model is on the CPU: " + ", ".join(partly))
    unused = [
        w for w in rpc if not any(d.rpc and d.description == w and d.model_mib for d in placement.devices)
    ]
    if unused:
        return Verdict(
            placement,
            f"RPC worker {unused[0]} holds none of the model",
            "llama.cpp splits the layers by each device's free memory: check the worker's with "
            "'orchestrator worker status' on that machine",
        )
    return Verdict(placement)
