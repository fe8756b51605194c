"""The memory estimate against what llama.cpp itself allocates, in the cpu image."""

from __future__ import annotations

import pytest

from orchestrator.core.memory import MIB, Workload, estimate
from orchestrator.models.gguf import read_model
from tests.integration import needs_docker

pytestmark = [needs_docker]


@pytest.mark.docker
@pytest.mark.slow
def test_estimate_matches_what_llama_cpp_allocates(cpu_image: object) -> None:
    """The real thing: gemma loaded by llama-batched-bench in the cpu image at a long context, where the
    attention masks rather than the logits set the compute buffer."""
    from orchestrator.core.memory import parse_load_log
    from tests.assets import demo_model
    from tests.integration import docker

    model = demo_model()
    work = Workload(ctx=65536, batch=2048, ubatch=512)
    done = docker(
        "run", "--rm", "-v", f"{model.parent}:/models:ro", str(cpu_image.tag),
        "llama-batched-bench", "-m", f"/models/{model.name}", "-c", str(work.ctx), "-b", str(work.batch),
        "-ub", str(work.ubatch), "-fa", "on", "-npp", "8", "-ntg", "1", "-npl", "1", "-t", "2", "-v",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    reported = parse_load_log((done.stdout + done.stderr).splitlines())
    gemma = read_model(model)
    est = estimate(gemma.arch, gemma.weights_bytes, work)
    assert est.kv / MIB == reported.kv and est.kv_swa / MIB == reported.kv_swa
    assert abs(est.compute / MIB / reported.compute - 1) < 0.05
