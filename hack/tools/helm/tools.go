//go:build tools

// Package tools pins helm, used to lint, render and install charts/shoal.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
