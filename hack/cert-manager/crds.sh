#!/usr/bin/env bash
# Copies the cert-manager.io CRDs (Certificate, CertificateRequest, Issuer, ClusterIssuer) of the
# Go module pinned in go.mod (next to this script) into configs/crds/cert-manager/ and records
# the version in configs/crds/cert-manager/VERSION. The module cache verifies the download
# against go.sum, so the files are the release's own. The acme.cert-manager.io CRDs (Orders,
# Challenges) are left out: kubelb writes Certificates only.
# To move to another release: `make cert-manager-crds CERT_MANAGER_VERSION=v1.21.1`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/../.." && pwd)/configs/crds/cert-manager"
module=github.com/cert-manager/cert-manager
command -v go >/dev/null || { echo "error: Go is needed to fetch $module" >&2; exit 1; }
cd "$here"
if [ -n "${CERT_MANAGER_VERSION:-}" ]; then
  go mod edit -require="$module@$CERT_MANAGER_VERSION"
  # A new version has no go.sum lines yet: this download adds them.
  GOFLAGS=-mod=mod go mod download "$module"
fi
info="$(go mod download -json "$module")"
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$info"; }
version="$(field Version)"
dir="$(field Dir)"
[ -n "$version" ] && [ -d "$dir/deploy/crds" ] || { echo "error: go mod download gave: $info" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
for kind in certificates certificaterequests issuers clusterissuers; do
  install -m 0644 "$dir/deploy/crds/cert-manager.io_$kind.yaml" "$out/"
done
echo "$version" >"$out/VERSION"
echo ">> cert-manager CRDs $version: $(ls "$out"/*.yaml | wc -l) files in $out"
