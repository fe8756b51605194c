"""What a GGUF file (or a split set of them) declares, read with the gguf package, and whether the files on
disk hold all of it. Every problem is an InvalidModel with one line that says what to do."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.core.architecture import Architecture
from orchestrator.core.models import Projector, VisionEncoder
from orchestrator.core.quality import Vocabulary
from orchestrator.core.quantize import Source as QuantSource
from orchestrator.core.speculation import MtpHeads
from orchestrator.errors import InvalidModel
from orchestrator.files import file_key, read_cache, write_cache

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# Tensor types that hold weights at full precision (a file of only these is not quantised).
_FULL_PRECISION = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")

# llama.cpp's per-architecture sliding-window layout when the file does not spell it out:
# (pattern, dense_first) as given to llama_hparams::set_swa_pattern by each model loader.
DEFAULT_SWA_PATTERN: Mapping[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "gpt-oss": (2, False),
    "llama4": (4, False),
    "olmo2": (4, False),
    "exaone4": (4, False),
    "smallthinker": (4, True),
}


@dataclass(frozen=True)
class GgufPart:
    path: Path
    size: int
    version: int
    tensor_count: int
    # Where the last tensor's data ends: a file shorter than this is truncated.
    data_end: int
    tensor_bytes: int
    # Bytes of each tensor by name.
    tensors: Mapping[str, int]
    split_no: int | None
    split_count: int | None
    split_tensors: int | None
    # Weights (elements of every tensor), and whether a weight matrix is quantised (not F32/F16/BF16).
    parameters: int = 0
    quantised: bool = False


@dataclass(frozen=True)
class GgufModel:
    parts: tuple[GgufPart, ...]
    arch: Architecture
    name: str | None

    @property
    def first(self) -> Path:
        return self.parts[0].path

    @property
    def weights_bytes(self) -> int:
        return sum(p.tensor_bytes for p in self.parts)

    @property
    def input_bytes(self) -> int:
        """The tensors outside the layers and the output: the input layer, which llama.cpp keeps on the CPU
        whatever it offloads (token embeddings, their norm, position and type embeddings)."""
        return sum(
            size
            for p in self.parts
            for name, size in p.tensors.items()
            if not name.startswith(("blk.", "output", "rope_"))
        )

    @property
    def mtp(self) -> MtpHeads:
        return mtp_heads(self.arch, {name: size for p in self.parts for name, size in p.tensors.items()})

    @property
    def file_bytes(self) -> int:
        return sum(p.size for p in self.parts)


def split_siblings(first: Path) -> list[Path]:
    """Every part a split set names, present or not; a single file is its own set."""
    match = SPLIT_NAME.match(first.name)
    if match is None:
        return [first]
    count = int(match["count"])
    return [first.with_name(f"{match['stem']}-{no:05d}-of-{count:05d}.gguf") for no in range(1, count + 1)]


def _check_header(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InvalidModel(f"{path} does not exist; give the path of a .gguf file") from None
    except OSError as exc:
        raise InvalidModel(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    if len(head) < 8 or head[:4] != MAGIC:
        raise InvalidModel(
            f"{path} is not a GGUF file (it starts with {head[:4]!r}, not b'GGUF'); "
            "give a .gguf model file, or convert the model with llama.cpp's convert_hf_to_gguf.py"
        )
    version = int.from_bytes(head[4:8], "little")
    if version not in SUPPORTED_VERSIONS:
        raise InvalidModel(
            f"{path} is GGUF version {version}; llama.cpp reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}: convert it again with a current llama.cpp"
        )
    return version


def _reader(path: Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(str(path), "r")
    except (ValueError, IndexError, OverflowError) as exc:
        size = path.stat().st_size
        raise InvalidModel(
            f"{path} is truncated or damaged ({size} bytes; the GGUF reader stopped: {exc}); "
            "download it again ('orchestrator model pull' resumes)"
        ) from None


def _fields(reader: Any) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    for key, field in reader.fields.items():
        # Token tables are large and not needed here.
        if key.startswith("tokenizer.ggml.") and key != "tokenizer.ggml.tokens":
            continue
        if key == "tokenizer.ggml.tokens":
            wanted[key] = len(field.data)
            continue
        wanted[key] = field.contents()
    return wanted


def read_part(path: Path) -> tuple[GgufPart, dict[str, Any]]:
    version = _check_header(path)
    reader = _reader(path)
    size = path.stat().st_size
    tensors = list(reader.tensors)
    data_end = max((int(t.data_offset) + int(t.n_bytes) for t in tensors), default=int(reader.data_offset))
    if data_end > size:
        raise InvalidModel(
            f"{path} is truncated: its tensors end at byte {data_end} but the file has {size}; "
            "download it again ('orchestrator model pull' resumes)"
        )
    fields = _fields(reader)

    def opt_int(key: str) -> int | None:
        value = fields.get(key)
        if value is None:
            return None
        try:
            return int(value)
        except (ValueError, TypeError):
            raise InvalidModel(
                f"{path}: its metadata says {key} is {value!r}, not a number; the file is damaged: fetch it again"
            ) from None

    part = GgufPart(
        path=path,
        size=size,
        version=version,
        tensor_count=len(tensors),
        data_end=data_end,
        tensor_bytes=sum(int(t.n_bytes) for t in tensors),
        tensors={str(t.name): int(t.n_bytes) for t in tensors},
        split_no=opt_int("split.no"),
        split_count=opt_int("split.count"),
        split_tensors=opt_int("split.tensors.count"),
        parameters=sum(int(t.n_elements) for t in tensors),
        # Only the weight matrices count: norms and biases stay F32 in every quantisation.
        quantised=any(len(t.shape) >= 2 and t.tensor_type.name not in _FULL_PRECISION for t in tensors),
    )
    return part, fields


def _check_split(parts: Sequence[GgufPart]) -> None:
    first = parts[0]
    if first.split_count is None:
        if len(parts) > 1:
            raise InvalidModel(f"{first.path} has no split metadata but is named as part of a split set")
        return
    count = first.split_count
    if count != len(parts):
        raise InvalidModel(
            f"{first.path} says the model has {count} parts but its name says {len(parts)}; "
            "the parts come from different downloads: fetch them again"
        )
    for index, part in enumerate(parts):
        if part.split_no != index or part.split_count != count or part.split_tensors != first.split_tensors:
            raise InvalidModel(
                f"{part.path} does not belong with {first.path.name} (split.no {part.split_no}, "
                f"split.count {part.split_count}, split.tensors.count {part.split_tensors}); "
                "the parts come from different downloads: fetch them again"
            )
    total = sum(p.tensor_count for p in parts)
    if first.split_tensors is not None and total != first.split_tensors:
        raise InvalidModel(
            f"the parts of {first.path.name} hold {total} tensors but declare {first.split_tensors}; "
            "fetch the set again"
        )


def _per_layer(value: Any, n_layer: int, key: str, path: Path) -> tuple[int, ...]:
    if isinstance(value, list):
        if len(value) < n_layer:
            raise InvalidModel(
                f"{path}: {key} has {len(value)} entries for {n_layer} layers; the file is damaged"
            )
        return tuple(int(v) for v in value[:n_layer])
    return (int(value),) * n_layer


def _swa_layers(arch: str, fields: Mapping[str, Any], n_layer: int, window: int) -> tuple[bool, ...]:
    if window <= 0:
        return (False,) * n_layer
    pattern = fields.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    n_pattern, dense_first = DEFAULT_SWA_PATTERN.get(arch, (0, False))
    if pattern is not None:
        n_pattern = int(pattern)
    # llama_hparams::set_swa_pattern: 0 means every layer slides; otherwise the last (or first) of each
    # group of n_pattern layers attends to the whole context.
    if n_pattern == 0:
        return (True,) * n_layer
    if dense_first:
        return tuple(il % n_pattern != 0 for il in range(n_layer))
    return tuple(il % n_pattern < n_pattern - 1 for il in range(n_layer))


def architecture(fields: Mapping[str, Any], path: Path) -> Architecture:
    """The model's shape, from its metadata; a value of the wrong type (a word where a number belongs) is
    a damaged file, said in one line."""
    try:
        return _architecture(fields, path)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidModel(
            f"{path}: its metadata holds a value of the wrong type ({exc}); the file is damaged or not "
            "a model llama.cpp reads: fetch it again"
        ) from None


def _architecture(fields: Mapping[str, Any], path: Path) -> Architecture:
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        raise InvalidModel(f"{path} names no general.architecture; it is not a llama.cpp model file")

    def key(name: str, default: Any = None) -> Any:
        value = fields.get(f"{arch}.{name}", default)
        if value is None:
            raise InvalidModel(
                f"{path} is a {arch!r} file without {arch}.{name}: not a text model llama-server can serve "
                "(a vision projector or another tool's file?); give the language model's GGUF"
            )
        return value

    n_all = int(key("block_count"))
    n_nextn = min(int(fields.get(f"{arch}.nextn_predict_layers", 0) or 0), n_all)
    n_layer = n_all - n_nextn
    n_embd = int(key("embedding_length"))
    n_head = _per_layer(key("attention.head_count"), n_all, "attention.head_count", path)
    n_head_kv = _per_layer(
        fields.get(f"{arch}.attention.head_count_kv", list(n_head)), n_all, "attention.head_count_kv", path
    )
    head_dim = n_embd // max(n_head[0], 1)
    window = int(fields.get(f"{arch}.attention.sliding_window", 0) or 0)
    swa = _swa_layers(arch, fields, n_all, window)
    n_ff = fields.get(f"{arch}.feed_forward_length", 0)
    n_ff_exp = fields.get(f"{arch}.expert_feed_forward_length", 0)
    return Architecture(
        name=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_vocab=int(fields.get("tokenizer.ggml.tokens") or fields.get(f"{arch}.vocab_size") or 0),
        context_length=int(key("context_length")),
        n_head=n_head[:n_layer],
        n_head_kv=n_head_kv[:n_layer],
        key_length=int(fields.get(f"{arch}.attention.key_length", head_dim)),
        value_length=int(fields.get(f"{arch}.attention.value_length", head_dim)),
        sliding_window=window,
        swa_layers=swa[:n_layer],
        n_expert=int(fields.get(f"{arch}.expert_count", 0) or 0),
        n_expert_used=int(fields.get(f"{arch}.expert_used_count", 0) or 0),
        n_ff=max(n_ff) if isinstance(n_ff, list) else int(n_ff or 0),
        n_ff_exp=max(n_ff_exp) if isinstance(n_ff_exp, list) else int(n_ff_exp or 0),
        n_nextn=n_nextn,
        nextn_head_kv=n_head_kv[n_layer:],
        nextn_swa=swa[n_layer:],
    )


_BLOCK = re.compile(r"^blk\.(\d+)\.")


def mtp_heads(arch: Architecture, tensors: Mapping[str, int]) -> MtpHeads:
    """Which of the declared MTP blocks the file holds (upstream's loader probes blk.N.nextn.eh_proj), and
    whether it holds the trunk (blk.0.attn_norm), from the tensor names and sizes of every part."""
    present = sum(
        f"blk.{il}.nextn.eh_proj.weight" in tensors for il in range(arch.n_layer, arch.n_layer + arch.n_nextn)
    )
    head_bytes = 0
    for name, size in tensors.items():
        block = _BLOCK.match(name)
        if block is not None and int(block.group(1)) >= arch.n_layer:
            head_bytes += size
    return MtpHeads(arch.n_nextn, present, "blk.0.attn_norm.weight" in tensors, head_bytes)


def read_model(first: Path) -> GgufModel:
    """Read and check a GGUF or a whole split set given its first part; raise InvalidModel on any flaw."""
    match = SPLIT_NAME.match(first.name)
    if match is not None and int(match["no"]) != 1:
        raise InvalidModel(
            f"{first.name} is part {int(match['no'])} of a split model; give the first part "
            f"({match['stem']}-00001-of-{match['count']}.gguf)"
        )
    siblings = split_siblings(first)
    missing = [p.name for p in siblings if not p.is_file()]
    if missing:
        raise InvalidModel(
            f"{len(missing)} of {len(siblings)} parts of {first.name} are missing ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}); fetch them ('orchestrator model pull' resumes)"
        )
    parts: list[GgufPart] = []
    fields: dict[str, Any] = {}
    for path in siblings:
        part, part_fields = read_part(path)
        parts.append(part)
        if not fields:
            fields = part_fields
    _check_split(parts)
    name = fields.get("general.name")
    return GgufModel(tuple(parts), architecture(fields, first), name if isinstance(name, str) else None)


@dataclass(frozen=True)
class Description:
    """What planning reads of a model file: its architecture, weight bytes and MTP heads."""

    arch: Architecture
    weights_bytes: int
    mtp: MtpHeads
    input_bytes: int = 0
    # general.name as the file declares it (the converter writes the model's name: which Step model).
    name: str | None = None


# Bump when what is remembered changes, so entries written by an older version are read again.
_CACHE_VERSION = "5"


def cached_description(first: Path, cache: Path) -> Description:
    """The description of a model, remembered by path, size and mtime of every part: the gguf reader walks
    the whole tensor table, which `plan` should not pay for on every call."""
    key = _CACHE_VERSION + ":" + "/".join(file_key(p) for p in split_siblings(first) if p.is_file())
    known = read_cache(cache)
    if key in known:
        entry = known[key]
        return Description(
            Architecture.from_dict(entry["arch"]),
            int(entry["weights_bytes"]),
            MtpHeads(**entry["mtp"]),
            int(entry["input_bytes"]),
            entry.get("name"),
        )
    model = read_model(first)
    known[key] = {
        "arch": model.arch.to_dict(),
        "weights_bytes": model.weights_bytes,
        "mtp": asdict(model.mtp),
        "input_bytes": model.input_bytes,
        "name": model.name,
    }
    write_cache(cache, known)
    return Description(model.arch, model.weights_bytes, model.mtp, model.input_bytes, model.name)


def vocabulary(first: Path) -> Vocabulary:
    """The model's token list as its GGUF declares it (tokenizer model, size, a digest of the strings)."""
    import hashlib

    # The tokens are in the first part's header: the rest of the model is checked where it is planned.
    _check_header(first)
    reader = _reader(first)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    kind = reader.fields.get("tokenizer.ggml.model")
    if tokens is None:
        raise InvalidModel(f"{first} lists no tokens (tokenizer.ggml.tokens); it is not a model to evaluate")
    digest = hashlib.sha256()
    for token in tokens.contents():
        digest.update(str(token).encode() + b"\0")
    return Vocabulary(
        str(kind.contents()) if kind is not None else "unknown", len(tokens.data), digest.hexdigest()
    )


def quantise_source(first: Path) -> QuantSource:
    """What quantising reads of a file: its parameters, sizes, whether it is quantised already."""
    model = read_model(first)
    return QuantSource(
        first,
        sum(p.parameters for p in model.parts),
        model.file_bytes,
        max((size for p in model.parts for size in p.tensors.values()), default=0),
        any(p.quantised for p in model.parts),
        model.arch.name,
    )


# The tensor whose rows are the embedding size a projector writes, by projector type, as clip.cpp's
# clip_n_mmproj_embd reads it (at the pin: step3vl -> mm_model_proj->ne[1], "mm.model.fc.weight"); other
# types fall back on clip.vision.projection_dim, which upstream's converter sets to the text model's n_embd.
_PROJECTOR_OUT: Mapping[str, str] = {"step3vl": "mm.model.fc.weight"}


def read_projector(path: Path) -> Projector:
    """A vision projector's metadata; InvalidModel in one line when the file is none (not general.architecture
    "clip", no projector type, no vision encoder)."""
    _check_header(path)
    reader = _reader(path)
    fields = _fields(reader)
    arch = fields.get("general.architecture")
    kind = fields.get("clip.projector_type") or fields.get("clip.vision.projector_type")
    if arch != "clip" or not isinstance(kind, str):
        raise InvalidModel(
            f"{path} is not a vision projector (general.architecture {arch!r}, "
            f"{'no' if not isinstance(kind, str) else kind} projector type); give the model's mmproj-*.gguf, "
            "or --mmproj none to serve text only"
        )
    if not fields.get("clip.has_vision_encoder"):
        raise InvalidModel(
            f"{path} is a {kind} projector without a vision encoder (audio only?); give the model's vision "
            "mmproj-*.gguf, or --mmproj none"
        )
    shapes = {str(t.name): [int(n) for n in t.shape] for t in reader.tensors}
    out = _PROJECTOR_OUT.get(kind)

    def number(key: str) -> int:
        value = fields.get(f"clip.vision.{key}", 0)
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            raise InvalidModel(
                f"{path}: clip.vision.{key} is {value!r}, not a number; the file is damaged"
            ) from None

    n_embd_out = (
        shapes[out][1]
        if out is not None and out in shapes and len(shapes[out]) > 1
        else number("projection_dim")
    )

    encoder = VisionEncoder(
        projector_type=kind,
        image_size=number("image_size"),
        patch_size=number("patch_size"),
        n_embd=number("embedding_length"),
        n_ff=number("feed_forward_length"),
        n_head=number("attention.head_count"),
        n_layer=number("block_count"),
    )
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    return Projector(path, int(n_embd_out) if n_embd_out else None, weights, encoder)


def cached_projector(path: Path, cache: Path) -> Projector:
    """read_projector, remembered by path, size and mtime (like cached_description)."""
    key = f"mmproj:{_CACHE_VERSION}:{file_key(path)}"
    known = read_cache(cache)
    if key in known:
        entry = dict(known[key])
        return Projector(
            Path(entry["path"]),
            entry["n_embd_out"],
            entry["weights_bytes"],
            VisionEncoder(**entry["encoder"]),
        )
    projector = read_projector(path)
    known[key] = {**asdict(projector), "path": str(projector.path)}
    write_cache(cache, known)
    return projector
