// Package agent will be ringnetd's control plane: desired state from the
// Kubernetes API or a static cluster file, IPAM, table compilation, metrics.
// Not built yet: ringnetd reads a static pods file (cmd/ringnetd).
package agent
