"""Where the Dockerfiles and scripts are: inside the installed wheel, or in the source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def asset_root() -> Path:
    bundled = _PACKAGE / "assets"
    return bundled if (bundled / "images").is_dir() else _PACKAGE.parent


def asset(relative: str) -> Path:
    return asset_root() / relative
