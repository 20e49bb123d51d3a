#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-exports.sh LIBPATH
#
# libvhu.so must export only the public API: every defined dynamic symbol
# starts with vhu_ (the version node, an absolute symbol such as VHU_0, is
# ignored), there is a sane number of them, and the library's internal
# vhu_-prefixed helpers stay hidden.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 LIBPATH" >&2
    exit 2
fi
lib=$1
if [[ ! -f $lib ]]; then
    echo "check-exports: $lib: no such file" >&2
    exit 1
fi

# Lines: "ADDR TYPE NAME[@[@]VERSION]" (an absolute symbol may lack ADDR on
# some binutils: "TYPE NAME").  Keep "TYPE NAME" without the version tail.
if ! raw=$(nm -D --defined-only "$lib"); then
    echo "check-exports: nm failed on $lib" >&2
    exit 1
fi
syms=$(awk 'NF >= 2 { t = $(NF-1); n = $NF; sub(/@.*/, "", n); print t, n }' <<<"$raw")

exported=()
declare -A is_exported=()
offenders=()
while read -r type name; do
    [[ -z ${type:-} ]] && continue
    [[ $type == A ]] && continue # version node (VHU_0)
    if [[ $name == vhu_* ]]; then
        exported+=("$name")
        is_exported[$name]=1
    else
        offenders+=("$type $name")
    fi
done <<<"$syms"

fail=0
if ((${#offenders[@]} > 0)); then
    echo "check-exports: $lib exports ${#offenders[@]} symbol(s) without the vhu_ prefix:" >&2
    printf '  %s\n' "${offenders[@]}" >&2
    fail=1
fi

min=20
if ((${#exported[@]} < min)); then
    echo "check-exports: only ${#exported[@]} vhu_ symbols exported (expected at least $min)" >&2
    fail=1
fi

# The public API must be there...
for want in vhu_version vhu_strerror vhu_request_name vhu_backend_new vhu_server_new; do
    if [[ -z ${is_exported[$want]:-} ]]; then
        echo "check-exports: public function $want is not exported" >&2
        fail=1
    fi
done

# ...and internal functions, vhu_-prefixed but not API, must not.
for internal in vhu_wire_recv vhu_wire_send vhu_wire_check vhu_wire_close_fds \
                vhu_wire_frontend_row vhu_wire_backend_row vhu_mem_map vhu_refuse \
                vhu_close_fd; do
    if [[ -n ${is_exported[$internal]:-} ]]; then
        echo "check-exports: internal function $internal is exported" >&2
        fail=1
    fi
done

if ((fail)); then
    exit 1
fi
echo "check-exports: ${#exported[@]} exported symbols, all vhu_-prefixed"
