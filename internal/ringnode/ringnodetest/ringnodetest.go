// Package ringnodetest is the TestMain of test packages that run ringnet
// nodes (internal/ringnode): it builds the binaries once per test binary.
package ringnodetest

import (
	"fmt"
	"os"
	"testing"

	"github.com/ringnet/ringnet/internal/ringnode"
)

// Main builds ringnetd and the CNI plugin into a temporary folder, sets
// *bins, runs the tests and exits; the folder goes when they end. Without
// root nothing is built (the tests skip).
func Main(m *testing.M, bins *ringnode.Binaries) {
	os.Exit(func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "ringnet-test-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if *bins, err = ringnode.Build(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}
