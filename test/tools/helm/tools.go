//go:build tools

// Package tools records that this module exists to build helm.sh/helm/v3/cmd/helm.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
