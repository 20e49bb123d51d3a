#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# test-vhu-state-completion.sh COMPLETION VHU_STATE
#
# The bash completion of vhu-state (cli/vhu-state.bash), sourced into this
# shell and called as bash calls it: command names, each command's options
# (and that they are the options `vhu-state help COMMAND` lists), file names
# where a file or a socket is expected (also as --opt=VALUE), nothing after
# options whose value is a name or a number.
set -euo pipefail
export LC_ALL=C

if [[ $# -ne 2 ]]; then
    echo "usage: $0 COMPLETION VHU_STATE" >&2
    exit 2
fi
comp=$1
vs=$2

fail() {
    echo "test-vhu-state-completion: FAIL: $*" >&2
    exit 1
}

# shellcheck source=../../cli/vhu-state.bash
source "$comp"
complete -p vhu-state >/dev/null || fail "sourcing $comp registered no completion for vhu-state"

dir=$(mktemp -d "${TMPDIR:-/tmp}/vhu-state-comp.XXXXXX")
trap 'rm -rf "$dir"' EXIT
touch "$dir/snap-a.vhus" "$dir/snap-b.vhus" "$dir/dev.sock"

# complete LINE: the completions of the last word of LINE (a trailing space
# starts an empty word), sorted, on one line.  Words split as bash's
# COMP_WORDBREAKS does for '=': "--opt=v" is "--opt" "=" "v".
complete_line() {
    local line=$1 w
    local -a words=()
    for w in $line; do
        if [[ $w == --*=* ]]; then
            words+=("${w%%=*}" "=" "${w#*=}")
            [[ -z ${w#*=} ]] && unset 'words[${#words[@]}-1]'
        else
            words+=("$w")
        fi
    done
    [[ $line == *' ' || $line == *'=' ]] && words+=("")
    COMP_WORDS=("${words[@]}")
    COMP_CWORD=$((${#words[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    _vhu_state
    printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'
}

expect() {
    local line=$1 want=$2 got
    got=$(complete_line "$line")
    [[ $got == "$want" ]] || fail "'$line<TAB>': got '$got', want '$want'"
    echo "test-vhu-state-completion: '$line<TAB>' -> '$got'"
}

expect "vhu-state in" "info inspect"
expect "vhu-state r" "roundtrip"
expect "vhu-state " "capture diff help info inspect load roundtrip validate"
expect "vhu-state --v" "--version"
expect "vhu-state help ro" "roundtrip"
expect "vhu-state help roundtrip " ""
expect "vhu-state capture --" "--control --help --json --max-size --output --socket --timeout"
expect "vhu-state capture -o $dir/sn" "$dir/snap-a.vhus $dir/snap-b.vhus"
expect "vhu-state capture --socket $dir/d" "$dir/dev.sock"
expect "vhu-state capture --socket=$dir/d" "$dir/dev.sock"
expect "vhu-state info --control $dir/d" "$dir/dev.sock"
expect "vhu-state inspect $dir/snap-a" "$dir/snap-a.vhus"
expect "vhu-state inspect --json $dir/snap-" "$dir/snap-a.vhus $dir/snap-b.vhus"
expect "vhu-state inspect --section " ""
expect "vhu-state inspect -s " ""
expect "vhu-state diff --u" "--upgrade"
expect "vhu-state load --socket $dir/dev.sock $dir/snap-b" "$dir/snap-b.vhus"
expect "vhu-state roundtrip --keep $dir/snap-b" "$dir/snap-b.vhus"
expect "vhu-state validate --max-size " ""
expect "vhu-state bogus " ""

# Every command's options are the ones its help lists, no more, no fewer.
for cmd in inspect diff validate capture load roundtrip info; do
    want=$("$vs" help "$cmd" | grep -oE '^  (-[a-zA-Z], )? *--[a-z-]+' | grep -oE -- '--[a-z-]+' |
           sort -u | tr '\n' ' ' | sed 's/ $//')
    [[ -n $want ]] || fail "vhu-state help $cmd lists no options"
    expect "vhu-state $cmd --" "$want"
done
echo "test-vhu-state-completion: PASS"
