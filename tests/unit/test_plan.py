from __future__ import annotations

from pathlib import Path

from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.sources import Source
from tests.planning import fixed_plan


def test_cuda_image_targets_gb10_and_starts_without_a_gpu() -> None:
    plan = fixed_plan("dgx-spark", "default")
    assert isinstance(plan.build, ImageBuild)
    args = plan.build.build_args
    assert "-DCMAKE_CUDA_ARCHITECTURES=121a-real" in args["CMAKE_ARGS"]
    assert "-DGGML_BACKEND_DL=ON" in args["CMAKE_ARGS"] and "-DGGML_NATIVE=OFF" in args["CMAKE_ARGS"]
    assert args["BUILD_BASE"].startswith("nvidia/cuda:13.") and plan.build.platform == "linux/arm64"
    assert plan.build.tag == "step-flash-llama:cuda-dgx-spark-0c1e570"
    assert fixed_plan("dgx-spark", "long-context").build.tag == "step-flash-llama:cuda-dgx-spark-mmq-0c1e570"


def test_local_bases_and_local_source() -> None:
    src = Source(
        name="local", kind="local", path=__import__("pathlib").Path("/src/llama.cpp"), revision="tree-abc"
    )
    plan = fixed_plan("cpu", "default", {"bases": "local"}, source=src)
    assert isinstance(plan.build, ImageBuild)
    assert plan.build.build_args["BUILD_BASE"] == "step-flash-base:vulkan-build"
    assert plan.build.build_args["LLAMA_SOURCE_KIND"] == "local"
    assert plan.build.source_dir == "/src/llama.cpp"
    assert plan.build.tag.endswith("vulkan-cpu-tree-abc")


def test_compose_is_locked_down() -> None:
    plan = fixed_plan("cpu", "default")
    assert plan.compose is not None
    service = plan.compose["services"]["llama-server"]
    proxy = plan.compose["services"]["proxy"]
    # Only the proxy is published; llama-server answers on its container's network alone.
    assert "ports" not in service and proxy["ports"] == ["127.0.0.1:8080:8443"]
    assert proxy["image"] == service["image"] and proxy["read_only"] is True
    assert proxy["cap_drop"] == ["ALL"] and not proxy["user"].startswith("0")
    assert service["volumes"][0]["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and service["security_opt"] == ["no-new-privileges:true"]
    assert not service["user"].startswith("0")
    assert "privileged" not in service
    # The demo model brings its own chat template (Jinja); a base model without one is given a named one.
    assert "--jinja" in service["command"] and "--chat-template" not in service["command"]
    from orchestrator.core.plan import with_model
    from orchestrator.models.local import resolve_model

    given = resolve_model(
        Path("/data/models/demo/gemma-3-270m-Q4_K_M.gguf"), "smollm2-135m-instruct", Path("/m")
    )
    gemma = with_model(plan, given)
    at = gemma.server.argv.index("--no-jinja")
    assert gemma.server.argv[at : at + 3] == ("--no-jinja", "--chat-template", "gemma")


def test_exposed_server_reads_key_from_a_secret_file() -> None:
    plan = fixed_plan("cpu", "default", {"host": "0.0.0.0", "api_key_file": "/etc/step/key"})
    assert plan.compose is not None
    service = plan.compose["services"]["llama-server"]
    assert plan.compose["services"]["proxy"]["ports"] == ["0.0.0.0:8080:8443"]
    assert plan.compose["secrets"] == {
        "api_key": {"file": "/data/secrets/step-flash/api_key"},
        "tls_certificate": {"file": "/data/secrets/step-flash/tls_certificate"},
        "tls_key": {"file": "/data/secrets/step-flash/tls_key"},
    }
    assert plan.publish.scheme == "https" and plan.endpoint.startswith("https://")
    assert plan.api_key_file is not None and str(plan.api_key_file) == "/etc/step/key"
    assert service["command"][-2:] == ["--api-key-file", "/run/secrets/api_key"]
    assert all("key" not in k.lower() for k in service["environment"])


def test_devices_per_target() -> None:
    ryzen = fixed_plan("ryzen-ai-max", "default").compose
    assert ryzen is not None
    assert ryzen["services"]["llama-server"]["devices"] == ["/dev/dri:/dev/dri"]
    assert ryzen["services"]["llama-server"]["group_add"] == [991, 44]
    dgx = fixed_plan("dgx-spark", "default").compose
    assert dgx is not None
    assert (
        dgx["services"]["llama-server"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"]
        == "nvidia"
    )


def test_mac_is_native_and_overrides_apply() -> None:
    plan = fixed_plan("mac-studio", "default", {"ctx_size": 8192, "threads": 12, "port": 9000})
    assert plan.runtime == "native" and plan.compose is None
    assert isinstance(plan.build, NativeBuild)
    assert plan.server.argv[0].endswith("/bin/llama-server")
    assert plan.build.env["CMAKE_ARGS"].startswith("-DCMAKE_BUILD_TYPE=Release -DGGML_METAL=ON")
    assert "-c 8192" in plan.server.shell() and "-t 12" in plan.server.shell()
    assert plan.endpoint == "http://127.0.0.1:9000/v1"


def test_memory_verdict() -> None:
    assert "fit" in fixed_plan("dgx-spark", "default").memory.verdict
    assert fixed_plan("cpu", "default").memory.usable_gib == round(23000000 / 2**20, 1)


def test_arm64_cpu_image_is_cross_compiled_on_amd64() -> None:
    plan = fixed_plan("cpu", "default", {"platform": "linux/arm64", "bases": "local"}, host="cpu-debian")
    build = plan.build
    assert isinstance(build, ImageBuild) and build.cross
    assert (build.platform, build.build_platform) == ("linux/arm64", "linux/amd64")
    args = build.build_args
    # The build base is this machine's; the runtime base the image's.
    assert (args["BUILD_BASE"], args["RUNTIME_BASE"]) == (
        "step-flash-base:vulkan-build",
        "step-flash-base:vulkan-runtime-arm64",
    )
    assert args["BUILD_PACKAGES"].split()[-2:] == ["crossbuild-essential-arm64", "libvulkan-dev:arm64"]
    for flag in (
        "-DCMAKE_SYSTEM_NAME=Linux",
        "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
        "-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc",
        "-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++",
        "-DCMAKE_LIBRARY_ARCHITECTURE=aarch64-linux-gnu",
    ):
        assert flag in args["CMAKE_ARGS"].split()
    assert "-DGGML_CPU_ALL_VARIANTS=ON" in args["CMAKE_ARGS"]
    assert build.tag.endswith("-arm64-0c1e570")


def test_no_cross_compiling_on_the_images_own_architecture_or_for_cuda() -> None:
    native = fixed_plan("cpu", "default", {"platform": "linux/arm64", "bases": "local"}, host="dgx-spark")
    assert isinstance(native.build, ImageBuild) and not native.build.cross
    assert native.build.build_args["BUILD_BASE"] == "step-flash-base:vulkan-build-arm64"
    assert "CMAKE_SYSTEM_NAME" not in native.build.build_args["CMAKE_ARGS"]
    # CUDA has no cross packages: its arm64 image is built under QEMU on amd64.
    spark = fixed_plan("dgx-spark", "default", {"bases": "local"}, host="cpu-debian")
    assert isinstance(spark.build, ImageBuild) and not spark.build.cross
    assert spark.build.build_platform == "linux/arm64"
    assert spark.build.build_args["BUILD_BASE"] == "step-flash-base:cuda-build-arm64"
    assert "crossbuild" not in spark.build.build_args["BUILD_PACKAGES"]
    # The amd64 image on amd64 is built as it always was.
    amd64 = fixed_plan("cpu", "default", host="cpu-debian").build
    assert isinstance(amd64, ImageBuild) and not amd64.cross and amd64.build_platform == "linux/amd64"
    assert "CMAKE_SYSTEM_NAME" not in amd64.build_args["CMAKE_ARGS"]
    assert "crossbuild" not in amd64.build_args["BUILD_PACKAGES"]


def test_the_cpu_target_takes_the_architecture_of_its_machine() -> None:
    # "Any Linux machine": an arm64 one gets an arm64 image built natively, not an amd64 one to emulate.
    arm64 = fixed_plan("cpu", "default", host="dgx-spark").build
    assert isinstance(arm64, ImageBuild) and (arm64.platform, arm64.cross) == ("linux/arm64", False)
    assert arm64.tag.endswith("vulkan-cpu-arm64-0c1e570")
    # --platform still decides; the other way round it is cross-compiled too.
    amd64 = fixed_plan("cpu", "default", {"platform": "linux/amd64"}, host="dgx-spark").build
    assert isinstance(amd64, ImageBuild) and amd64.cross and amd64.build_platform == "linux/arm64"
    assert "crossbuild-essential-amd64 libvulkan-dev:amd64" in amd64.build_args["BUILD_PACKAGES"]
    assert "-DCMAKE_CXX_COMPILER=x86_64-linux-gnu-g++" in amd64.build_args["CMAKE_ARGS"]
    # Targets of one machine keep theirs: the Ryzen image is amd64 wherever it is planned.
    ryzen = fixed_plan("ryzen-ai-max", "default", host="dgx-spark").build
    assert isinstance(ryzen, ImageBuild) and ryzen.platform == "linux/amd64" and ryzen.cross


def _flag(argv: tuple[str, ...] | list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_the_reply_cap_follows_the_setting_over_the_targets() -> None:
    """n_predict: the target's cap by default, the setting's where given, none at 0."""
    from orchestrator.core.catalogue import CATALOGUE

    target_cap = CATALOGUE["dgx-spark"].n_predict
    assert target_cap > 0
    assert _flag(fixed_plan("dgx-spark", "default").server.argv, "--n-predict") == str(target_cap)
    assert _flag(fixed_plan("dgx-spark", "default", {"n_predict": 77}).server.argv, "--n-predict") == "77"
    assert "--n-predict" not in fixed_plan("dgx-spark", "default", {"n_predict": 0}).server.argv
