#!/usr/bin/env bash
# Builds the helm CLI from the helm.sh/helm/v4 Go module pinned in go.mod (next to this script)
# into a versioned cache folder, once; later runs reuse it. Prints the binary's path last, so
# callers can do `helm="$(bash hack/helm/build.sh | tail -1)"`.
# Module downloads go through GOPROXY and are checked against go.sum.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module=helm.sh/helm/v4
version="$(awk -v m="$module" '$1==m{print $2; exit} $2==m{print $3; exit}' "$here/go.mod")"
[ -n "$version" ] || { echo "error: $module is not pinned in $here/go.mod" >&2; exit 1; }
cache="${KUBELB_HELM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubelb/tools/helm-${version}}"

if [ -x "$cache/helm" ]; then
  echo ">> helm: reusing $cache/helm" >&2
  echo "$cache/helm"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build helm $version" >&2; exit 1; }
mkdir -p "$cache"
echo ">> helm: building $module/cmd/helm $version into $cache" >&2
echo ">> the first build downloads modules and compiles for a few minutes; later runs reuse it" >&2
start=$(date +%s)
cd "$here"

# The version stamp helm's own release build sets, so `helm version` tells the truth.
ldflags="-s -w -X $module/internal/version.version=$version -X $module/internal/version.gitTreeState=clean"

# Build into a staging folder and move into place only when complete, so an interrupted build
# leaves nothing that a later run would reuse.
stage="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
CGO_ENABLED=0 go build -mod=readonly -v -trimpath -ldflags="$ldflags" -o "$stage/helm" "$module/cmd/helm" 2>&1 \
  | awk -v t0="$start" '
      /^(go: |#|.*\.go:[0-9]+)/ { print; next }   # downloads and errors verbatim
      { n++; if (n % 100 == 0) { printf ">>   compiled %d packages (%ds)\n", n, systime() - t0; fflush() } }' >&2
mv "$stage/helm" "$cache/helm"
echo ">> helm: built $version in $(( $(date +%s) - start ))s" >&2
echo "$cache/helm"
