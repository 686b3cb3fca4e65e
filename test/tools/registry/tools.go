//go:build tools

// Package tools exists so that `go mod tidy` keeps the registry command this module builds.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
