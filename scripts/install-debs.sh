#!/usr/bin/env bash
# Install the Debian packages of one package list (as root): scripts/install-debs.sh LIST
# LIST: one package a line, first column the package name, '#' comments (the format of
# koral_ansible/data/host-packages.txt). Idempotent: installs only what is missing.
set -euo pipefail
list=${1:?usage: scripts/install-debs.sh LIST}
mapfile -t DEBS < <(sed -e 's/#.*//' "$list" | awk 'NF { print $1 }')
missing=()
for p in "${DEBS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "error: run as root to install: ${missing[*]}" >&2; exit 1; }
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
