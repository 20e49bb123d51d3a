#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-systemd-unit.sh UNIT INSTALLED_UNIT [MANPATH]
#
# systemd-analyze verify on UNIT (examples/systemd/vhu-blk@.service.in made
# with ExecStart on the build's vhu-blk, so that verify finds the program):
# every directive known and valid, the command there, the sandbox parsed.
# Any line it prints about the unit fails the test (verify exits 0 on an
# unknown key or a bad value).  INSTALLED_UNIT, the one `cmake --install`
# puts in lib/systemd/system, must differ from UNIT in the ExecStart path
# only.  With MANPATH (the man pages the build made) verify also checks the
# unit's Documentation=man:vhu-blk(1); without, that check is off.  Exit 77
# (skipped) without systemd-analyze.
set -euo pipefail

say() { echo "check-systemd-unit: $*"; }
fail() {
    echo "check-systemd-unit: FAIL: $*" >&2
    exit 1
}

[[ $# -ge 2 && $# -le 3 ]] || fail "usage: $0 UNIT INSTALLED_UNIT [MANPATH]"
unit=$1
installed=$2
if ! command -v systemd-analyze >/dev/null; then
    say "systemd-analyze not found (Debian: apt-get install systemd): skipped"
    exit 77
fi
[[ -f $unit ]] || fail "no $unit"
[[ -f $installed ]] || fail "no $installed"

exec_of() { grep -m1 '^ExecStart=' "$1" | cut -d' ' -f1; }
diff <(grep -v '^ExecStart=' "$unit") <(grep -v '^ExecStart=' "$installed") >/dev/null ||
    fail "$installed differs from $unit beyond ExecStart"
[[ $(exec_of "$installed") == ExecStart=/*/vhu-blk ]] ||
    fail "$installed: $(exec_of "$installed") is not an absolute path to vhu-blk"
say "installed unit: $(exec_of "$installed")"

man=(--man=no)
if [[ $# -eq 3 ]]; then
    man=(--man=yes)
    export MANPATH=$3
fi
out=$(systemd-analyze verify "${man[@]}" "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
name=$(basename "$unit")
if grep -E "${name%@*}@|$(basename "$unit")" <<<"$out" >&2; then
    fail "systemd-analyze verify $unit complains (above)"
fi
[[ -z $out ]] || say "systemd-analyze said, about other units: $out"
say "systemd-analyze verify ${man[*]} $unit: clean"

# For the record: systemd's own rating of the sandbox (0 best, 10 worst).
if level=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
    grep -o 'Overall exposure level.*'); then
    say "$level"
fi
say "PASS"
