"""A model's architecture as llama.cpp sizes memory from it: read from a GGUF, or published before the
file is here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """The numbers llama.cpp sizes its KV cache and compute graph from."""

    name: str
    n_layer: int
    n_embd: int
    n_vocab: int
    context_length: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    key_length: int
    value_length: int
    sliding_window: int
    swa_layers: tuple[bool, ...]
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff: int = 0
    n_ff_exp: int = 0

    @property
    def swa_layer_count(self) -> int:
        return sum(self.swa_layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        values = dict(data)
        for key in ("n_head", "n_head_kv", "swa_layers"):
            values[key] = tuple(values[key])
        return cls(**values)
