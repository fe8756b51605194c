"""Quantising a model with llama.cpp's own tools, pure: the types llama-quantize knows, how large its
result will be, whether a calibration text is one, and the two commands (llama-imatrix, llama-quantize).

The type names and each one's main tensor type are tools/quantize/quantize.cpp's QUANT_OPTIONS and
src/llama-quant.cpp's llama_ftype_get_default_type at the pinned commit (0c1e570); the block sizes are
gguf-py's GGML_QUANT_SIZES (a unit test holds them to it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from orchestrator.core.models import is_projector_name

# (elements per block, bytes per block) of each tensor type a quantisation writes most of its weights in.
_BLOCKS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "F32": (1, 4),
        "F16": (1, 2),
        "BF16": (1, 2),
        "Q1_0": (128, 18),
        "Q4_0": (32, 18),
        "Q4_1": (32, 20),
        "Q5_0": (32, 22),
        "Q5_1": (32, 24),
        "Q8_0": (32, 34),
        "MXFP4": (32, 17),
        "Q2_K": (256, 84),
        "Q3_K": (256, 110),
        "Q4_K": (256, 144),
        "Q5_K": (256, 176),
        "Q6_K": (256, 210),
        "IQ2_XXS": (256, 66),
        "IQ2_XS": (256, 74),
        "IQ2_S": (256, 82),
        "IQ3_XXS": (256, 98),
        "IQ3_S": (256, 110),
        "IQ1_S": (256, 50),
        "IQ1_M": (256, 56),
        "IQ4_NL": (32, 18),
        "IQ4_XS": (256, 136),
        "TQ1_0": (256, 54),
        "TQ2_0": (256, 66),
    }
)

# llama-quantize's type names (case-insensitive there) and the tensor type each writes most weights in.
# Q2_0 is not in gguf-py's table; QUANT_OPTIONS gives it as 2.25 bits per weight.
QUANT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "Q1_0": "Q1_0",
        "Q2_0": "2.25",
        "Q4_0": "Q4_0",
        "Q4_1": "Q4_1",
        "MXFP4_MOE": "MXFP4",
        "Q5_0": "Q5_0",
        "Q5_1": "Q5_1",
        "IQ2_XXS": "IQ2_XXS",
        "IQ2_XS": "IQ2_XS",
        "IQ2_S": "IQ2_XS",
        "IQ2_M": "IQ2_S",
        "IQ1_S": "IQ1_S",
        "IQ1_M": "IQ1_M",
        "TQ1_0": "TQ1_0",
        "TQ2_0": "TQ2_0",
        "Q2_K": "Q2_K",
        "Q2_K_S": "Q2_K",
        "IQ3_XXS": "IQ3_XXS",
        "IQ3_S": "IQ3_S",
        "IQ3_M": "IQ3_S",
        "Q3_K": "Q3_K",
        "IQ3_XS": "IQ3_S",
        "Q3_K_S": "Q3_K",
        "Q3_K_M": "Q3_K",
        "Q3_K_L": "Q3_K",
        "IQ4_NL": "IQ4_NL",
        "IQ4_XS": "IQ4_XS",
        "Q4_K": "Q4_K",
        "Q4_K_S": "Q4_K",
        "Q4_K_M": "Q4_K",
        "Q5_K": "Q5_K",
        "Q5_K_S": "Q5_K",
        "Q5_K_M": "Q5_K",
        "Q6_K": "Q6_K",
        "Q8_0": "Q8_0",
        "F16": "F16",
        "BF16": "BF16",
        "F32": "F32",
        "COPY": "F32",
    }
)

# Where llama-quantize stops without an importance matrix (tensor_requires_imatrix at the pin): these
# types' main tensors need one, and Q2_K_S's Q2_K tensors.
NEEDS_IMATRIX = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "IQ3_XXS", "Q2_K_S"})
# The tensors llama-quantize keeps at a larger type than the main one (the output layer, attention V in
# the K mixes, norms in F32) make a file larger than its main type alone: room kept for them.
MIX_HEADROOM = 1.10
GIB = 1 << 30
# llama-imatrix and llama-perplexity take the text in chunks of this many tokens (their default -c).
CHUNK_TOKENS = 512


class UnknownType(ValueError):
    pass


def canonical_type(name: str) -> str:
    """The type as llama-quantize spells it; UnknownType names the ones it knows."""
    for known in QUANT_TYPES:
        if known.lower() == name.strip().lower():
            return known
    raise UnknownType(
        f"llama-quantize knows no type {name!r}; choose one of: {', '.join(QUANT_TYPES)} "
        "(Q4_K_S is the publisher's)"
    )


def bits_per_weight(quant_type: str) -> float:
    main = QUANT_TYPES[canonical_type(quant_type)]
    if main in _BLOCKS:
        elements, size = _BLOCKS[main]
        return size * 8 / elements
    return float(main)


def output_bytes(parameters: int, quant_type: str) -> int:
    """What the quantised file will hold, at most: every weight at the main type, plus the mix's headroom."""
    return int(parameters * bits_per_weight(quant_type) / 8 * MIX_HEADROOM) + (64 << 20)


@dataclass(frozen=True)
class Source:
    """The file to quantise, as read from its header."""

    path: Path
    parameters: int
    file_bytes: int
    # The largest tensor's bytes: llama-quantize holds one tensor and its result at a time.
    largest_tensor: int
    # Its tensors are already quantised (not F32/F16/BF16): quantising again loses more than from the
    # full-precision file, and llama-quantize must be told it is meant.
    quantised: bool
    architecture: str


def calibration_problem(data: bytes, name: str) -> str | None:
    """Why this file cannot be a calibration text (None: it can)."""
    if not data.strip():
        return f"the calibration file {name} is empty; give a text of a few thousand words"
    if b"\0" in data[: 1 << 20]:
        return f"the calibration file {name} is binary (it holds NUL bytes); give a plain UTF-8 text"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the calibration file {name} is not UTF-8 text ({exc.reason} at byte {exc.start}); give a plain text"
    return None


def disk_problem(free: int, need: int, where: Path) -> str | None:
    if free >= need:
        return None
    return (
        f"{where} has {free / GIB:.1f} GiB free but the quantised file needs about {need / GIB:.1f} GiB; "
        "free space there or pass --models-dir on a larger disk"
    )


def memory_problem(source: Source, usable: int | None, with_imatrix: bool) -> str | None:
    """llama-quantize reads tensor by tensor; llama-imatrix runs the whole model over the text, and a model
    larger than memory is read from disk again for every chunk."""
    if usable is None:
        return None
    if with_imatrix and source.file_bytes > usable:
        return (
            f"computing an importance matrix runs the whole model: {source.path.name} is "
            f"{source.file_bytes / GIB:.1f} GiB and {usable / GIB:.1f} GiB is usable; quantise it to Q8_0 "
            "first ('orchestrator quantize --type Q8_0') and compute the matrix from that, or pass --imatrix FILE"
        )
    need = 3 * source.largest_tensor
    if need > usable:
        return (
            f"llama-quantize holds the largest tensor ({source.largest_tensor / GIB:.1f} GiB) with its "
            f"result; {usable / GIB:.1f} GiB is usable: free memory first"
        )
    return None


def imatrix_args(source: str, calibration: str, out: str, chunks: int | None) -> tuple[str, ...]:
    return (
        "llama-imatrix",
        "-m", source,
        "-f", calibration,
        "-o", out,
        "-c", str(CHUNK_TOKENS),
        *(("--chunks", str(chunks)) if chunks else ()),
    )  # fmt: skip


def quantize_args(
    source: str, out: str, quant_type: str, *, imatrix: str | None, requantise: bool
) -> tuple[str, ...]:
    return (
        "llama-quantize",
        *(("--allow-requantize",) if requantise else ()),
        *(("--imatrix", imatrix) if imatrix else ()),
        source,
        out,
        canonical_type(quant_type),
    )


def source_problem(name: str) -> str | None:
    """A file llama-quantize is not given: a vision projector (a "clip" GGUF, which llama-quantize at the
    pin does not load). An MTP file given with --from is quantised as asked; one beside the model is not."""
    if is_projector_name(name):
        return (
            f"{name} is a vision projector: llama-quantize (pinned llama.cpp) quantises language models only; "
            "serve the projector as published and give the model's own GGUF with --from"
        )
    return None


def output_name(source: Path, quant_type: str) -> str:
    """The quantised file's name: the source's stem, less the type it ends with, and the new type."""
    stem = source.name.removesuffix(".gguf").split("-00001-of-")[0]
    lowered = stem.lower()
    ending = next(
        (
            len(known) + 1
            for known in sorted(QUANT_TYPES, key=len, reverse=True)
            if any(lowered.endswith(sep + known.lower()) for sep in ".-_")
        ),
        0,
    )
    return f"{stem[: len(stem) - ending]}-{canonical_type(quant_type)}.gguf"
