"""What `doctor` (and the owner's report) judge, probed once: the host, Docker for container targets, the
disk, each RPC worker and the link to it, the image's labels."""

from __future__ import annotations

import shutil

from orchestrator.app.steps.context import Executors
from orchestrator.core.doctor import DoctorFacts, WorkerFacts
from orchestrator.core.plan import Plan
from orchestrator.core.rpc import Endpoint
from orchestrator.executors.host import Host
from orchestrator.executors.images import DRIVER_LABEL, RPC_PROTOCOL_LABEL


def doctor_facts(plan: Plan, ex: Executors) -> DoctorFacts:
    """Everything `doctor` judges, probed once: the host, Docker (for container targets), the disk."""
    folder = plan.model.path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    image = plan.container.image if plan.container else None
    engine = ex.engine.versions() if plan.runtime == "container" else None
    # The image's labels only from an engine that answers: doctor reports a missing one, it never trips on it.
    reachable = engine is not None and engine.error is None
    labels = (ex.engine.image_labels(image) or {}) if image and reachable else {}
    return DoctorFacts(
        host=plan.inputs.facts,
        engine=engine,
        disk_free_bytes=shutil.disk_usage(folder).free if folder.exists() else None,
        disk_path=str(folder),
        workers=tuple(_worker_facts(ex.host, endpoint) for endpoint in plan.rpc),
        head_protocol=labels.get(RPC_PROTOCOL_LABEL),
        image_driver=labels.get(DRIVER_LABEL),
    )


def _worker_facts(host: Host, endpoint: Endpoint) -> WorkerFacts:
    hello = host.rpc_hello(endpoint)
    link = host.rpc_link(endpoint)
    return WorkerFacts(
        str(endpoint),
        hello.version_text if hello.version else None,
        hello.problem,
        link.interface,
        link.speed_mbps,
        link.mtu,
    )
