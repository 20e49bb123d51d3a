#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-man-pages.sh PAGE...   (or --no-pandoc: exit 77, skipped)
#
# The man pages the build made with pandoc (docs/man) render: each has its
# .TH line with its name and section 1 and a NAME section "name - what", and
# man (as lintian runs it: warnings on, 80 columns) or else groff (-ww)
# formats it without a single warning.  Without man-db and groff only the
# .TH and NAME checks run (said so).
set -euo pipefail

say() { echo "check-man-pages: $*"; }
fail() {
    echo "check-man-pages: FAIL: $*" >&2
    exit 1
}

if [[ ${1:-} == --no-pandoc ]]; then
    say "pandoc was not found when the build was configured: no man pages to check (skipped)"
    exit 77
fi
[[ $# -ge 1 ]] || fail "usage: $0 PAGE... | --no-pandoc"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

renderer=none
if command -v man >/dev/null && man --help 2>&1 | grep -q -- '--warnings'; then
    renderer=man
elif command -v groff >/dev/null; then
    renderer=groff
else
    say "neither man-db nor groff installed: checking only .TH and NAME"
fi

for page in "$@"; do
    [[ -s $page ]] || fail "$page is missing or empty"
    name=$(basename "$page" .1)
    # The title line, after pandoc's comments and font set-up.
    th=$(grep -m1 '^\.TH ' "$page") || fail "$page has no .TH line"
    [[ $th == ".TH \"$name\" \"1\""* ]] || fail "$page: '$th' is not .TH \"$name\" \"1\" ..."
    grep -q '^\.SH NAME$' "$page" || fail "$page has no NAME section"
    case $renderer in
    man)
        LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
            man --warnings -E UTF-8 -l -Tutf8 "$page" >"$tmp/out" 2>"$tmp/err" ||
            fail "man -l $page failed: $(cat "$tmp/err")"
        ;;
    groff)
        LC_ALL=C.UTF-8 groff -t -man -Tutf8 -ww -rLL=78n "$page" >"$tmp/out" 2>"$tmp/err" ||
            fail "groff $page failed: $(cat "$tmp/err")"
        ;;
    none)
        say "$page: .TH and NAME present"
        continue
        ;;
    esac
    [[ ! -s $tmp/err ]] || fail "$renderer warns on $page: $(cat "$tmp/err")"
    # The rendered NAME line: "name - what it does" (col -b drops overstrikes).
    col -b <"$tmp/out" >"$tmp/plain"
    grep -qE "^ +$name +- +[a-z]" "$tmp/plain" ||
        fail "$page: the rendered NAME line is not '$name - ...'"
    say "$page: renders with $renderer, no warnings ($(wc -l <"$tmp/out") lines)"
done
say "PASS"
