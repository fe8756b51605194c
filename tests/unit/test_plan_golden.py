"""Every target x profile plan against a reviewed golden file. UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.core.catalogue import CATALOGUE
from tests.planning import fixed_plan

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = [(t.name, p.name) for t in CATALOGUE.values() for p in t.profiles]


@pytest.mark.parametrize(("target", "profile"), CASES)
def test_plan_matches_golden(target: str, profile: str) -> None:
    produced = json.dumps(fixed_plan(target, profile).to_dict(), indent=2, sort_keys=True) + "\n"
    path = GOLDEN / f"plan-{target}-{profile}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(produced)
    assert path.exists(), f"no golden file {path.name}; run UPDATE_GOLDEN=1 pytest and review it"
    assert produced == path.read_text()


def test_every_golden_file_has_a_case() -> None:
    expected = {f"plan-{t}-{p}.json" for t, p in CASES}
    assert {p.name for p in GOLDEN.glob("plan-*.json")} == expected
