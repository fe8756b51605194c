"""`--target auto`: which catalogue entry fits this host, decided from probed facts alone."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.facts import HostFacts

AMD_VENDOR = "0x1002"
# PCI ids of the Radeon 8060S/8050S iGPU in Ryzen AI Max (Strix Halo).
STRIX_HALO_DEVICE_IDS = frozenset({"0x1586"})
STRIX_HALO_GFX = "gfx1151"


@dataclass(frozen=True)
class Detection:
    target: str
    reason: str


def detect_target(facts: HostFacts) -> Detection:
    gb10 = [gpu for gpu in facts.nvidia_gpus if "GB10" in gpu.upper()]
    if gb10:
        return Detection("dgx-spark", f"nvidia-smi reports {gb10[0]}")
    if STRIX_HALO_GFX in facts.amd_gfx_targets:
        return Detection("ryzen-ai-max", f"AMD GPU {STRIX_HALO_GFX} in the KFD topology")
    for vendor, device in facts.drm_devices:
        if vendor.lower() == AMD_VENDOR and device.lower() in STRIX_HALO_DEVICE_IDS:
            return Detection("ryzen-ai-max", f"AMD GPU {device} ({STRIX_HALO_GFX}) under /sys/class/drm")
    if facts.system == "Darwin" and facts.machine == "arm64":
        return Detection("mac-studio", "macOS on Apple silicon")
    seen = ", ".join(facts.nvidia_gpus) or "no supported GPU"
    return Detection("cpu", f"{seen} found; serving on the CPU")
