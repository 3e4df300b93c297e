#!/usr/bin/env bash
# Installs what node-agent needs to build, run and test on Debian 12 (as root). Idempotent.
# The .NET 10 SDK must already be on PATH (it is not a Debian package).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then echo "run as root (containerd, cgroups and CNI need it)" >&2; exit 1; fi
command -v dotnet >/dev/null || { echo "the .NET 10 SDK (dotnet) must be installed first" >&2; exit 1; }
pkgs=(containerd runc nftables containernetworking-plugins etcd-server etcd-client conntrack busybox-static gcc libc6-dev iproute2 curl python3 prometheus
      rpm lintian man-db)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
