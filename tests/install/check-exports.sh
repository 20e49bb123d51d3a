#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# check-exports.sh LIBPATH MAPFILE [--not-in OTHERLIB] [HEADER...]
#
# A library exports exactly its stated ABI (docs/abi.md):
#  - the version script MAPFILE lists every exported function by name (no
#    wildcard in a global: section), each in one version node;
#  - LIBPATH exports every listed name, in the node that lists it, and
#    nothing else: no unlisted symbol, no symbol without the vhu_ prefix,
#    no version node the map does not have;
#  - the functions declared VHU_API in the HEADERs are exactly the listed
#    ones (a new function without a map entry, or an entry for a function
#    that is gone, fails here);
#  - with --not-in OTHERLIB, no symbol is exported by both libraries.
set -euo pipefail

usage() {
    echo "usage: $0 LIBPATH MAPFILE [--not-in OTHERLIB] [HEADER...]" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
lib=$1
map=$2
shift 2
other=
if [[ ${1:-} == --not-in ]]; then
    [[ $# -ge 2 ]] || usage
    other=$2
    shift 2
fi
headers=("$@")

fail=0
problem() {
    echo "check-exports: $(basename "$lib"): $*" >&2
    fail=1
}
for f in "$lib" "$map" ${other:+"$other"} "${headers[@]}"; do
    [[ -f $f ]] || {
        echo "check-exports: $f: no such file" >&2
        exit 1
    }
done

# --- The map: "NODE SYMBOL" for every global entry, and the node names. ----
# Comments go first (the whole file as one line), then one token per line.
flat=$(tr '\n' ' ' <"$map" | sed 's@/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/@ @g')
map_entries=$(sed 's/[{};:]/&\n/g' <<<"$flat" | awk '
    { gsub(/^[ \t]+|[ \t]+$/, "") }
    $0 == "" { next }
    /\{$/ { sub(/[ \t]*\{$/, ""); node = $0; section = ""; next }
    /^\}/ { node = ""; next }
    $0 == "global:" || $0 == "local:" { section = $0; next }
    /;$/ && section == "global:" { sub(/[ \t]*;$/, ""); print node, $0 }')
map_nodes=$(sed 's/[{};:]/&\n/g' <<<"$flat" |
    awk '/\{[ \t]*$/ { sub(/[ \t]*\{[ \t]*$/, ""); gsub(/^[ \t]+/, ""); print }' | sort -u)
[[ -n $map_nodes ]] || problem "$map has no version node"
[[ -n $map_entries ]] || problem "$map lists no symbol"
declare -A map_node=()
while read -r node sym; do
    [[ -z ${sym:-} ]] && continue
    if [[ $sym == *[\*\?\[]* ]]; then
        problem "$map: wildcard '$sym' in node $node: list every symbol by name"
    elif [[ -n ${map_node[$sym]:-} ]]; then
        problem "$map: $sym listed twice (nodes ${map_node[$sym]} and $node)"
    else
        map_node[$sym]=$node
    fi
done <<<"$map_entries"

# --- What the library exports: "TYPE NAME VERSION". --------------------------
# nm -D lines: "ADDR TYPE NAME@@VERSION" (an absolute version-node symbol may
# lack ADDR on some binutils: "TYPE NAME").
if ! raw=$(nm -D --defined-only "$lib"); then
    echo "check-exports: nm failed on $lib" >&2
    exit 1
fi
syms=$(awk 'NF >= 2 { t = $(NF-1); n = $NF; v = "";
                      if (n ~ /@/) { v = n; sub(/^[^@]*@+/, "", v); sub(/@.*/, "", n) }
                      print t, n, v }' <<<"$raw")
declare -A exported=()
lib_nodes=()
while read -r type name version; do
    [[ -z ${type:-} ]] && continue
    if [[ $type == A ]]; then # a version node
        lib_nodes+=("$name")
        continue
    fi
    exported[$name]=1
    if [[ $name != vhu_* ]]; then
        problem "exports $type $name without the vhu_ prefix"
    elif [[ -z ${map_node[$name]:-} ]]; then
        problem "exports $name, which $(basename "$map") does not list"
    elif [[ ${version:-} != "${map_node[$name]}" ]]; then
        problem "exports $name at version '${version:-none}', but the map puts it in ${map_node[$name]}"
    fi
done <<<"$syms"
for sym in "${!map_node[@]}"; do
    [[ -n ${exported[$sym]:-} ]] || problem "does not export $sym, listed in $(basename "$map")"
done
got_nodes=$(printf '%s\n' "${lib_nodes[@]}" | sort -u)
[[ $got_nodes == "$map_nodes" ]] ||
    problem "version nodes '$(echo $got_nodes)' differ from the map's '$(echo $map_nodes)'"

# --- The headers' VHU_API functions are the listed ones. --------------------
if ((${#headers[@]} > 0)); then
    declared=$(cat "${headers[@]}" | tr '\n' ' ' |
        grep -o 'VHU_API[^;(]*(' | grep -o 'vhu_[A-Za-z0-9_]*[ ]*($' | tr -d ' (' | sort -u)
    listed=$(printf '%s\n' "${!map_node[@]}" | sort -u)
    while read -r d; do
        [[ -n $d ]] && problem "$d is declared VHU_API but not listed in $(basename "$map")"
    done < <(comm -23 <(echo "$declared") <(echo "$listed"))
    while read -r l; do
        [[ -n $l ]] && problem "$l is listed in $(basename "$map") but no header given declares it"
    done < <(comm -13 <(echo "$declared") <(echo "$listed"))
fi

# --- No symbol in both libraries. ---------------------------------------------
if [[ -n $other ]]; then
    both=$(comm -12 <(printf '%s\n' "${!exported[@]}" | sort) \
        <(nm -D --defined-only "$other" | awk '$(NF-1) != "A" { n = $NF; sub(/@.*/, "", n); print n }' |
            sort))
    [[ -z $both ]] || problem "exports symbols $(basename "$other") exports too: $(echo $both)"
fi

if ((fail)); then
    exit 1
fi
echo "check-exports: $(basename "$lib"): ${#exported[@]} symbols, exactly those listed in" \
    "$(basename "$map") (nodes: $(echo $map_nodes))${headers:+ and declared in the headers}"
