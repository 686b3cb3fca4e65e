//go:build tools

// Package tools records that this module exists to build helm.sh/helm/v4/cmd/helm. Helm 4 applies server-side, so
// the tests install with both majors.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
