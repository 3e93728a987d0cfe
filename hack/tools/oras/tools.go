//go:build tools

// Package tools pins the oras CLI, used to push OCI artifacts in tests and scripts.
package tools

import _ "oras.land/oras/cmd/oras"
