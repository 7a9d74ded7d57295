//go:build tools

// Package types pins the prometheus-operator API types that controller-gen reads (crds.sh).
package types

import _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
