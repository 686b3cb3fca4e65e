//go:build tools

// Package tools exists so that `go mod tidy` keeps the Prometheus server this module builds.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
