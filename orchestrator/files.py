"""Files the orchestrator writes for itself: replaced whole (never half-written), and small JSON caches
keyed by a file's identity (path, size, mtime) that are simply rebuilt when unreadable."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_whole(path, text.encode(), mode=None)


def write_private(path: Path, data: bytes) -> None:
    """Written whole, readable by its owner alone (mode 0600), in a folder only the owner opens."""
    _private_folder(path.parent)
    _replace_whole(path, data, mode=0o600)


def write_for_container(path: Path, data: bytes) -> None:
    """A secret a container's own user reads (the API key, the TLS key): that user is not the owner, so
    the file lets others read (Docker mounts the file itself), inside a folder only the owner opens."""
    _private_folder(path.parent)
    _replace_whole(path, data, mode=0o644)


def _replace_whole(path: Path, data: bytes, *, mode: int | None) -> None:
    """path holds data, or what it held before: never a torn or missing file, whoever else writes it at
    the same moment and whenever the power goes. A temporary file of its own (two writers never share
    one), flushed to the disk, renamed over path, and the folder's entry flushed too."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes 0600; a file meant for others gets the umask's usual mode.
        os.chmod(partial, _default_mode() if mode is None else mode)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    _sync_folder(path.parent)


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once, when nothing else runs yet: reading it sets it for a moment, which threads could see.
_UMASK = _read_umask()


def _default_mode() -> int:
    return 0o666 & ~_UMASK


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # a folder that cannot be opened for reading (some platforms): the rename stands
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _private_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def content_digest(data: bytes, key: bytes = b"") -> str:
    """A short name for some bytes (16 hex digits): what names a copy by its content, and what says
    whether a process read the bytes it would read now. With a key (digest_key), an HMAC-SHA256: such
    names travel where others read them (the compose file, a container's label, a process's
    environment), and without the key no guess at an owner's chosen API key can be checked against one."""
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(data).hexdigest()[:16]


DIGEST_KEY_BYTES = 32


def digest_key(folder: Path) -> bytes:
    """The data directory's key for content names: random bytes in folder/.digest-key, readable by its
    owner alone, made once. Two commands making it at once keep the first one's (a whole file linked
    into place, never replaced)."""
    path = folder / ".digest-key"
    if not path.is_file():
        _private_folder(folder)
        fd, partial = tempfile.mkstemp(prefix=".digest-key.", suffix=".partial", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(DIGEST_KEY_BYTES))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(partial, path)
        finally:
            os.unlink(partial)
        _sync_folder(folder)
    mode = path.stat()
    if mode.st_uid != os.getuid() or mode.st_mode & 0o077:
        raise UsageError(
            f"{path} is not its owner's alone (owner uid {mode.st_uid}, mode {oct(mode.st_mode & 0o777)}); "
            f"chown it to yourself and chmod 600 {path}"
        )
    key = path.read_bytes()
    if len(key) != DIGEST_KEY_BYTES:
        raise UsageError(
            f"{path} is damaged ({len(key)} bytes, not {DIGEST_KEY_BYTES}); delete it, and the next up makes "
            "a new one (its servers start again once; deployments recorded before cannot be rolled back to)"
        )
    return key


def file_key(path: Path) -> str:
    """What identifies a file's content cheaply: a changed file gets a new key."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1))


def writable_folder(path: Path, what: str) -> Path:
    """path as a folder we can write in (made when missing), or one line that says why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot make {what} {path} ({exc.strerror}); give a folder you can write in"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {what} {path}; give a folder you can write in")
    return path


def readable_folder(path: Path, what: str) -> Path:
    """path when it is a folder or not there yet (nothing in it), or one line that says why not."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder; give a folder")
    return path
