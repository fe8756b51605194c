from __future__ import annotations

import pytest

from orchestrator.core.detect import detect_target
from tests.conftest import host_facts


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("dgx-spark", "dgx-spark"),
        ("ryzen-ai-max", "ryzen-ai-max"),
        ("ryzen-ai-max-no-kfd", "ryzen-ai-max"),
        ("mac-studio", "mac-studio"),
        ("cpu-debian", "cpu"),
        ("h200-server", "cpu"),
        ("radeon-discrete", "cpu"),
    ],
)
def test_detects_target_from_recorded_probe(host: str, target: str) -> None:
    assert detect_target(host_facts(host)).target == target


def test_reasons_name_the_evidence() -> None:
    assert "GB10" in detect_target(host_facts("dgx-spark")).reason
    assert "gfx1151" in detect_target(host_facts("ryzen-ai-max")).reason
    assert "H200" in detect_target(host_facts("h200-server")).reason


def test_parses_host_facts() -> None:
    ryzen = host_facts("ryzen-ai-max")
    assert ryzen.amd_gfx_targets == ("gfx1151",)
    assert (ryzen.render_gid, ryzen.video_gid) == (991, 44)
    assert ryzen.mem_available_kib == 127000000
    assert not ryzen.is_root
    spark = host_facts("dgx-spark")
    assert spark.nvidia_gpus == ("NVIDIA GB10",)
    assert spark.page_cache_kib == 3550120
    assert host_facts("radeon-discrete").amd_gfx_targets == ("gfx1100",)
    assert host_facts("cpu-debian").is_root
