"""Local bases: what a bootstrap left mounted is found before its scratch folder is removed."""

from __future__ import annotations


def test_a_bootstraps_mounts_are_found_deepest_first() -> None:
    from pathlib import Path

    from orchestrator.executors.bases import mounts_below

    text = (
        "proc /proc proc rw 0 0\n"
        "udev /data/bases/x/rootfs/dev devtmpfs rw 0 0\n"
        "proc /data/bases/x/rootfs/proc proc rw 0 0\n"
        "devpts /data/bases/x/rootfs/dev/pts devpts rw 0 0\n"
        "tmpfs /data/bases/xy tmpfs rw 0 0\n"
        "tmpfs /data/bases/x/with\\040space tmpfs rw 0 0\n"
    )
    found = mounts_below(Path("/data/bases/x"), text)
    assert found[0] == Path("/data/bases/x/rootfs/dev/pts")
    assert set(found) == {
        Path("/data/bases/x/rootfs/dev/pts"),
        Path("/data/bases/x/rootfs/dev"),
        Path("/data/bases/x/rootfs/proc"),
        Path("/data/bases/x/with space"),
    }
