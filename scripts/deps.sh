#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need, when missing:
# Debian packages through apt-get, Go modules through the module proxy.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [ip]=iproute2 [ethtool]=ethtool [iperf3]=iperf3 [sockperf]=sockperf
  [trafgen]=netsniff-ng [ping]=iputils-ping [tcpdump]=tcpdump [taskset]=util-linux
  # CNI tests and benchmark (cni/, bench/cni): portmap's rules, podman with
  # its CNI backend (runc: crun fails on hybrid cgroups), the image's busybox
  [iptables]=iptables [nsenter]=util-linux [podman]=podman [runc]=runc
  [conmon]=conmon [busybox]=busybox-static [containerd]=containerd
  # internal/topo decodes its captures (VXLAN on 8472) with tshark
  [tshark]=tshark
)
# file -> Debian package, for what is not a command on PATH
declare -A needfile=(
  [/usr/lib/cni/portmap]=containernetworking-plugins
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for f in "${!needfile[@]}"; do
  [[ -e $f ]] || missing+=("${needfile[$f]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing packages ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common asks whether non-root users may capture; answer no
  # beforehand so the install never waits on a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -f "$(go env GOMODCACHE)/cache/download/github.com/cilium/ebpf/@v/v0.22.0.zip" ]]; then
  echo "deps: downloading Go modules"
fi
go mod download
# crictl for the containerd end-to-end test: built once from the module
# proxy into the user cache (scripts/crictl.sh); without it the test skips.
if ! "$(dirname "$0")/crictl.sh" >/dev/null; then
  echo "deps: crictl could not be built (scripts/crictl.sh); TestContainerd will be skipped" >&2
fi
# kube-apiserver (built once from the module proxy into the user cache) and
# etcd (Debian etcd-server) for internal/kubetest; without them the
# Kubernetes integration tests skip.
if ! "$(dirname "$0")/kube-apiserver.sh" >/dev/null; then
  echo "deps: kube-apiserver or etcd could not be installed (scripts/kube-apiserver.sh); the Kubernetes integration tests will be skipped" >&2
fi
