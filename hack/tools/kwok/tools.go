//go:build tools

// Package tools pins kwok, which turns Nodes and pods on them into fakes that look Running.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
