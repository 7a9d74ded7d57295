#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules into a versioned cache
# folder, once. Later runs reuse it. kubelb.testing.controlplane looks for the binaries there.
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
echo ">> the first build downloads modules and compiles for several minutes; later runs reuse it"
start=$(date +%s)
cd "$here"
for b in "${missing[@]}"; do
  echo ">>   go build ./$b"
  go build -trimpath -ldflags='-s -w' -o "$cache/$b.tmp" "./$b"
  mv "$cache/$b.tmp" "$cache/$b"
done
echo ">> control plane: built in $(( $(date +%s) - start ))s"
