"""A model's architecture as llama.cpp sizes memory from it: read from a GGUF, or published before the
file is here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
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
    # The MTP ("nextn") blocks after the trunk's layers: their KV heads and whether each slides.
    n_nextn: int = 0
    nextn_head_kv: tuple[int, ...] = ()
    nextn_swa: tuple[bool, ...] = ()

    @property
    def swa_layer_count(self) -> int:
        return sum(self.swa_layers)

    def heads(self) -> Architecture:
        """The MTP blocks alone, as the draft context sizes its KV cache and graph from them."""
        return replace(
            self,
            n_layer=self.n_nextn,
            n_head=self.n_head[:1] * self.n_nextn,
            n_head_kv=self.nextn_head_kv,
            swa_layers=self.nextn_swa,
            n_nextn=0,
            nextn_head_kv=(),
            nextn_swa=(),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        values = dict(data)
        for key in ("n_head", "n_head_kv", "swa_layers", "nextn_head_kv", "nextn_swa"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)
