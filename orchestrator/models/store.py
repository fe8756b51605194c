"""The model store: what is under the models directory, pulled or registered, in `<models dir>/models.json`.

Pulled models live in `<models dir>/<owner>/<repo>/` and are the store's own: `rm` deletes them (after
asking). Added models stay where the user keeps them: `rm` only forgets them. Nothing here deletes or
rewrites a model file unless asked; the registry is replaced atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.core.models import KNOWN_MODELS, companion_kind, stays_inside
from orchestrator.core.records import check_fields
from orchestrator.errors import InvalidModel, UsageError
from orchestrator.files import write_atomic
from orchestrator.models.gguf import GgufModel, read_model, split_siblings
from orchestrator.models.local import file_sha256

REGISTRY = "models.json"


@dataclass(frozen=True)
class FileRecord:
    name: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class Entry:
    name: str
    path: str
    origin: str
    managed: bool
    files: tuple[FileRecord, ...] = field(default=())
    architecture: str | None = None

    @property
    def first(self) -> Path:
        return Path(self.path)

    def root(self) -> Path | None:
        """The pull's folder: records are named relative to it (parts in a folder of the repository keep
        it: Q4_K_S/...), and the first part's own record locates it."""
        first = self.first.parts
        for record in self.files:
            tail = Path(record.name).parts
            if len(tail) < len(first) and first[-len(tail) :] == tail:
                return Path(*first[: -len(tail)])
        return None

    def located(self) -> dict[Path, FileRecord]:
        """Each recorded file where it lies, only inside the pull's folder: a registry's names never reach
        outside it (`..`, absolute paths)."""
        root = self.root()
        if root is None:
            return {}
        inside = root.resolve()
        return {
            root / f.name: f
            for f in self.files
            if stays_inside(f.name) and (root / f.name).resolve().is_relative_to(inside)
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        files = tuple(FileRecord(**f) for f in data.get("files", ()))
        entry = cls(**{**data, "files": files})
        check_fields(entry)
        return entry


def load(models_dir: Path) -> dict[str, Entry]:
    path = models_dir / REGISTRY
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        models = data["models"]
        if not isinstance(models, dict) or not all(isinstance(e, dict) for e in models.values()):
            raise TypeError("'models' is not a map of entries")
        return {str(name): Entry.from_dict(entry) for name, entry in models.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a model registry this version can read ({exc}); move it aside and "
            "'orchestrator model add' the files again"
        ) from None


def save(models_dir: Path, entries: dict[str, Entry]) -> None:
    payload = {"models": {name: e.to_dict() for name, e in sorted(entries.items())}}
    write_atomic(models_dir / REGISTRY, json.dumps(payload, indent=1) + "\n")


def records(model: GgufModel, sha256: dict[str, str] | None = None) -> tuple[FileRecord, ...]:
    return tuple(FileRecord(p.path.name, p.size, (sha256 or {}).get(p.path.name)) for p in model.parts)


def name_for(first: Path) -> str:
    known = next((r.name for r in KNOWN_MODELS.values() if first.match(r.pattern)), None)
    if known:
        return known
    stem = first.name.removesuffix(".gguf")
    return stem.split("-00001-of-")[0].lower()


def add(
    models_dir: Path, path: Path, name: str | None, *, origin: str = "added", managed: bool = False
) -> Entry:
    """Register a GGUF the user already has (air-gapped machines): checked, never moved or copied. A file
    the store made (managed: a quantisation) is deleted by `model rm`, after asking."""
    first = path.expanduser().absolute()
    model = read_model(first)
    entries = load(models_dir)
    name = name or name_for(first)
    if name in entries and entries[name].first != first:
        raise UsageError(
            f"a model named {name!r} is already registered ({entries[name].path}); pass --name to choose another"
        )
    entry = Entry(name, str(first), origin, managed, records(model), model.arch.name)
    entries[name] = entry
    save(models_dir, entries)
    return entry


def record_pull(models_dir: Path, name: str, entry: Entry) -> None:
    entries = load(models_dir)
    entries[name] = entry
    save(models_dir, entries)


def find(models_dir: Path, name: str) -> Entry | None:
    return load(models_dir).get(name)


@dataclass(frozen=True)
class Listed:
    name: str
    path: Path
    origin: str
    present: bool
    size: int


def listing(models_dir: Path) -> Iterator[Listed]:
    """Registered models, then known models found in their usual place without being registered."""
    entries = load(models_dir)
    seen: set[Path] = set()
    for entry in entries.values():
        present = all(p.is_file() for p in split_siblings(entry.first))
        size = sum(f.size for f in entry.files)
        seen.add(entry.first)
        yield Listed(entry.name, entry.first, entry.origin, present, size)
    for ref in KNOWN_MODELS.values():
        directory = models_dir / ref.directory
        for first in sorted(directory.glob(ref.pattern)) if directory.is_dir() else []:
            if first.absolute() in seen or ("-of-" in first.name and "-00001-of-" not in first.name):
                continue
            size = sum(p.stat().st_size for p in split_siblings(first) if p.is_file())
            yield Listed(ref.name, first.absolute(), ref.origin, True, size)


@dataclass(frozen=True)
class Verified:
    model: GgufModel
    hashed: tuple[str, ...]


def verify(
    first: Path,
    expected: Mapping[Path, FileRecord],
    sha_cache: Path,
    on_bytes: Callable[[int], None] | None = None,
) -> Verified:
    """Every check `model verify` promises: each part, and each file recorded beside them (a pull's MTP
    file and projector), where it lies (expected: Entry.located); raises InvalidModel with the first
    problem found."""
    model = read_model(first)
    hashed: list[str] = []
    parts = [(part.path, part.size) for part in model.parts]
    companions = [(path, _size(path)) for path in expected if path not in {p for p, _ in parts}]
    for path, size in parts + companions:
        record = expected.get(path)
        if record is None:
            continue
        if size is None:
            raise InvalidModel(f"{path} is missing; pull it again ('orchestrator model pull' resumes)")
        if record.size != size:
            raise InvalidModel(
                f"{path} has {size} bytes but {record.size} were published; "
                "pull it again ('orchestrator model pull' resumes)"
            )
        if record.sha256:
            digest = file_sha256(path, sha_cache, on_bytes)
            if digest != record.sha256:
                raise InvalidModel(
                    f"{path} does not match its published sha256 (got {digest[:12]}..., want "
                    f"{record.sha256[:12]}...); it is damaged: delete it and pull again"
                )
            hashed.append(path.name)
    return Verified(model, tuple(hashed))


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def remove(
    models_dir: Path,
    name: str,
    confirm: Callable[[str], bool],
    in_use: Mapping[Path, str] | None = None,
) -> list[Path]:
    """Forget a model; a pulled one's files (its parts, and the MTP file pulled with it) are deleted too,
    only if confirm says yes, and never while a running server maps one of them (in_use: host file ->
    the server that maps it)."""
    entries = load(models_dir)
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none"
        raise UsageError(
            f"no registered model named {name!r} (registered: {known}); see 'orchestrator model list'"
        )
    # What the store made (pulled, quantised) is deleted with it; only inside the models folder, whatever
    # the registry file says.
    ours = entry.managed and entry.first.resolve().is_relative_to(models_dir.resolve())
    files = [p for p in _pulled_files(entry) if p.is_file()] if ours else []
    # A projector or MTP file another model was pulled (or quantised) with stays while that model does;
    # so does one beside a model registered with `model add`, which finds its companions by folder.
    others = [other for other in entries.values() if other.name != name]
    shared = {p.resolve() for other in others if other.managed for p in _pulled_files(other)} | {
        p.resolve()
        for other in others
        if not other.managed
        for p in other.first.parent.glob("*.gguf")
        if companion_kind(p.name)
    }
    files = [p for p in files if p.resolve() not in shared]
    served = {path.resolve(): server for path, server in (in_use or {}).items()}
    for path in files:
        if path.resolve() in served:
            raise UsageError(
                f"{path} is served by {served[path.resolve()]}; stop that server first ('orchestrator "
                "down' with its --project), then remove the model"
            )
    question = (
        f"delete {len(files)} file(s) of {name} ({sum(p.stat().st_size for p in files) / 2**30:.1f} GiB) "
        f"in {entry.first.parent}?"
        if files
        else f"forget {name} ({entry.path})? its files are left where they are"
    )
    if not confirm(question):
        raise UsageError(f"kept {name}; nothing was changed")
    for path in files:
        path.unlink()
    del entries[name]
    save(models_dir, entries)
    return files


def _pulled_files(entry: Entry) -> list[Path]:
    """A pulled model's files: every file of its pull (the parts and its MTP file), where the pull put
    them (the folder of the first, less the first's own subfolders); the split parts of its first file."""
    return list(dict.fromkeys([*split_siblings(entry.first), *entry.located()]))
