"""The hub's listing and a pull's repository name are not trusted as paths (models.hub.stays_inside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.models import stays_inside
from orchestrator.errors import UsageError
from orchestrator.models.hub import PullFailed, PullPlan, RemoteFile, parse_ref


@pytest.mark.parametrize(
    "name", ["a.gguf", "Q4_K_S/Step-3.7-flash-Q4_K_S-00001-of-00003.gguf", "x/y/z-Q8_0.gguf", "..a.gguf"]
)
def test_names_inside_the_repository_are_kept(name: str) -> None:
    assert stays_inside(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/x.gguf",
        "../x.gguf",
        "a/../../x.gguf",
        "a/./x.gguf",
        "a//x.gguf",
        "a\\..\\x.gguf",
        "a\0.gguf",
    ],
)
def test_names_that_leave_or_bend_the_folder_are_refused(name: str) -> None:
    assert not stays_inside(name)


def test_a_plan_never_places_a_file_outside_its_destination(tmp_path: Path) -> None:
    plan = PullPlan("o/r", "c", (RemoteFile("m-Q4_K_S.gguf", 1, None),), tmp_path)
    assert plan.local(plan.files[0]) == tmp_path / "m-Q4_K_S.gguf"
    with pytest.raises(PullFailed, match="leaves the repository"):
        plan.local(RemoteFile("../mmproj-x-f16.gguf", 1, None))


@pytest.mark.parametrize("ref", ["../..", "./x", "owner/.."])
def test_a_repository_name_with_a_dot_step_is_refused(ref: str) -> None:
    with pytest.raises(UsageError, match="owner/name"):
        parse_ref(ref)


def test_the_pull_fetches_companions_then_later_parts_then_the_first_part() -> None:
    """The first part makes a model found: it comes last, so a pull cut short leaves none to serve."""
    from orchestrator.models.pull import _fetch_order

    names = ["Q/m-00001-of-00003.gguf", "Q/m-00002-of-00003.gguf", "Q/m-00003-of-00003.gguf"]
    files = [RemoteFile(n, 1, None) for n in names] + [
        RemoteFile("Step3.7-flash-mtp-Q8_0.gguf", 1, None),
        RemoteFile("mmproj-m-f16.gguf", 1, None),
    ]
    assert [f.name for f in _fetch_order(files)] == [
        "Step3.7-flash-mtp-Q8_0.gguf",
        "mmproj-m-f16.gguf",
        names[1],
        names[2],
        names[0],
    ]
