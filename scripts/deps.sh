#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need, when missing:
# Debian packages through apt-get, Go modules through the module proxy.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [ip]=iproute2 [ethtool]=ethtool [iperf3]=iperf3 [sockperf]=sockperf
  [trafgen]=netsniff-ng [ping]=iputils-ping [tcpdump]=tcpdump [taskset]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing packages ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -f "$(go env GOMODCACHE)/cache/download/github.com/cilium/ebpf/@v/v0.22.0.zip" ]]; then
  echo "deps: downloading Go modules"
fi
go mod download
