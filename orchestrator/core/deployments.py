"""Deployments: each server `up` (or `upgrade`, or `rollback`) started, with what it ran (the image and
its id, the source commit, the plan's digest, the model's identity, the compose file and the proxy's
configuration) and the figures it was validated with; which one serves now, which one `rollback` returns
to, and which images are kept. Pure; orchestrator.executors.deployment_history keeps them on disk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.core.records import check_fields
from orchestrator.errors import UsageError

# The images of the last few deployments are kept: rollback needs them (we never remove an image).
KEEP_IMAGES = 3


@dataclass(frozen=True)
class Deployment:
    id: int
    when: str
    # up, upgrade, or rollback (of another deployment)
    via: str
    project: str
    image: str
    image_id: str | None
    source: str
    source_commit: str | None
    plan_digest: str | None
    model: str
    model_identity: str | None
    endpoint: str
    # What it was validated with: ready in seconds, the devices, the greedy answer, decode tokens/s.
    figures: Mapping[str, Any] = field(default_factory=dict)
    # What it ran, to start it again: the compose file's text and the proxy's configuration.
    compose: str = ""
    proxy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Deployment:
        """A deployment as a history file holds it; TypeError names what is of the wrong shape."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a deployment is a JSON object, not {type(data).__name__}")
        known = {f for f in Deployment.__dataclass_fields__}
        deployment = Deployment(**{k: v for k, v in data.items() if k in known})
        check_fields(deployment)
        return deployment

    def summary(self) -> dict[str, Any]:
        """What `history` and `status` show (not the compose text)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("compose", "proxy")}


def next_id(history: Sequence[Deployment]) -> int:
    return max((d.id for d in history), default=0) + 1


def current(history: Sequence[Deployment], running_compose: str | None) -> Deployment | None:
    """The deployment whose compose file is the one running (the newest such), None: none recorded."""
    if running_compose is None:
        return None
    for deployment in reversed(history):
        if deployment.compose == running_compose:
            return deployment
    return None


def rollback_target(history: Sequence[Deployment], now: Deployment | None, wanted: int | None) -> Deployment:
    """The named deployment, or the one before the current (a different server than the current's)."""
    if wanted is not None:
        for deployment in history:
            if deployment.id == wanted:
                if now is not None and deployment.compose == now.compose:
                    raise UsageError(f"deployment {wanted} is what serves now; nothing to roll back to")
                return deployment
        known = ", ".join(str(d.id) for d in history) or "none"
        raise UsageError(f"no deployment {wanted}; 'orchestrator history' lists them (ids: {known})")
    if now is None:
        raise UsageError("no recorded deployment serves now; 'orchestrator history' lists them: rollback ID")
    earlier = [d for d in history if d.id < now.id and d.compose != now.compose]
    if not earlier:
        raise UsageError(
            f"deployment {now.id} is the first one recorded; there is nothing earlier to go back to"
        )
    return earlier[-1]


def kept_images(history: Sequence[Deployment]) -> list[str]:
    """The images of the last KEEP_IMAGES distinct deployments' images, newest first."""
    kept: list[str] = []
    for deployment in reversed(history):
        if deployment.image not in kept:
            kept.append(deployment.image)
        if len(kept) == KEEP_IMAGES:
            break
    return kept


def removable_images(history: Sequence[Deployment]) -> list[str]:
    """Images only older deployments used: listed for the owner to remove (docker image rm), never
    removed by us."""
    kept = set(kept_images(history))
    return list(dict.fromkeys(d.image for d in history if d.image not in kept))
