package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/ringnet/ringnet/"

// rules: for each package (or folder prefix ending in "/"), the non-std
// imports it may have. Prefix rules match the longest prefix.
var rules = map[string][]string{
	// Layer 0: leaves.
	"fastpath/packet": {},
	"fastpath/stats":  {mod + "fastpath/packet"},
	"tables/":         {mod + "tables/"},
	// Layer 1: tables, OS edge.
	"fastpath/xsk": {"golang.org/x/sys/unix"},
	"fastpath/xdp": {"golang.org/x/sys/unix", "github.com/cilium/ebpf", "github.com/vishvananda/netlink"},
	"encap":        {mod + "fastpath/packet"},
	// Layer 2: pipelines.
	"fastpath/pipeline": {mod + "fastpath/", mod + "tables/", mod + "encap", "golang.org/x/sys/unix"},
	// The slow path: layer 1 TAP edge and layer 2 punt handling.
	"slowpath/tap": {"github.com/songgao/water", "golang.org/x/sys/unix"},
	"slowpath":     {mod + "fastpath/", mod + "slowpath/tap", mod + "nsnetlink", "github.com/vishvananda/netlink", "github.com/vishvananda/netns", "golang.org/x/sys/unix"},
	// Netlink sockets in a namespace without CAP_SYS_ADMIN where possible.
	"nsnetlink": {"github.com/vishvananda/netns"},
	// The CNI plugin: small, short-lived, never client-go or the daemon.
	"agent/api":       {},
	"cni":             {"github.com/containernetworking/cni", "github.com/containernetworking/plugins", "github.com/vishvananda/netlink", mod + "agent/api", mod + "podport"},
	"cmd/ringnet-cni": {"github.com/containernetworking/cni", mod + "cni"},
}

// banned anywhere under fastpath/ and tables/, whatever the rules say.
var banned = []string{"k8s.io/", "sigs.k8s.io/", "github.com/prometheus/", mod + "agent", mod + "cmd/", mod + "cni", mod + "podport"}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], mod), f[1:]
		allowed, ok := rule(pkg)
		hot := strings.HasPrefix(pkg, "fastpath/") || strings.HasPrefix(pkg, "tables/")
		if !ok && !hot {
			continue
		}
		checked++
		for _, imp := range imports {
			if isStd(imp) {
				continue
			}
			for _, b := range banned {
				if hot && strings.HasPrefix(imp, b) {
					t.Errorf("%s imports %s: the fast path must not depend on the control plane", pkg, imp)
				}
			}
			if ok && !permitted(imp, allowed) {
				t.Errorf("%s imports %s; its layer allows only %v", pkg, imp, allowed)
			}
		}
	}
	// Kubernetes types stop at the agent's edge.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		if pkg == "agent/k8s" || pkg == "internal/kubetest" {
			continue
		}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "k8s.io/") {
				t.Errorf("%s imports %s: only agent/k8s talks to Kubernetes", pkg, imp)
			}
		}
	}
	if checked < 9 {
		t.Fatalf("checked only %d packages: the rules no longer match the tree", checked)
	}
}

func rule(pkg string) ([]string, bool) {
	best, bestLen, found := []string(nil), -1, false
	for k, v := range rules {
		match := pkg == k || (strings.HasSuffix(k, "/") && strings.HasPrefix(pkg, k))
		if match && len(k) > bestLen {
			best, bestLen, found = v, len(k), true
		}
	}
	return best, found
}

func permitted(imp string, allowed []string) bool {
	for _, a := range allowed {
		if imp == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(imp, a)) || strings.HasPrefix(imp, a+"/") {
			return true
		}
	}
	return false
}

// isStd reports whether imp is in the standard library: no dot in its
// first element.
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}
