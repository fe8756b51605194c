"""The image lock that ships with the package (what CI pushed, by digest) and the record of images pulled
here and found to be their plan's: a pulled image carries CI's build recipe, not this machine's, so the
record is what says it is up to date."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.core.published import ImageLock, parse_lock
from orchestrator.errors import ConfigError
from orchestrator.files import write_atomic

PACKAGED_LOCK = Path(__file__).resolve().parents[1] / "images.lock.json"


def read_lock(path: Path | None) -> ImageLock:
    lock = path or PACKAGED_LOCK
    try:
        text = lock.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the image lock {lock} ({exc.strerror}); give an existing file"
        ) from None
    return parse_lock(text, str(lock))


def _record(data_dir: Path) -> Path:
    return data_dir / "images" / "pulled.json"


def _records(data_dir: Path) -> dict[str, dict[str, str]]:
    path = _record(data_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(
            f"{path} is not the record of pulled images this version writes; move it aside (images pulled "
            "before are then checked again or built)"
        )
    return data


def remember_pulled(data_dir: Path, tag: str, image_id: str, reference: str, digest: str | None) -> None:
    records = _records(data_dir)
    records[tag] = {"image_id": image_id, "reference": reference, "digest": digest or ""}
    write_atomic(_record(data_dir), json.dumps(records, indent=2, sort_keys=True) + "\n")


def was_pulled(data_dir: Path, tag: str, image_id: str | None) -> bool:
    """Whether the image under tag is the one pulled and checked here (the same image id)."""
    return image_id is not None and _records(data_dir).get(tag, {}).get("image_id") == image_id
