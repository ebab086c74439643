package encap

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package on layer 1: the standard library and
// fastpath/packet, nothing else (see ARCHITECTURE.md).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		t.Skip("no go command in PATH")
	}
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		std := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".")
		if !std && imp != "github.com/ringnet/ringnet/fastpath/packet" {
			t.Errorf("encap imports %s; it may import only the standard library and fastpath/packet", imp)
		}
	}
}
