#!/usr/bin/env bash
# Copies the Gateway API CRDs of the Go module pinned in go.mod (next to this script) into
# configs/crds/gateway-api/<channel>/ and records the version in configs/crds/gateway-api/VERSION.
# The module cache verifies the download against go.sum, so the files are the release's own.
# To move to another release: `make gateway-api-crds GATEWAY_API_VERSION=v1.5.2`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/../.." && pwd)/configs/crds/gateway-api"
module=sigs.k8s.io/gateway-api
command -v go >/dev/null || { echo "error: Go is needed to fetch $module" >&2; exit 1; }
cd "$here"
if [ -n "${GATEWAY_API_VERSION:-}" ]; then
  go mod edit -require="$module@$GATEWAY_API_VERSION"
  # A new version has no go.sum lines yet: this download adds them.
  GOFLAGS=-mod=mod go mod download "$module"
fi
info="$(go mod download -json "$module")"
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$info"; }
version="$(field Version)"
dir="$(field Dir)"
[ -n "$version" ] && [ -d "$dir/config/crd" ] || { echo "error: go mod download gave: $info" >&2; exit 1; }
for channel in standard experimental; do
  rm -rf "$out/$channel"
  mkdir -p "$out/$channel"
  for f in "$dir/config/crd/$channel"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    install -m 0644 "$f" "$out/$channel/"
  done
done
echo "$version" >"$out/VERSION"
echo ">> gateway-api CRDs $version: $(ls "$out/standard" | wc -l) standard, $(ls "$out/experimental" | wc -l) experimental files in $out"
