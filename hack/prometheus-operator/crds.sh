#!/usr/bin/env bash
# Generates the prometheus-operator CRDs kubelb uses (PodMonitor, ServiceMonitor) into
# configs/crds/prometheus-operator/ and records the version in its VERSION file.
# The Go module pinned in go.mod (next to this script) is only the API types
# (github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring): the release's
# example/prometheus-operator-crd/ YAMLs live in the repository's root module, which the module
# proxy does not serve. So they are generated from those types with controller-gen (pinned as a
# `tool` in go.mod), as upstream generates them, and annotated with the release as upstream does.
# The module cache verifies every download against go.sum.
# To move to another release: `make prometheus-operator-crds PROMETHEUS_OPERATOR_VERSION=v0.95.3`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/../.." && pwd)/configs/crds/prometheus-operator"
module=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
kinds=(podmonitors servicemonitors)
command -v go >/dev/null || { echo "error: Go is needed to fetch $module" >&2; exit 1; }
cd "$here"
if [ -n "${PROMETHEUS_OPERATOR_VERSION:-}" ]; then
  go mod edit -require="$module@$PROMETHEUS_OPERATOR_VERSION"
  # A new version has no go.sum lines yet: tidy adds them.
  GOFLAGS=-mod=mod go mod tidy
fi
version="$(go list -m -f '{{.Version}}' "$module")"
[ -n "$version" ] || { echo "error: no version of $module in go.mod" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go tool controller-gen crd:crdVersions=v1 "paths=$module/v1" "output:crd:dir=$work"
rm -rf "$out"
mkdir -p "$out"
for kind in "${kinds[@]}"; do
  src="$work/monitoring.coreos.com_$kind.yaml"
  [ -f "$src" ] || { echo "error: controller-gen wrote no $src" >&2; exit 1; }
  # Upstream's release files carry the operator version next to controller-gen's.
  sed "s|^\(    controller-gen.kubebuilder.io/version: .*\)$|\1\n    operator.prometheus.io/version: ${version#v}|" \
    "$src" >"$out/monitoring.coreos.com_$kind.yaml"
done
echo "$version" >"$out/VERSION"
echo ">> prometheus-operator CRDs $version: ${kinds[*]} in $out"
