#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules into a versioned cache
# folder, once. Later runs reuse it. kubelb.localcluster.binaries computes the same folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$here/go.mod")"
cache="${KUBELB_CONTROLPLANE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubelb/controlplane/k8s-${k8s_version}-etcd-${etcd_version}}"
binaries=(etcd kube-apiserver kube-controller-manager)

missing=()
for b in "${binaries[@]}"; do [ -x "$cache/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo ">> control plane: reusing $cache"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build the test control plane (missing: ${missing[*]})" >&2; exit 1; }
mkdir -p "$cache"
echo ">> control plane: building ${missing[*]} (kubernetes $k8s_version, etcd $etcd_version) into $cache"
echo ">> the first build downloads modules and compiles for several minutes (about 9 min on 2 cores); later runs reuse it"
start=$(date +%s)
cd "$here"

# Stamp versions the way upstream release builds do, so /version and user agents are truthful
# (without this the binaries report v0.0.0-master).
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
kv=k8s.io/component-base/version
cv=k8s.io/client-go/pkg/version
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in "$kv" "$cv"; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
ldflags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version"

# One `go build` for all missing binaries shares compilation across them; outputs land in a
# staging folder and move into place only when complete, so an interrupted build reuses nothing.
stage="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
pkgs=(); for b in "${missing[@]}"; do pkgs+=("./$b"); done
go build -v -trimpath -ldflags="$ldflags" -o "$stage/" "${pkgs[@]}" 2>&1 \
  | awk -v t0="$start" '
      /^(go: |#|.*\.go:[0-9]+)/ { print; next }   # downloads and errors verbatim
      { n++; if (n % 250 == 0) { printf ">>   compiled %d packages (%ds)\n", n, systime() - t0; fflush() } }'
for b in "${missing[@]}"; do mv "$stage/$b" "$cache/$b"; done
echo ">> control plane: built ${missing[*]} in $(( $(date +%s) - start ))s"
echo ">> tests need only $cache (~215 MB); if disk is short, \`go clean -cache -modcache\` frees the"
echo ">> Go caches (~3.5 GB after this build), at the price of a cold build next time"
