"""What every build of llama.cpp is handed, in a container or on the host: the cmake flags as one
argument, where the source comes from, and the digest that says whether an existing build is the same."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.core.families import CMakeFlag
from orchestrator.core.sources import Source


def cmake_args(flags: Sequence[CMakeFlag]) -> str:
    return " ".join(f"-D{name}={value}" for name, value in flags)


def plan_digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def source_build_args(source: Source) -> dict[str, str]:
    return {
        "LLAMA_SOURCE_KIND": source.kind,
        "LLAMA_GIT_URL": source.url or "",
        "LLAMA_GIT_COMMIT": source.commit or "",
        "LLAMA_SOURCE_SUBDIR": source.subdir,
    }
