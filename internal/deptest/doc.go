// Package deptest holds the test that keeps imports pointing down the
// layers of docs/architecture (ARCHITECTURE.md): leaves import only the
// standard library, the hot path never imports the control plane.
package deptest
