"""The hardware catalogue: one frozen description per machine, and the only module that knows hardware.

Adding a machine means adding one `Target(...)` to `CATALOGUE`. Every figure that comes from the
publisher's README (flags, contexts, batch sizes, benchmark parameter sets) is written here once;
the Dockerfiles and the macOS scripts receive them through the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from orchestrator.core.families import CUDA, VULKAN, CMakeFlag, ImageFamily
from orchestrator.core.speculation import OFF, Speculative
from orchestrator.errors import UsageError

Runtime = Literal["container", "native"]
DeviceKind = Literal["none", "nvidia", "dri", "metal"]
HookKind = Literal["drop-page-cache", "wired-limit"]


def frozen_env(**values: str) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class BenchSet:
    """One `llama-batched-bench` parameter set, as the publisher ran it."""

    name: str
    ctx: int
    batch: int
    ubatch: int
    npp: tuple[int, ...]
    ntg: tuple[int, ...] = (128,)
    npl: tuple[int, ...] = (1,)
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    mmap: bool | None = None
    threads: int | None = None
    env: Mapping[str, str] = field(default_factory=frozen_env)
    # Key of the publisher's table this set reproduces (benchmark data comes with the bench issue).
    reference: str | None = None


@dataclass(frozen=True)
class HookSpec:
    """A host-side step a profile needs before the model loads (never run inside a container)."""

    kind: HookKind
    value: int | None = None
    # What to do instead when the step is not run (said with the refusal).
    alternative: str | None = None


@dataclass(frozen=True)
class BuildVariant:
    """Extra cmake flags a profile needs in the binary (a separate image tag / native prefix)."""

    name: str
    cmake_flags: tuple[CMakeFlag, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    ctx: int
    batch: int
    ubatch: int
    flash_attn: str = "on"
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    mmap: bool | None = None
    threads: int | None = None
    env: Mapping[str, str] = field(default_factory=frozen_env)
    variant: BuildVariant | None = None
    hooks: tuple[HookSpec, ...] = ()
    benches: tuple[BenchSet, ...] = ()
    notes: tuple[str, ...] = ()
    # Speculative decoding (a model that cannot draft is served without it), and the server's slots while
    # it speculates (None: llama-server's default).
    speculative: Speculative = OFF
    speculative_slots: int | None = None
    # RPC workers the profile is made for (their addresses are the user's: --rpc / the rpc setting).
    rpc_workers: int = 0


MemoryLimit = Literal["mem-available", "gtt", "wired-limit"]


@dataclass(frozen=True)
class MemoryBudget:
    """How much memory the model may use on this machine: what limits it (read from the host when the
    host is this machine) and the figure to plan with when planning from elsewhere."""

    total_gib: float | None
    usable_gib: float | None
    source: str
    limit: MemoryLimit = "mem-available"


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    runtime: Runtime
    platform: str
    family: ImageFamily | None
    seed_cmake_flags: tuple[CMakeFlag, ...]
    extra_cmake_flags: tuple[CMakeFlag, ...]
    devices: DeviceKind
    memory: MemoryBudget
    default_model: str
    profiles: tuple[Profile, ...]
    env: Mapping[str, str] = field(default_factory=frozen_env)
    server_args: tuple[str, ...] = ()
    # llama-server's --n-predict: the most tokens one request generates when it sets none (a request's
    # own max_tokens still applies, fewer or more: measured at 0c1e570). A stuck generation then ends
    # instead of holding its slot for hours. 0: no cap.
    n_predict: int = 0
    # llama-server's --sleep-idle-seconds: the model freed after this long without a request. 0: never.
    idle_s: int = 0
    notes: tuple[str, ...] = field(default=())
    # For `--native` on a host that is not this target's own kind (a container target built on the
    # host): the flags that replace the image family's GPU backend with what any such host has.
    native_cmake_flags: tuple[CMakeFlag, ...] | None = None
    # A target for any machine (no GPU of its own) takes the architecture of the machine it is planned
    # on; `platform` is then what CI and the tables name. --platform overrides either.
    follows_host: bool = False

    def profile(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in self.profiles)
        raise UsageError(f"target {self.name} has no profile {name!r}; choose one of: {known}")

    @property
    def profile_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)


# --- the publisher's parameter sets -----------------------------------------------------------------

_SEED_16K = BenchSet(name="16k", ctx=16384, batch=2048, ubatch=2048, npp=(0, 2048, 8192, 16384))
_LONG_NPP = (0, 2048, 8192, 16384, 32768, 65536, 262144)

_DEFAULT_NOTES = (
    "The publisher's everyday settings: 16K context, 2048 batch and micro-batch, flash attention.",
)


_DEFAULT_PROFILE = Profile(
    name="default",
    summary="16K context, -b 2048 -ub 2048, flash attention",
    ctx=16384,
    batch=2048,
    ubatch=2048,
    benches=(_SEED_16K,),
    notes=_DEFAULT_NOTES,
)


def _measured_by(profile: Profile, name: str, npp: tuple[int, ...], reference: str) -> Profile:
    """The profile with the publisher's llama-batched-bench set run at the profile's own settings (context,
    batches, cache types, mmap, threads, environment), compared with the publisher's table `reference`."""
    bench = BenchSet(
        name=name,
        ctx=profile.ctx,
        batch=profile.batch,
        ubatch=profile.ubatch,
        npp=npp,
        cache_type_k=profile.cache_type_k,
        cache_type_v=profile.cache_type_v,
        mmap=profile.mmap,
        threads=profile.threads,
        env=profile.env,
        reference=reference,
    )
    return replace(profile, benches=(bench,))


DROP_PAGE_CACHE = HookSpec("drop-page-cache")
# The Step-3.5-Flash targets' cap on one request's tokens (Target.n_predict): room for a long agent answer
# with its reasoning, and a bound on a runaway one. At the publisher's measured decode speeds (S_TG at an
# empty context: Mac 48.18, DGX Spark 19.79, Ryzen AI Max 3.43 t/s) 32768 tokens take about 11 min,
# 28 min and 2.7 h; without it a generation that never stops runs until the context (up to 256K) is full.
AGENT_REPLY_TOKENS = 32768
# Target.idle_s of the Step-3.5-Flash targets: a meal or a night gives the ~105 GiB back, a working
# session's pauses keep the model loaded; each wake-up reloads the 111 GB file (about 20-40 s at NVMe's
# 3-6 GB/s, not measured here). Ollama's default is 5 min, for models a tenth of this size.
IDLE_AFTER_S = 1800

MAC_WIRED_LIMIT_MB = 122880
MAC_WIRED_ALTERNATIVE = (
    "without raising the wired limit, a q8_0 KV cache (-ctk q8_0 -ctv q8_0) fits up to 76K context, "
    "at some cost in accuracy"
)
# The ryzen-ai-max max-context profile's -c: the model's whole context (Step-3.5-Flash's 262144), which the
# memory plan fits in a ~120 GiB GTT with a q8_0 cache (a unit test holds the two together).
MAX_CONTEXT = 262144
# Kernel parameters that give the Ryzen AI Max+ 395's GPU a ~120 GiB GTT.
GTT_KERNEL_PARAMS = "ttm.pages_limit=31457280 amdgpu.gttsize=122880"

# The publisher's Vulkan build (AMD, on Windows in its README); the cpu target builds the same image.
_SEED_VULKAN_FLAGS: tuple[CMakeFlag, ...] = (
    ("CMAKE_BUILD_TYPE", "Release"),
    ("LLAMA_CURL", "OFF"),
    ("GGML_OPENMP", "ON"),
    ("GGML_VULKAN", "ON"),
)

# Speculative decoding per machine, from public measurements (none made here: no such hardware).
_SPARK_MTP = Speculative("mtp", draft_n=2)
_SPARK_MTP_NOTE = (
    "MTP speculation with 2 draft tokens when the model has its heads (Step-3.7-Flash's 3 heads allow up to "
    "mtp:3): measured on a DGX Spark with AesSedai's Step-3.7-Flash IQ4 (draft p-min 0.6; llama.cpp PR "
    "#23274, comment of 2026-06-03), two runs, in t/s: no MTP 23.68/23.74, one draft 31.42/31.97, two "
    "32.37/36.56, three 27.87/32.46. Check it here with 'orchestrator bench serve'."
)
_RYZEN_SPEC_NOTE = (
    "Speculative decoding off: on Strix Halo with Vulkan one report has MTP slower (5.1 vs 21.4 t/s, "
    "llama.cpp #27836). Measure with 'orchestrator bench serve --spec mtp' before turning it on."
)
_MAC_SPEC_NOTE = (
    "Speculative decoding off: MTP reports on Metal are mixed (llama.cpp #23752). Measure with "
    "'orchestrator bench serve --spec mtp' before turning it on."
)

# --- targets -----------------------------------------------------------------------------------------

DGX_SPARK = Target(
    name="dgx-spark",
    title="NVIDIA DGX Spark (GB10, CUDA 13, arm64)",
    runtime="container",
    platform="linux/arm64",
    family=CUDA,
    seed_cmake_flags=(
        ("CMAKE_BUILD_TYPE", "Release"),
        ("GGML_CUDA", "ON"),
        ("GGML_CUDA_GRAPHS", "ON"),
        ("LLAMA_CURL", "OFF"),
        ("LLAMA_BUILD_EXAMPLES", "ON"),
        ("LLAMA_BUILD_COMMON", "ON"),
    ),
    extra_cmake_flags=(("CMAKE_CUDA_ARCHITECTURES", "121a-real"),),
    devices="nvidia",
    env=frozen_env(NVIDIA_VISIBLE_DEVICES="all", NVIDIA_DRIVER_CAPABILITIES="compute,utility"),
    memory=MemoryBudget(
        total_gib=128.0,
        usable_gib=119.0,
        source="MemAvailable after the page-cache drop (GB10 exposes ~119 GiB)",
    ),
    default_model="step-3.5-flash",
    server_args=("--jinja", "--metrics"),
    n_predict=AGENT_REPLY_TOKENS,
    idle_s=IDLE_AFTER_S,
    profiles=(
        replace(
            _DEFAULT_PROFILE,
            hooks=(DROP_PAGE_CACHE,),
            speculative=_SPARK_MTP,
            notes=(*_DEFAULT_NOTES, _SPARK_MTP_NOTE),
        ),
        _measured_by(
            Profile(
                name="long-context",
                summary="256K context: unified memory, q8_0 KV cache, MMQ kernels, -ub 1024",
                speculative=_SPARK_MTP,
                ctx=262150,
                batch=2048,
                ubatch=1024,
                cache_type_k="q8_0",
                cache_type_v="q8_0",
                env=frozen_env(GGML_CUDA_ENABLE_UNIFIED_MEMORY="1"),
                variant=BuildVariant("mmq", (("GGML_CUDA_FORCE_MMQ", "ON"),)),
                hooks=(DROP_PAGE_CACHE,),
                notes=(
                    "The publisher's remedies for out-of-memory at 256K: GGML_CUDA_FORCE_MMQ=ON, "
                    "GGML_CUDA_ENABLE_UNIFIED_MEMORY=1 and a q8_0 KV cache.",
                    _SPARK_MTP_NOTE,
                ),
            ),
            "256k",
            _LONG_NPP,
            "dgx-spark-256k",
        ),
        Profile(
            name="pair",
            summary="two DGX Sparks over one RPC worker: 256K context with an f16 KV cache, -b/-ub 4096",
            ctx=262150,
            batch=4096,
            ubatch=4096,
            env=frozen_env(GGML_CUDA_ENABLE_UNIFIED_MEMORY="1"),
            hooks=(DROP_PAGE_CACHE,),
            speculative=_SPARK_MTP,
            rpc_workers=1,
            notes=(
                "Needs the second Spark as an RPC worker on the direct link: 'orchestrator worker up "
                "--target dgx-spark --listen ADDRESS' there, then 'orchestrator up --profile pair --rpc "
                "ADDRESS:50052' here (docs/tasks/two-machines.md). The full-precision cache at 256K and a 4096 "
                "micro-batch need ~120 GiB: more than one Spark has, half of it on each of two. A larger "
                "quantisation (--model) is planned the same way, split by each machine's memory.",
                _SPARK_MTP_NOTE,
            ),
        ),
    ),
)

RYZEN_AI_MAX = Target(
    name="ryzen-ai-max",
    title="AMD Ryzen AI Max+ 395 (Radeon 8060S, Vulkan/RADV, Linux)",
    runtime="container",
    platform="linux/amd64",
    family=VULKAN,
    seed_cmake_flags=_SEED_VULKAN_FLAGS,
    extra_cmake_flags=(),
    devices="dri",
    # RADV is Mesa's Vulkan driver; the variable only matters where AMDVLK is installed beside it.
    env=frozen_env(AMD_VULKAN_ICD="RADV"),
    memory=MemoryBudget(
        total_gib=128.0,
        usable_gib=120.0,
        source="GTT size (amdgpu.gttsize / ttm.pages_limit raised to ~120 GiB)",
        limit="gtt",
    ),
    default_model="step-3.5-flash",
    server_args=("--jinja", "--metrics"),
    n_predict=AGENT_REPLY_TOKENS,
    idle_s=IDLE_AFTER_S,
    profiles=(
        replace(_DEFAULT_PROFILE, hooks=(DROP_PAGE_CACHE,), notes=(*_DEFAULT_NOTES, _RYZEN_SPEC_NOTE)),
        _measured_by(
            Profile(
                name="long-context",
                summary="64K context (the largest the publisher ran here), mmap, 32 threads",
                ctx=65540,
                batch=2048,
                ubatch=2048,
                mmap=True,
                threads=32,
                hooks=(DROP_PAGE_CACHE,),
                notes=(
                    "The publisher's largest context on this machine is 64K; 256K is on its to-do list.",
                    _RYZEN_SPEC_NOTE,
                ),
            ),
            "64k",
            (0, 2048, 8192, 16384, 32768, 65536),
            "ryzen-ai-max-64k",
        ),
        Profile(
            name="max-context",
            summary="256K context (the model's whole) with a q8_0 KV cache; needs the GTT raised to ~120 GiB",
            ctx=MAX_CONTEXT,
            batch=2048,
            ubatch=2048,
            cache_type_k="q8_0",
            cache_type_v="q8_0",
            mmap=True,
            threads=32,
            hooks=(DROP_PAGE_CACHE,),
            notes=(
                "Unmeasured on the hardware (no Ryzen AI Max here): the context is the memory plan's, which puts "
                "Step-3.5-Flash Q4_K_S at 256K with a q8_0 cache at about 112 GiB. It needs the GTT raised with "
                f"the kernel parameters {GTT_KERNEL_PARAMS} (Linux; 'orchestrator doctor --profile "
                "max-context' says whether this machine's GTT allows it). The publisher stopped at 64K, on Windows.",
                _RYZEN_SPEC_NOTE,
            ),
        ),
    ),
)

MAC_STUDIO = Target(
    name="mac-studio",
    title="Apple Mac Studio M4 Max (Metal, native)",
    runtime="native",
    platform="darwin/arm64",
    family=None,
    seed_cmake_flags=(
        ("CMAKE_BUILD_TYPE", "Release"),
        ("GGML_METAL", "ON"),
        ("GGML_ACCELERATE", "ON"),
        ("LLAMA_BUILD_EXAMPLES", "ON"),
        ("LLAMA_BUILD_COMMON", "ON"),
        ("GGML_LTO", "ON"),
    ),
    # rpc-server is one of the shipped tools; it exists only with the RPC backend.
    extra_cmake_flags=(("LLAMA_BUILD_TESTS", "OFF"), ("GGML_RPC", "ON")),
    devices="metal",
    memory=MemoryBudget(
        total_gib=128.0,
        # recommendedMaxWorkingSetSize as measured on stock 128 GiB Macs (M4/M5 Max): 107.52 GiB.
        usable_gib=107.5,
        source="Metal working-set limit (macOS default on 128 GiB; iogpu.wired_limit_mb raises it)",
        limit="wired-limit",
    ),
    default_model="step-3.5-flash",
    server_args=("--jinja", "--metrics"),
    n_predict=AGENT_REPLY_TOKENS,
    idle_s=IDLE_AFTER_S,
    profiles=(
        replace(_DEFAULT_PROFILE, notes=(*_DEFAULT_NOTES, _MAC_SPEC_NOTE)),
        _measured_by(
            Profile(
                name="long-context",
                summary="256K context with -ub 1024; needs the Metal wired limit raised to 120 GiB",
                ctx=262150,
                batch=2048,
                ubatch=1024,
                hooks=(HookSpec("wired-limit", MAC_WIRED_LIMIT_MB, MAC_WIRED_ALTERNATIVE),),
                notes=(MAC_WIRED_ALTERNATIVE[0].upper() + MAC_WIRED_ALTERNATIVE[1:] + ".", _MAC_SPEC_NOTE),
            ),
            "256k",
            _LONG_NPP,
            "mac-studio-256k",
        ),
    ),
)

CPU = Target(
    name="cpu",
    title="Any Linux machine without a supported GPU (CPU backend, demo model)",
    runtime="container",
    platform="linux/amd64",
    follows_host=True,
    family=VULKAN,
    seed_cmake_flags=_SEED_VULKAN_FLAGS,
    extra_cmake_flags=(),
    devices="none",
    memory=MemoryBudget(total_gib=None, usable_gib=None, source="MemAvailable of this host"),
    default_model="smollm2-135m-instruct",
    # Half the demo profile's 4K context: a whole answer of the small demo model, never a runaway one.
    n_predict=2048,
    # On the host (--native): the CPU backend tuned for this very CPU, nothing a host may lack, and no
    # AMX kernels: built by bookworm's gcc 12 on a Xeon with AMX they died on their first tile
    # instruction (llama.cpp PR #26954, open); ggml compiles them only under this macro.
    native_cmake_flags=(
        ("CMAKE_BUILD_TYPE", "Release"),
        ("LLAMA_CURL", "OFF"),
        ("LLAMA_OPENSSL", "OFF"),
        ("GGML_NATIVE", "ON"),
        ("CMAKE_C_FLAGS", "-U__AMX_INT8__"),
        ("CMAKE_CXX_FLAGS", "-U__AMX_INT8__"),
        ("GGML_RPC", "ON"),
        ("LLAMA_BUILD_TESTS", "OFF"),
        ("LLAMA_USE_PREBUILT_UI", "OFF"),
    ),
    server_args=("--jinja", "--metrics"),
    profiles=(
        Profile(
            name="default",
            summary="demo settings: 4K context, -b 512 -ub 512, flash attention",
            ctx=4096,
            batch=512,
            ubatch=512,
            benches=(BenchSet(name="quick", ctx=2048, batch=512, ubatch=512, npp=(0, 128, 512), ntg=(32,)),),
            notes=("Small settings for the demo model; the Step-3.5-Flash profiles need a 128 GB machine.",),
        ),
    ),
)

CATALOGUE: Mapping[str, Target] = MappingProxyType(
    {t.name: t for t in (DGX_SPARK, RYZEN_AI_MAX, MAC_STUDIO, CPU)}
)


def get_target(name: str) -> Target:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(CATALOGUE)
        raise UsageError(f"unknown target {name!r}; choose one of: {known} (or auto)") from None


def cmake_flags(target: Target, profile: Profile, native: bool = False) -> tuple[CMakeFlag, ...]:
    """The one list of -D flags for this build: publisher's, then image family's, target's, variant's.
    A container target built natively (--native) takes its native flags in place of the first three.

    A later entry replaces an earlier one of the same name, so a variant can override a default.
    """
    merged: dict[str, str] = {}
    layers = [target.seed_cmake_flags]
    if native and target.native_cmake_flags is not None:
        layers = [target.native_cmake_flags]
    else:
        if target.family is not None:
            layers.append(target.family.cmake_flags)
        layers.append(target.extra_cmake_flags)
    if profile.variant is not None:
        layers.append(profile.variant.cmake_flags)
    for layer in layers:
        for name, value in layer:
            merged.pop(name, None)
            merged[name] = value
    return tuple(merged.items())
