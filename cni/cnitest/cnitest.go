// Package cnitest drives CNI plugins the way a person or a runtime does
// from a shell: through cnitool, the CNI project's reference caller, run
// inside a node's network namespace. The root tests in package cni and the
// CNI latency benchmark (bench/cni) share it.
//
// cnitool is built once from the Go module proxy at a pinned version and
// kept in the user's cache directory, outside the repository. It keeps its
// result cache in /var/lib/cni/results, one file per network name,
// container ID and interface; RemoveResults clears one network's files, so
// callers give each network a name of its own.
package cnitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// CnitoolVersion is the cnitool release the tests and the benchmark use.
const CnitoolVersion = "v1.3.1"

// ResultsDir is where cnitool (libcni's default cache) keeps ADD results.
const ResultsDir = "/var/lib/cni/results"

var (
	installOnce sync.Once
	installPath string
	installErr  error
)

// InstallCnitool returns the path of cnitool CnitoolVersion, building it
// with `go install` into <user cache dir>/ringnet/cnitool-VERSION the first
// time (a few seconds; the Go build cache makes later builds quick).
func InstallCnitool() (string, error) {
	installOnce.Do(func() { installPath, installErr = installCnitool() })
	return installPath, installErr
}

func installCnitool() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cnitool: no cache directory: %w", err)
	}
	dir := filepath.Join(cache, "ringnet", "cnitool-"+CnitoolVersion)
	bin := filepath.Join(dir, "cnitool")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cnitool: %w", err)
	}
	// Build into a temporary directory and rename, so that a concurrent or
	// interrupted build never leaves a half-written binary at bin.
	tmp, err := os.MkdirTemp(dir, "build")
	if err != nil {
		return "", fmt.Errorf("cnitool: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "github.com/containernetworking/cni/cnitool@"+CnitoolVersion)
	cmd.Dir = tmp // outside any module: go install pkg@version ignores go.mod anyway
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install cnitool@%s: %w\n%s", CnitoolVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "cnitool"), bin); err != nil {
		return "", fmt.Errorf("cnitool: %w", err)
	}
	return bin, nil
}

// Tool runs cnitool against one directory of network configurations, with
// the plugins found on CNIPath, from inside a node's network namespace, as
// a runtime on that node would.
type Tool struct {
	Bin         string   // cnitool
	NodeNetns   string   // path of the node's network namespace, e.g. /run/netns/X
	CNIPath     []string // plugin directories (CNI_PATH)
	NetConfPath string   // directory of .conflist files (NETCONFPATH)
}

// Call is one cnitool invocation.
type Call struct {
	Command string // add, check, del, status, gc
	Network string // the conflist's "name"
	Netns   string // the pod's network namespace path
	IfName  string // default eth0
	// Args are CNI_ARGS pairs, e.g. K8S_POD_NAMESPACE=default.
	Args []string
	// CapArgs are capability arguments (CAP_ARGS), e.g. portMappings.
	CapArgs map[string]any
}

// Output is what one cnitool invocation printed and how long it took,
// from exec to exit.
type Output struct {
	Stdout, Stderr []byte
	Took           time.Duration
}

// Run runs one call. Its thread enters the node namespace before exec, so
// cnitool and the plugins it execs run there; the measured time is the
// child's, from start to exit.
func (t Tool) Run(c Call) (Output, error) {
	var o Output
	env := append(os.Environ(), "CNI_PATH="+strings.Join(t.CNIPath, ":"), "NETCONFPATH="+t.NetConfPath)
	if len(c.Args) > 0 {
		env = append(env, "CNI_ARGS="+strings.Join(c.Args, ";"))
	}
	if len(c.CapArgs) > 0 {
		b, err := json.Marshal(c.CapArgs)
		if err != nil {
			return o, fmt.Errorf("CAP_ARGS: %w", err)
		}
		env = append(env, "CAP_ARGS="+string(b))
	}
	args := []string{c.Command, c.Network, c.Netns}
	if c.IfName != "" {
		args = append(args, "--ifname", c.IfName)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(t.Bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &stdout, &stderr
	err := ns.WithNetNSPath(t.NodeNetns, func(ns.NetNS) error {
		start := time.Now()
		err := cmd.Run()
		o.Took = time.Since(start)
		return err
	})
	o.Stdout, o.Stderr = stdout.Bytes(), stderr.Bytes()
	if err != nil {
		return o, fmt.Errorf("cnitool %s %s %s: %w: %s", c.Command, c.Network, c.Netns, err,
			strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	return o, nil
}

// Result is the part of a CNI result (any spec version from 0.3.0 on) the
// tests read.
type Result struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
	Routes []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	} `json:"routes"`
}

// ParseResult decodes the result cnitool add printed.
func ParseResult(out []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("cnitool printed no CNI result: %w: %q", err, out)
	}
	return r, nil
}

// RemoveResults removes cnitool's cached results of network name. cnitool
// DEL removes them itself; this is for cleanup after a failed test.
func RemoveResults(name string) {
	files, _ := filepath.Glob(filepath.Join(ResultsDir, name+"-*"))
	for _, f := range files {
		os.Remove(f)
	}
}
