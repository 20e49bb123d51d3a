# SPDX-License-Identifier: BSD-3-Clause
# lib-qemu.sh: sourced by the QEMU tests.  Set NAME (the prefix of every
# message) before sourcing.  Provides say, fail, and check_qemu: exit 77
# (skipped) unless qemu-system-x86_64 runs with TCG; sets $qemu.
say() { echo "$NAME: $*"; }
fail() {
    echo "$NAME: FAIL: $*" >&2
    exit 1
}

check_qemu() {
    qemu=$(command -v qemu-system-x86_64 || true)
    if [[ -z $qemu ]]; then
        say "SKIP: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
        exit 77
    fi
    if ! "$qemu" -version >/dev/null 2>&1; then
        say "SKIP: $qemu does not run"
        exit 77
    fi
    if ! "$qemu" -accel help 2>/dev/null | grep -qx tcg; then
        say "SKIP: $qemu has no TCG accelerator"
        exit 77
    fi
}
