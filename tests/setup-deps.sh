#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install, with apt-get, whatever of vhu's build and test dependencies is
# missing on this Debian 12 machine.  Does nothing when all are there.
set -euo pipefail

packages=(build-essential cmake pkg-config libcbor-dev libzstd-dev libev-dev libcmocka-dev
          liburing-dev qemu-system-x86 clang libclang-rt-14-dev python3 valgrind)
# The man pages (docs/man: pandoc) and their check (test_man_pages: man-db, groff).
packages+=(pandoc man-db groff-base)
# The API reference (docs/api, target docs; test_docs).
packages+=(doxygen)
# The style check (test_format).
packages+=(clang-format)
# systemd-analyze for test_systemd_unit; /bin/kill (the unit's ExecReload).
packages+=(systemd procps)
# The ABI check (test_abi_*: abidw, abidiff).
packages+=(abigail-tools)

# --list: print the package list (for .ci/run) and stop.
if [ "${1:-}" = --list ]; then
  echo "${packages[*]}"
  exit 0
fi
# --also PKG...: these too (tests/run.sh --coverage: lcov).
if [ "${1:-}" = --also ]; then
  shift
  packages+=("$@")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
