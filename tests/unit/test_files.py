"""Files the tool writes are written whole: two writers of one file and a reader beside them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.files import write_atomic, write_for_container, write_private


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deployments.jsonl"
    write_atomic(path, "before\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(path, "after\n")
    monkeypatch.undo()
    assert path.read_text() == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["deployments.jsonl"]


def test_modes(tmp_path: Path) -> None:
    write_private(tmp_path / "keys" / "api-key", b"k\n")
    write_for_container(tmp_path / "secrets" / "api_key", b"k\n")
    write_atomic(tmp_path / "plain.json", "{}")
    assert stat.S_IMODE((tmp_path / "keys" / "api-key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "secrets" / "api_key").stat().st_mode) == 0o644
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask


def test_the_digest_key_is_made_once_owner_only_and_a_damaged_one_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    from orchestrator.errors import UsageError
    from orchestrator.files import DIGEST_KEY_BYTES, digest_key

    folder = tmp_path / "secrets"
    key = digest_key(folder)
    path = folder / ".digest-key"
    assert len(key) == DIGEST_KEY_BYTES and digest_key(folder) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in folder.iterdir()] == [".digest-key"]  # no partial left behind
    assert digest_key(tmp_path / "elsewhere") != key
    path.chmod(0o640)
    with pytest.raises(UsageError, match=r"not its owner's alone .* chmod 600"):
        digest_key(folder)
    path.chmod(0o600)
    owner = path.stat().st_uid
    with monkeypatch.context() as patch:  # made by another user (root, say): refused the same way
        patch.setattr(os, "getuid", lambda: owner + 1)
        with pytest.raises(UsageError, match=rf"not its owner's alone \(owner uid {owner}, "):
            digest_key(folder)
    path.write_bytes(b"short")
    with pytest.raises(UsageError, match=r"\.digest-key is damaged .* delete it"):
        digest_key(folder)
    assert path.read_bytes() == b"short"  # left for the owner to see
