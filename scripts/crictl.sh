#!/usr/bin/env bash
# Builds crictl (sigs.k8s.io/cri-tools) from the Go module proxy, once, and
# prints its path. Debian has no cri-tools package; v1.34.0 is the version
# that builds from the proxy: its go.mod asks for k8s.io/* v0.34.0-rc.2,
# which we raise to v0.34.3, and the proxy's checksum database does not
# vouch for it (GONOSUMDB).
#
# The build lives outside the repository, in the user cache directory
# (${XDG_CACHE_HOME:-~/.cache}/ringnet/crictl-VERSION), and is reused: run
# it as often as you like. Cold: a few minutes; afterwards: instant.
set -euo pipefail

version=v1.34.0
k8s=v0.34.3
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ringnet/crictl-$version"
bin="$cache/crictl"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
src=$(mktemp -d "$cache/src.XXXXXX")
trap 'rm -rf "$src"' EXIT
cd "$src"
export GOFLAGS=-mod=mod GONOSUMDB=sigs.k8s.io/cri-tools GOTOOLCHAIN=local CGO_ENABLED=0
echo "crictl: building sigs.k8s.io/cri-tools $version (k8s.io/* at $k8s) into $cache" >&2
go mod init ringnet.local/crictl-build >/dev/null 2>&1
go mod edit -require=sigs.k8s.io/cri-tools@$version
go mod download sigs.k8s.io/cri-tools@$version
modsrc=$(go list -m -f '{{.Dir}}' sigs.k8s.io/cri-tools 2>/dev/null || true)
if [[ -z $modsrc ]]; then
  modsrc="$(go env GOMODCACHE)/sigs.k8s.io/cri-tools@$version"
fi
# Raise every k8s.io/* requirement of cri-tools that sits at a release
# candidate to the release; replace it so that the whole graph agrees.
for m in $(awk '/^\t?k8s\.io\/[^ ]+ v0\.34\.0-rc/ {print $1}' "$modsrc/go.mod" | sed 's/^\t//' | sort -u); do
  go mod edit -replace="$m=$m@$k8s"
done
go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$version" \
  -o "$src/crictl" sigs.k8s.io/cri-tools/cmd/crictl
mv "$src/crictl" "$bin"
echo "$bin"
