#!/usr/bin/env bash
# Register QEMU's user-mode emulator for one architecture (default aarch64) with binfmt_misc, with the F
# flag, so that containers and chroots of that architecture run on this machine without a copy of QEMU
# inside them: what `orchestrator build --target dgx-spark` needs on an amd64 machine.
# Debian's qemu-user-static ships the entries (/usr/lib/binfmt.d/qemu-*.conf, flags OPF) and registers
# them through systemd-binfmt; hosts without it (containers, some CI machines) never mount binfmt_misc.
set -euo pipefail
machine="${1:-aarch64}"
conf="/usr/lib/binfmt.d/qemu-${machine}.conf"
entries=/proc/sys/fs/binfmt_misc

if [ ! -f "$conf" ]; then
    echo "$conf is missing: install Debian's qemu-user-static first (sudo apt install qemu-user-static)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "registering an emulator changes the kernel's binfmt_misc table: run this with sudo" >&2
    exit 1
fi
mountpoint -q "$entries" || mount -t binfmt_misc binfmt_misc "$entries"
if [ -e "$entries/qemu-${machine}" ]; then
    if grep -q '^flags: .*F' "$entries/qemu-${machine}"; then
        echo "qemu-${machine} is already registered with the F flag"
        exit 0
    fi
    # Registered without F: an entry cannot be changed, only removed and added again.
    echo -1 >"$entries/qemu-${machine}"
fi
case "$(cut -d: -f7- "$conf")" in
*F*) cat "$conf" >"$entries/register" ;;
*) echo "$(cat "$conf")F" >"$entries/register" ;;
esac
grep '^flags:' "$entries/qemu-${machine}" | sed "s/^/qemu-${machine} registered, /"
