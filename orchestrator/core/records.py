"""Records the tool reads back from its own files (models.json, deployments): each field of the type its
dataclass declares, checked once as it is read, so a file of the wrong shape is one line naming the file
rather than a crash wherever a field is first used."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any


def check_fields(record: object) -> None:
    """Raise TypeError naming the first field of record whose value is not of its declared type."""
    hints = typing.get_type_hints(type(record))
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, field.name)
        if not _is_a(value, hints[field.name]):
            raise TypeError(f"{field.name} is {value!r}, not {_name(hints[field.name])}")


def _is_a(value: object, kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_a(value, option) for option in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is Any:
        return True
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return isinstance(value, tuple) and all(_is_a(v, item) for v in value)
    if origin is not None and issubclass(origin, Mapping):
        return isinstance(value, Mapping)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, kind):
            return False
        check_fields(value)
        return True
    return isinstance(value, kind)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
