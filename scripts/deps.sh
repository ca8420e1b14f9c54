#!/usr/bin/env bash
# Installs Vigil's build and test dependencies from Debian bookworm's packages (apt-get; sudo
# when not root). Safe to run repeatedly: it installs only what is missing.
set -euo pipefail
PACKAGES=(
  g++ cmake ninja-build pkg-config git ca-certificates
  libboost-dev libssl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libspdlog-dev doctest-dev libsqlite3-dev libglib2.0-dev libpq-dev libsodium-dev
  dconf-cli jq procps openssl sqlite3 dpkg-dev
)
if [ "${1:-}" = "--test" ]; then
  # chromium, chromium-driver and python3: the dashboard test in a headless browser.
  # lintian, systemd (systemd-analyze, and booted by systemd-nspawn), adduser, debconf: the
  # package test.
  PACKAGES+=(clang-14 libclang-rt-14-dev postgresql chromium chromium-driver python3
             lintian systemd systemd-container adduser debconf)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
