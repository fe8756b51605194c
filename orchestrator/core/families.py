"""The image families: a Dockerfile each and what every image built from it needs (bases, cmake flags,
packages, the GPU driver it brings), whatever the target. The targets (orchestrator.core.catalogue) name
their family."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

CMakeFlag = tuple[str, str]


@dataclass(frozen=True)
class ImageFamily:
    """A Dockerfile and what every image built from it needs, whatever the target."""

    name: str
    dockerfile: str
    build_base: str
    runtime_base: str
    cmake_flags: tuple[CMakeFlag, ...]
    # Installed by the Dockerfile's apt step when the base lacks them, or at bootstrap for local bases.
    # PACKAGE/SUITE takes the package (and what it needs) from that suite, e.g. trixie-backports.
    build_packages: tuple[str, ...]
    runtime_packages: tuple[str, ...]
    # The GPU's user-space driver inside the image, if it brings one: its version becomes a label.
    driver_package: str | None = None
    # Set where the Dockerfile's build stages run on the build machine's own architecture and
    # cross-compile for another (FROM --platform=$BUILDPLATFORM): the packages the build links against,
    # installed in the image's architecture. None: the build stages run on the image's architecture
    # (under QEMU when that is foreign).
    cross_packages: tuple[str, ...] | None = None
    # The runtime image's size on amd64, as `docker image inspect` counts it (MB, 10^6 bytes), that the
    # tests hold it under (None: not measured here).
    size_budget_mb: int | None = None

    @property
    def driver_source(self) -> str | None:
        """Where the image's driver comes from: 'PACKAGE from SUITE', or the package from the base's suite."""
        for word in self.runtime_packages:
            name, _, suite = word.partition("/")
            if name == self.driver_package:
                return f"{name} from {suite}" if suite else name
        return None


# --- image families -------------------------------------------------------------------------------


# Flags every image needs on top of the publisher's: portable CPU code selected at run time
# (GGML_BACKEND_DL + all CPU variants, so the GPU backend is a plugin and the image starts without a
# GPU), the RPC backend for multi-machine use, no tests, and llama-server's web UI the way upstream
# provisions it: the prebuilt bundle for the build (then `latest`) from its Hugging Face bucket,
# checked against the bundle's published sha256; where the build cannot reach it, upstream's build
# goes on without a page and build-llama.sh says so in one line.
_IMAGE_FLAGS: tuple[CMakeFlag, ...] = (
    ("GGML_NATIVE", "OFF"),
    ("GGML_BACKEND_DL", "ON"),
    ("GGML_CPU_ALL_VARIANTS", "ON"),
    ("GGML_RPC", "ON"),
    ("LLAMA_BUILD_TESTS", "OFF"),
    ("LLAMA_USE_PREBUILT_UI", "ON"),
    ("LLAMA_OPENSSL", "OFF"),
)

_COMMON_BUILD_PACKAGES = ("build-essential", "cmake", "git", "ccache", "ca-certificates")
# caddy, the proxy in front of llama-server (core.plan.proxy): 2.6.2-12+deb13u1 in trixie, seen here; in
# Ubuntu 24.04 (the nvidia/cuda bases) not checked: a missing one stops the apt step, which names it.
_COMMON_RUNTIME_PACKAGES = ("libgomp1", "curl", "ca-certificates", "caddy")

CUDA = ImageFamily(
    name="cuda",
    dockerfile="images/cuda/Dockerfile",
    build_base="nvidia/cuda:13.0.1-devel-ubuntu24.04",
    runtime_base="nvidia/cuda:13.0.1-runtime-ubuntu24.04",
    # The build machine has no driver: libcuda.so.1 is left for the host's driver to provide at run
    # time (llama.cpp #18022).
    cmake_flags=(*_IMAGE_FLAGS, ("CMAKE_EXE_LINKER_FLAGS", "-Wl,--allow-shlib-undefined")),
    # libibverbs: llama.cpp's RPC backend finds it at configure time and then uses RDMA (RoCE over the
    # ConnectX port of two DGX Sparks) by itself; ibverbs-providers holds the mlx5 driver it loads. Names
    # checked in Debian trixie (rdma-core 56.1-1, the local bases); not checked here in Ubuntu 24.04 (the
    # nvidia/cuda bases): a missing one stops the image's apt step, which names it.
    build_packages=(*_COMMON_BUILD_PACKAGES, "libibverbs-dev"),
    runtime_packages=(*_COMMON_RUNTIME_PACKAGES, "libibverbs1", "ibverbs-providers"),
    # No cross_packages: cross-compiling CUDA needs the target's CUDA libraries beside the host's nvcc
    # (NVIDIA's cuda-cross-sbsa packages, in its separate cross-linux-sbsa apt repositories). The local
    # bases do not carry them; the nvidia/cuda images are not checked here (they cannot be pulled), and
    # any cross build would fail where its configure finds no aarch64 CUDA libraries. A DGX Spark image
    # built on amd64 is built under QEMU; on the Spark itself, natively.
)

# Debian trixie, as the local bases `orchestrator bases bootstrap` makes (debian:trixie-slim is Debian's
# own image of the same suite), so the image users pull from and the one the tests build differ only in
# how the base was obtained. Vulkan headers >= 1.4 (trixie has 1.4.309); bookworm's 1.3.239 are too old.
# Mesa is the Radeon's driver (RADV): trixie itself has 25.0.7, in which llama.cpp's Vulkan pipelines hit
# a RADV heap corruption fixed in Mesa 26.0.5 (llama.cpp #22128, Mesa issue 15302), and gfx1151 owners
# report on Mesa 26 (llama.cpp #22375: RADV 26.0.2); trixie-backports carries 26.1.6-1~bpo13+1 (seen in
# its package index on 2026-11-29). No RADV device is here to measure it.
VULKAN = ImageFamily(
    name="vulkan",
    dockerfile="images/vulkan/Dockerfile",
    build_base="debian:trixie-slim",
    runtime_base="debian:trixie-slim",
    cmake_flags=_IMAGE_FLAGS,
    build_packages=(*_COMMON_BUILD_PACKAGES, "libvulkan-dev", "glslc", "spirv-headers"),
    runtime_packages=(*_COMMON_RUNTIME_PACKAGES, "libvulkan1", "mesa-vulkan-drivers/trixie-backports"),
    driver_package="mesa-vulkan-drivers",
    # Debian builds for another architecture with its cross compilers and multiarch libraries, and
    # llama.cpp builds its shader generator with the host's compiler when cross-compiling; glslc runs
    # natively. An emulated compile of this image reached 9% in 42 minutes on 2 cores here.
    cross_packages=("libvulkan-dev",),
    # 738 MB with caddy and the fallback page (#27), a little more with the quality tools (eval, quantize):
    # room for them and for Mesa's next backport, not for a second toolchain.
    size_budget_mb=800,
)

FAMILIES: Mapping[str, ImageFamily] = MappingProxyType({f.name: f for f in (CUDA, VULKAN)})
