"""Who a plan's containers run as, and what that user can reach: the image's unprivileged user reads the
model (its folder and file must let others in), and a tool's container writes its one output folder as
the owner's own user (or, for root's runs, as the image's user, given that folder)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.core.plan import Plan
from orchestrator.core.plan.layout import CONTAINER_UID
from orchestrator.errors import UsageError


def writer_of(folder: Path) -> str:
    """Who a tool's container runs as to write into folder: the owner's own user, never root; for root's
    runs the image's unprivileged user, given the folder."""
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        return f"{uid}:{gid}"
    os.chown(folder, CONTAINER_UID, CONTAINER_UID)
    return f"{CONTAINER_UID}:{CONTAINER_UID}"


def readable_in_container(plan: Plan) -> None:
    """The container runs as an unprivileged user of its own: the folders mounted read-only must let
    others in, and the files it opens must let others read, or llama-server fails to load in a loop."""
    wanted = [plan.model.path] + ([plan.speculation.sidecar] if plan.speculation.sidecar else [])
    wanted += [plan.model.projector.path] if plan.model.projector else []
    for path in wanted:
        # A file from another folder is mounted alone (core.plan.container): its folder stays closed.
        alone = path.parent != plan.model.directory
        checks = [(path.parent, stat.S_IXOTH, "o+rx")] if not alone else []
        for item, bit, fix in [*checks, (path, stat.S_IROTH, "o+r")]:
            try:
                mode = item.stat().st_mode
            except OSError:
                continue
            if not mode & bit:
                raise UsageError(
                    f"the server's container runs as uid {CONTAINER_UID} and cannot read {item}: "
                    f"chmod {fix} {item} (the model stays read-only)"
                )
