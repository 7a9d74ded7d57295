//go:build tools

// Package tools pins the helm CLI module so that go.mod and go.sum record it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
