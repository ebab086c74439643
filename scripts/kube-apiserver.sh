#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy, once, and prints its path
# on the last line of stdout; installs etcd (Debian etcd-server) when it is
# missing. internal/kubetest runs the two for the Kubernetes integration
# tests; without them those tests skip.
#
# Debian has no kube-apiserver package. k8s.io/kubernetes builds from the
# proxy in a scratch module that requires it and replaces every k8s.io/*
# staging module (v0.0.0 => ./staging/src/... in its go.mod) with the
# matching published v0.X.Y. The version is stamped with -X, else the
# binary calls itself v0.0.0.
#
# The build lives outside the repository, in the user cache directory
# (${XDG_CACHE_HOME:-~/.cache}/ringnet/kube-apiserver-VERSION), and is
# reused: run it as often as you like. Cold: about 6 minutes, 2 GB of RAM
# and 2 GB of Go build cache; afterwards: instant.
set -euo pipefail

version=v1.36.3
staging=v0.${version#v1.}
major=1
minor=$(cut -d. -f2 <<<"$version")

if ! command -v etcd >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "kube-apiserver: etcd is missing; install Debian's etcd-server as root" >&2
    exit 1
  fi
  echo "kube-apiserver: installing Debian package etcd-server (etcd)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ringnet/kube-apiserver-$version"
bin="$cache/kube-apiserver"
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "kube-apiserver: go is not on PATH; it builds kube-apiserver" >&2
  exit 1
fi
mkdir -p "$cache"
# One build at a time: a second caller waits for the first and reuses it.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi

src=$(mktemp -d "$cache/src.XXXXXX")
trap 'rm -rf "$src"' EXIT
trap 'echo "kube-apiserver: build failed (see above); the Kubernetes integration tests will skip" >&2' ERR
cd "$src"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS
echo "kube-apiserver: building kube-apiserver $version from the Go module proxy (about 6 minutes the first time) into $cache" >&2
go mod init ringnet.local/kube-apiserver-build >/dev/null 2>&1
go mod edit -require=k8s.io/kubernetes@$version
go mod download k8s.io/kubernetes@$version
modfile=$(go mod download -json k8s.io/kubernetes@$version | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
# Every staging module that k8s.io/kubernetes replaces with a directory of
# its own tree is published on its own as v0.MINOR.PATCH.
mods=$(awk '/=> \.\/staging\/src\// {print $1}' "$modfile" | sort -u)
if [[ -z $mods ]]; then
  echo "kube-apiserver: found no staging modules in $modfile" >&2
  exit 1
fi
for m in $mods; do
  go mod edit -replace="$m=$m@$staging"
done
cat >main.go <<'EOF'
// Package main only pins the kube-apiserver command in this module's graph.
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver"

func main() {}
EOF
echo "kube-apiserver: downloading and resolving modules (go mod tidy -e)" >&2
# -e: carry on past imports that do not resolve (test code elsewhere in
# the tree); those of kube-apiserver itself all do.
{ go mod tidy -e 2>&1 >/dev/null || true; } | { grep -v '^go: downloading' || true; } >&2
echo "kube-apiserver: compiling" >&2
v=k8s.io/component-base/version
c=k8s.io/client-go/pkg/version
go build -trimpath -o "$src/kube-apiserver" -ldflags "-s -w \
  -X $v.gitVersion=$version -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean \
  -X $c.gitVersion=$version -X $c.gitMajor=$major -X $c.gitMinor=$minor -X $c.gitTreeState=clean" \
  k8s.io/kubernetes/cmd/kube-apiserver
mv "$src/kube-apiserver" "$bin"
echo "kube-apiserver: built in $((SECONDS - start)) s" >&2
echo "$bin"
