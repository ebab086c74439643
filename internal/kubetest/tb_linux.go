package kubetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB that StartT uses; *testing.T and *testing.B
// have it. Taking it, not testing.TB, keeps package testing out of
// binaries that import this package.
type TB interface {
	Helper()
	Cleanup(func())
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
}

// StartT is Start for tests and benchmarks: it calls Require, then Start,
// and stops the cluster in tb's cleanup, also when the test fails, first
// logging the ends of the logs if it did; a failed Stop is an error.
func StartT(tb TB) *Cluster {
	tb.Helper()
	Require(tb)
	c, err := Start(Options{})
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Logf("kubetest: kube-apiserver %s ready at %s in %v (dir %s)", Version, c.URL, c.Startup.Round(time.Millisecond), c.Dir)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("kubetest: %s%s", strings.TrimPrefix(c.etcd.tail(), "\n"), c.apiserver.tail())
		}
		if err := c.Stop(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return c
}

// Require skips the test unless root, and unless kube-apiserver and etcd
// are there or scripts/kube-apiserver.sh provides them: it runs the script
// once per process, when one is missing (minutes the first time; its
// progress goes to stderr).
func Require(tb TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("kubetest: needs root, like the other integration tests (scripts/kube-apiserver.sh installs etcd)")
	}
	_, _, err := binaries(Options{})
	if errors.Is(err, ErrNotInstalled) {
		if ierr := install(); ierr != nil {
			tb.Skip("kubetest: " + err.Error() + "; the script failed (" + ierr.Error() +
				"), so the Kubernetes integration tests are skipped")
		}
		_, _, err = binaries(Options{})
	}
	if err != nil {
		tb.Skip("kubetest: " + err.Error())
	}
}

var (
	installOnce sync.Once
	installErr  error // written once, by installOnce
)

// install runs scripts/kube-apiserver.sh, found above the working
// directory (go test runs in the package's) or above this source file.
func install() error {
	installOnce.Do(func() {
		script, err := findUp("scripts/kube-apiserver.sh")
		if err != nil {
			installErr = err
			return
		}
		cmd := exec.Command(script)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			installErr = errors.New(script + ": " + err.Error())
		}
	})
	return installErr
}

// findUp returns the path of rel (slash-separated, relative to the
// repository's root) found in the working directory (go test runs in the
// package's), this source file's directory, or one above either.
func findUp(rel string) (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New(rel + " not found above the working directory")
}
