"""Where llama.cpp put the model, read from real logs of the pinned build (tests/fixtures/devices, captured
from the cpu image: llama-server on the CPU, on Mesa's lavapipe made visible with GGML_VK_VISIBLE_DEVICES,
and a head with one RPC worker), and judged against what each kind of target needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.devices import (
    DeviceUse,
    Placement,
    buffer_device,
    judge,
    last_run,
    read_placement,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "devices"
MIB = 1 << 20


def _log(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_the_cpu_server_holds_everything_on_the_cpu_whatever_the_offload_count_says() -> None:
    placement = read_placement(_log("cpu-server-ngl99.log"))
    assert [d.name for d in placement.devices] == ["CPU"]
    cpu = placement.cpu
    # Two CPU buffer types here: the mapped file and this CPU's AMX repacking; both are the CPU.
    assert cpu.model_mib == pytest.approx(95.34 + 92.10)
    assert cpu.kv_mib == pytest.approx(90.0) and cpu.compute_mib == pytest.approx(17.51)
    # llama.cpp still says every layer went to the GPU.
    assert placement.offloaded is not None and placement.offloaded[0] == placement.offloaded[1]
    for gpu_target in ("nvidia", "dri", "metal"):
        verdict = judge(placement, gpu_target, input_bytes=None)
        assert not verdict.ok
        assert verdict.problem and verdict.problem.startswith(
            "the model was loaded on the CPU: llama.cpp found no"
        )
    assert judge(placement, "none", input_bytes=None).ok


def test_lavapipe_is_a_vulkan_device_and_still_the_cpu() -> None:
    placement = read_placement(_log("vulkan-lavapipe-server.log"))
    vulkan = placement.device("Vulkan0")
    assert vulkan is not None and vulkan.description.startswith("llvmpipe (LLVM")
    assert (
        vulkan.software and vulkan.model_mib == pytest.approx(92.10) and vulkan.kv_mib == pytest.approx(45.0)
    )
    # Only the token embeddings (the input layer) stayed on the CPU: it is not the software device
    # that makes this a refusal, not the CPU share.
    assert placement.cpu.model_mib == pytest.approx(28.69)
    verdict = judge(placement, "dri", input_bytes=None)
    assert verdict.problem is not None
    assert "the only Vulkan device is Vulkan0 (llvmpipe" in verdict.problem
    assert "software rasteriser" in verdict.problem
    assert verdict.fix and "/dev/dri" in verdict.fix and "render and video group ids" in verdict.fix


def test_a_head_with_an_rpc_worker_names_the_worker_and_its_share() -> None:
    placement = read_placement(_log("rpc-head.log"))
    (worker,) = [d for d in placement.devices if d.rpc]
    assert worker.name == "RPC0" and worker.description.startswith("127.0.0.1:")
    assert worker.model_mib == pytest.approx(92.10) and worker.kv_mib == pytest.approx(45.0)
    # The head keeps the input layer (token embeddings) and its output buffer; at -lv 4 no layer counts.
    assert placement.cpu.model_mib == pytest.approx(28.69)
    assert worker.layers is None
    # A cpu target takes it; a GPU target needs its own GPU besides the worker.
    assert judge(placement, "none", input_bytes=None, rpc=["127.0.0.1:50199"]).ok
    verdict = judge(placement, "nvidia", input_bytes=None, rpc=["127.0.0.1:50199"])
    assert verdict.problem and "found no CUDA device" in verdict.problem


def test_layer_lines_at_verbosity_5_count_layers_per_device() -> None:
    lines = [
        "0.00.1 D load_tensors: layer   0 assigned to device CUDA0, is_swa = 0",
        "0.00.2 D load_tensors: layer   1 assigned to device RPC0, is_swa = 1",
        "0.00.3 D load_tensors: layer   2 assigned to device RPC0, is_swa = 0",
        "0.00.4 I load_tensors:        CUDA0 model buffer size =   100.00 MiB",
        "0.00.5 I load_tensors: RPC0[10.0.0.2:50052] model buffer size =   200.00 MiB",
    ]
    placement = read_placement(lines)
    assert {d.name: d.layers for d in placement.devices} == {"CUDA0": 1, "RPC0": 2}


def test_host_buffers_are_the_cpu_and_device_buffers_their_device() -> None:
    assert [buffer_device(b) for b in ("CPU_Mapped", "CPU_REPACK", "CPU", "CUDA_Host", "Vulkan_Host")] == [
        "CPU"
    ] * 5
    assert buffer_device("CUDA0") == "CUDA0"
    assert buffer_device("MTL0_Mapped") == "MTL0"
    assert buffer_device("RPC0[10.0.0.2:50052]") == "RPC0"
    assert buffer_device("AMX") == "CPU"


def _gpu(cpu_model: float, cpu_kv: float = 0.0, offloaded: tuple[int, int] = (46, 46)) -> Placement:
    return Placement(
        (
            DeviceUse("CUDA0", "NVIDIA GB10", model_mib=105000.0, kv_mib=1200.0, compute_mib=900.0),
            DeviceUse("CPU", model_mib=cpu_model, kv_mib=cpu_kv),
        ),
        offloaded,
    )


def test_a_fully_offloaded_model_keeps_only_its_input_layer_on_the_cpu() -> None:
    # The token embeddings stay on the CPU whatever the offload: allowed up to their size (+ padding).
    assert judge(_gpu(380.0), "nvidia", input_bytes=int(380 * MIB)).ok
    assert judge(_gpu(380.0 + 60), "nvidia", input_bytes=int(380 * MIB)).ok


@pytest.mark.parametrize(
    ("placement", "says"),
    [
        (_gpu(20000.0), "part of the model is on the CPU: 20000 MiB of weights"),
        (_gpu(380.0, cpu_kv=512.0), "part of the model is on the CPU: 512 MiB of KV cache"),
        (_gpu(380.0, offloaded=(30, 46)), "part of the model is on the CPU: 16 of 46 layers"),
    ],
)
def test_part_of_the_model_on_the_cpu_is_refused(placement: Placement, says: str) -> None:
    verdict = judge(placement, "nvidia", input_bytes=int(380 * MIB))
    assert verdict.problem == f"{says}; it needs an NVIDIA GPU (CUDA)"
    assert verdict.fix and "R580" in verdict.fix and "NVIDIA Container Toolkit" in verdict.fix


def test_a_worker_that_holds_nothing_is_named() -> None:
    placement = Placement(
        (
            DeviceUse("RPC0", "10.0.0.2:50052"),
            DeviceUse("CUDA0", "NVIDIA GB10", model_mib=105000.0, kv_mib=1200.0),
            DeviceUse("CPU", model_mib=300.0),
        ),
        (46, 46),
    )
    verdict = judge(placement, "nvidia", input_bytes=int(300 * MIB), rpc=["10.0.0.2:50052"])
    assert verdict.problem == "RPC worker 10.0.0.2:50052 holds none of the model"


def test_a_restarted_servers_log_is_read_from_its_last_run() -> None:
    first = _log("vulkan-lavapipe-server.log")
    second = _log("cpu-server-ngl99.log")
    assert last_run([*first, *second]) == last_run(second)
    assert [d.name for d in read_placement([*first, *second]).devices] == ["CPU"]


def test_a_log_without_load_lines_is_not_judged() -> None:
    placement = read_placement(["main: server is listening on http://0.0.0.0:8080"])
    assert not placement.found
    assert judge(placement, "nvidia", input_bytes=None).ok
    assert Placement.from_dict(placement.to_dict()) == placement


def test_a_placement_survives_its_record() -> None:
    placement = read_placement(_log("rpc-head.log"))
    assert Placement.from_dict(placement.to_dict()) == placement


def test_the_same_load_on_a_real_radeon_passes_with_the_input_layer_on_the_cpu() -> None:
    # The lavapipe log with the device a Radeon: the 28.69 MiB on the CPU are SmolLM2's token_embd.weight
    # (28.6875 MiB in the GGUF), which llama.cpp keeps on the CPU whatever it offloads.
    lines = [
        line.replace("llvmpipe (LLVM 19.1.7, 256 bits)", "AMD Radeon 8060S Graphics (RADV GFX1151)")
        for line in _log("vulkan-lavapipe-server.log")
    ]
    placement = read_placement(lines)
    assert judge(placement, "dri", input_bytes=int(28.6875 * MIB)).ok
    # Asked for the wrong backend, the same load is refused.
    assert not judge(placement, "nvidia", input_bytes=int(28.6875 * MIB)).ok


def test_metal_buffers_are_the_gpu_on_a_mac() -> None:
    # The line formats of the pinned source (ggml-metal names its devices MTL<n>, its mapped model buffer
    # MTL<n>_Mapped); no Mac log could be captured here.
    lines = [
        "0.00.1 I llama_prepare_model_devices: using device MTL0 (Apple M4 Max) (unknown id) - 110000 MiB free",
        "0.00.2 I load_tensors: offloaded 46/46 layers to GPU",
        "0.00.3 I load_tensors:   CPU_Mapped model buffer size =   380.00 MiB",
        "0.00.4 I load_tensors:  MTL0_Mapped model buffer size = 105000.00 MiB",
        "0.00.5 I llama_kv_cache:       MTL0 KV buffer size =  1200.00 MiB",
    ]
    placement = read_placement(lines)
    assert placement.device("MTL0") == DeviceUse("MTL0", "Apple M4 Max", model_mib=105000.0, kv_mib=1200.0)
    assert judge(placement, "metal", input_bytes=int(380 * MIB)).ok
    verdict = judge(read_placement(_log("cpu-server-ngl99.log")), "metal", input_bytes=None)
    assert verdict.fix and "-DGGML_METAL=ON" in verdict.fix and "wired" in verdict.fix


def test_sizes_are_whole_mib_from_ten_and_hundredths_below() -> None:
    from orchestrator.core.devices import mib

    assert [mib(v) for v in (9.5, 10.0, 10.4, 105000.0)] == ["9.50", "10", "10", "105000"]


def test_what_a_device_holds_is_one_phrase_with_its_layers_where_the_log_counts_them() -> None:
    gpu = DeviceUse("CUDA0", "NVIDIA GB10", model_mib=105000.0, kv_mib=1200.0, compute_mib=980.0, layers=46)
    assert gpu.held() == "model 105000 MiB, KV 1200 MiB, 46 layers"
    assert gpu.held(compute=True) == "model 105000 MiB, KV 1200 MiB, compute 980 MiB, 46 layers"
    assert DeviceUse("CPU", model_mib=9.21, kv_mib=4.5).held() == "model 9.21 MiB, KV 4.50 MiB"


def test_a_placement_is_described_device_by_device_with_the_offload_llama_cpp_reports() -> None:
    placement = Placement(
        (
            # A device that holds nothing is left out, wherever it stands.
            DeviceUse("RPC0", "10.0.0.2:50052"),
            DeviceUse("CUDA0", "NVIDIA GB10", model_mib=105000.0, kv_mib=1200.0),
            DeviceUse("CPU", model_mib=380.0),
        ),
        (40, 46),
    )
    assert placement.describe() == (
        "CUDA0 (NVIDIA GB10): model 105000 MiB, KV 1200 MiB; CPU: model 380 MiB, KV 0.00 MiB; "
        "offloaded 40/46 layers (as llama.cpp reports it)"
    )
    assert Placement((DeviceUse("CPU", model_mib=20.0),)).describe() == "CPU: model 20 MiB, KV 0.00 MiB"
    assert Placement().describe() == "not read from the log"
    assert placement.device("CUDA1") is None


def test_a_placement_record_without_devices_or_offload_reads_as_none() -> None:
    assert Placement.from_dict({}) == Placement()
    assert Placement.from_dict({"devices": [], "offloaded": [30, 46]}).offloaded == (30, 46)


def test_the_device_of_a_buffer_is_the_name_before_its_first_bracket() -> None:
    # Whatever a worker's endpoint holds, brackets included.
    assert buffer_device("RPC1[[fd00::2]:50052]") == "RPC1"
    # A device of a backend no target of ours uses is known by its `using device` line.
    assert buffer_device("SYCL0", ["SYCL0"]) == "SYCL0" and buffer_device("SYCL0") == "CPU"


def test_each_device_llama_cpp_uses_is_read_with_what_it_holds_and_those_holding_nothing_too() -> None:
    lines = [
        "0.00.1 I llama_prepare_model_devices: using device SYCL0 (Intel Arc A770) (0000:03:00.0) - 15000 MiB free",
        "0.00.2 I llama_prepare_model_devices: using device SYCL1 (Intel Arc A770) (0000:04:00.0) - 15000 MiB free",
        "0.00.3 I load_tensors: offloaded 30/46 layers to GPU",
        "0.00.4 I load_tensors:   CPU_Mapped model buffer size =   380.25 MiB",
        "0.00.5 I load_tensors:        SYCL0 model buffer size =  9000.50 MiB",
        "0.00.6 I llama_kv_cache:      SYCL0 KV buffer size =    45.50 MiB",
        "0.00.7 I llama_kv_cache:        CPU KV buffer size =    12.75 MiB",
        "0.00.8 I sched_reserve:       SYCL0 compute buffer size =   980.25 MiB",
        "0.00.9 I load_tensors:        CUDA0 KV buffer size =    10.50 MiB",
    ]
    placement = read_placement(lines)
    assert placement.offloaded == (30, 46)
    assert placement.devices == (
        DeviceUse("SYCL0", "Intel Arc A770", model_mib=9000.5, kv_mib=45.5, compute_mib=980.25),
        DeviceUse("SYCL1", "Intel Arc A770"),
        # Named by its buffer alone (no `using device` line): no description.
        DeviceUse("CUDA0", "", kv_mib=10.5),
        DeviceUse("CPU", "", model_mib=380.25, kv_mib=12.75),
    )


def test_where_the_plan_expects_the_model() -> None:
    from orchestrator.core.devices import expectation

    assert expectation("none") == "the CPU (any device llama.cpp finds is taken)"
    assert (
        expectation("nvidia")
        == "every layer and the KV cache on an NVIDIA GPU (CUDA); the input layer on the CPU"
    )


def test_a_software_vulkan_device_beside_the_radeon_is_refused_when_it_holds_part_of_the_model() -> None:
    radeon = DeviceUse(
        "Vulkan0", "AMD Radeon 8060S Graphics (RADV GFX1151)", model_mib=90000.0, kv_mib=1200.0
    )
    lavapipe = DeviceUse("Vulkan1", "llvmpipe (LLVM 19.1.7, 256 bits)", model_mib=2000.0)
    placement = Placement((radeon, lavapipe, DeviceUse("CPU", model_mib=28.0)), (46, 46))
    verdict = judge(placement, "dri", input_bytes=None)
    assert verdict.placement is placement
    assert verdict.problem == (
        "part of the model is on Vulkan1 (llvmpipe (LLVM 19.1.7, 256 bits)), a software rasteriser that "
        "runs on the CPU; it needs the Radeon GPU (Vulkan/RADV)"
    )
    # Listed but holding nothing, it is no refusal.
    idle = Placement((radeon, DeviceUse("Vulkan1", "llvmpipe"), DeviceUse("CPU", model_mib=28.0)), (46, 46))
    assert judge(idle, "dri", input_bytes=None).ok


def test_only_software_vulkan_devices_are_named_each() -> None:
    placement = Placement(
        (
            DeviceUse("Vulkan0", "llvmpipe", model_mib=90.0),
            DeviceUse("Vulkan1", "lavapipe", kv_mib=45.0),
            DeviceUse("CPU", model_mib=28.0),
        )
    )
    assert judge(placement, "dri", input_bytes=None).problem == (
        "the model was loaded on the CPU: the only Vulkan device is Vulkan0 (llvmpipe), Vulkan1 (lavapipe), "
        "a software rasteriser; it needs the Radeon GPU (Vulkan/RADV)"
    )


def test_the_cpu_may_hold_the_input_layer_and_the_slack_and_not_a_hundredth_more() -> None:
    input_bytes = int(316 * MIB)
    assert judge(_gpu(380.0), "nvidia", input_bytes=input_bytes).ok
    assert judge(_gpu(380.01), "nvidia", input_bytes=input_bytes).problem == (
        "part of the model is on the CPU: 380 MiB of weights; it needs an NVIDIA GPU (CUDA)"
    )
    # Without the input layer's size, the slack alone.
    assert judge(_gpu(64.0), "nvidia", input_bytes=None).ok
    assert not judge(_gpu(64.01), "nvidia", input_bytes=None).ok


def test_every_part_on_the_cpu_is_named_in_one_refusal() -> None:
    verdict = judge(_gpu(20000.0, cpu_kv=512.0, offloaded=(30, 46)), "nvidia", input_bytes=int(380 * MIB))
    assert verdict.problem == (
        "part of the model is on the CPU: 20000 MiB of weights, 512 MiB of KV cache, 16 of 46 layers; "
        "it needs an NVIDIA GPU (CUDA)"
    )


def test_the_worker_named_is_the_one_that_holds_nothing_and_the_fix_says_where_to_look() -> None:
    placement = Placement(
        (
            DeviceUse("RPC0", "10.0.0.2:50052", model_mib=50000.0),
            DeviceUse("RPC1", "10.0.0.3:50052"),
            DeviceUse("CUDA0", "NVIDIA GB10", model_mib=55000.0, kv_mib=1200.0),
            DeviceUse("CPU", model_mib=300.0),
        ),
        (46, 46),
    )
    verdict = judge(placement, "nvidia", input_bytes=int(300 * MIB), rpc=["10.0.0.2:50052", "10.0.0.3:50052"])
    assert verdict.placement is placement
    assert verdict.problem == "RPC worker 10.0.0.3:50052 holds none of the model"
    assert verdict.fix == (
        "llama.cpp splits the layers by each device's free memory: check the worker's with "
        "'orchestrator worker status' on that machine"
    )
    ok = judge(placement, "nvidia", input_bytes=int(300 * MIB), rpc=["10.0.0.2:50052"])
    assert ok.ok and ok.placement is placement
