"""Deployments as the commands that start servers record them (orchestrator.core.deployments): what the
server runs, read from the compose file and the engine once it is up, with its validation figures; and
what serves now, for the commands that replace it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from orchestrator.app.steps.context import Executors
from orchestrator.core.deployments import Deployment, current, next_id
from orchestrator.core.plan import Plan
from orchestrator.core.plan.compose import proxy_config_source
from orchestrator.core.plan.image import ImageBuild
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.executors.deployment_history import read_history, record
from orchestrator.executors.host import ServerRequestFailed
from orchestrator.executors.server_state import Runtime, api_key

# The greedy prompt every new deployment answers, and the decode figure it is held to.
CHECK_PROMPT = "What is the capital of France? Answer in one sentence."
CHECK_TOKENS = 64


class CheckFailed(OrchestratorError):
    """A new deployment answered, but not as well as it must: which check, with its figures."""


def running_compose(plan: Plan) -> str | None:
    file = plan.compose_file
    return file.read_text() if file is not None and file.is_file() else None


def recorded(plan: Plan, ex: Executors, via: str, figures: Mapping[str, Any]) -> Deployment | None:
    """Record the deployment that serves the plan now (a container server: its compose file)."""
    compose = running_compose(plan)
    if compose is None or not isinstance(plan.build, ImageBuild):
        return None
    history = read_history(plan.data_dir, plan.project)
    deployment = Deployment(
        id=next_id(history),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        via=via,
        project=plan.project,
        image=plan.build.tag,
        image_id=ex.engine.image_id(plan.build.tag),
        source=plan.source.describe(),
        source_commit=plan.source.commit or plan.source.revision,
        plan_digest=plan.build.digest,
        model=str(plan.model.path),
        model_identity=plan.model.identity,
        endpoint=plan.endpoint,
        figures=dict(figures),
        compose=compose,
        proxy=_proxy_config(compose),
    )
    record(plan.data_dir, deployment)
    return deployment


def _proxy_config(compose: str) -> str | None:
    """The configuration the deployment's proxy runs with: the file its compose file names."""
    source = proxy_config_source(yaml.safe_load(compose) or {})
    return source.read_text() if source is not None and source.is_file() else None


def serving_now(plan: Plan) -> Deployment | None:
    """The recorded deployment that serves under the plan's name (None: none recorded serves)."""
    return current(read_history(plan.data_dir, plan.project), running_compose(plan))


def record_serving(plan: Plan, ex: Executors, via: str, figures: Mapping[str, Any]) -> Deployment:
    """The container server that serves the plan now, recorded; it runs from its compose file, so one
    that runs without it (the file deleted) was not started by us as it is."""
    deployment = recorded(plan, ex, via, figures)
    if deployment is None:
        raise OrchestratorError(
            f"the server of project {plan.project} runs, but its compose file {plan.compose_file} is gone; "
            "'orchestrator up' starts it again with one"
        )
    return deployment


def serving_deployment(plan: Plan, ex: Executors) -> Deployment:
    """What serves now, as a deployment: the recorded one, or a server started before deployments were
    recorded, recorded now as it runs."""
    return serving_now(plan) or record_serving(plan, ex, "up (found running)", {})


def swapped_image(plan: Plan, what: str) -> ImageBuild:
    """The image a container plan runs: what upgrade and rollback swap, and a native server has none."""
    if not isinstance(plan.build, ImageBuild):
        raise UsageError(f"{what} swaps container servers; a native server is rebuilt with --source and 'up'")
    return plan.build


def running_server(plan: Plan, ex: Executors, what: str) -> Runtime:
    """The runtime of the container server that runs under the plan's name, for a command (what) that
    replaces it; no such server is one line that says how to start one."""
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    swapped_image(plan, what)
    if not runtime.state(plan).running:
        raise UsageError(
            f"no server runs under project {plan.project}: start one with 'orchestrator up' (then {what})"
        )
    return runtime


def greedy_check(plan: Plan, ex: Executors) -> dict[str, Any]:
    """The fixed greedy prompt, answered by the plan's running server: the answer and its decode speed."""
    body = {
        "messages": [{"role": "user", "content": CHECK_PROMPT}],
        "max_tokens": CHECK_TOKENS,
        "temperature": 0,
    }
    began = time.monotonic()
    try:
        answer = ex.host.chat(plan.base_url, api_key(plan), body, trust=plan.trust)
    except ServerRequestFailed as failure:
        raise CheckFailed(f"the greedy prompt got no answer: {failure}") from None
    text = str(((answer.get("choices") or [{}])[0].get("message") or {}).get("content") or "").strip()
    if not text:
        raise CheckFailed("the greedy prompt was answered with no text")
    timings = answer.get("timings") or {}
    return {
        "answer": text[:200],
        "decode_tokens_per_second": round(float(timings.get("predicted_per_second") or 0.0), 2),
        "answered_in_s": round(time.monotonic() - began, 2),
    }
