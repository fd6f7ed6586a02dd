#!/usr/bin/env bash
# Installs the Debian packages FedDistill needs to build and run, and nothing else.
# A fast no-op when they are already present. Used by the Makefile and by docker/Dockerfile.
#
#   scripts/install-deps.sh            build + runtime packages (development machine, CI)
#   scripts/install-deps.sh --runtime  runtime libraries only (slim container image)
#   scripts/install-deps.sh --browser  build packages and headless Chromium (the dashboard's browser test)
set -euo pipefail

build_packages=(libopenblas-dev libsodium-dev libsqlite3-dev pkg-config zlib1g-dev)
runtime_packages=(libopenblas0 libsodium23 libsqlite3-0 zlib1g ca-certificates)

wanted=("${build_packages[@]}")
if [[ "${1:-}" == "--runtime" ]]; then
    wanted=("${runtime_packages[@]}")
elif [[ "${1:-}" == "--browser" ]]; then
    wanted+=(chromium)
fi

missing=()
for package in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    sudo=sudo
else
    sudo=
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
