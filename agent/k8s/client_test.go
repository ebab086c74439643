package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientAPIServer: --api-server replaces the kubeconfig's server, and
// a malformed one is refused with a message that says what to give.
func TestClientAPIServer(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.96.0.1:443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for apiServer, want := range map[string]string{"": "10.96.0.1:443", "192.168.50.10:6443": "192.168.50.10:6443", "[fd00::10]:6443": "[fd00::10]:6443"} {
		c, err := Client(kc, apiServer)
		if err != nil {
			t.Fatalf("Client(%q): %v", apiServer, err)
		}
		if got := c.Discovery().RESTClient().Get().URL().Host; got != want {
			t.Errorf("--api-server %q: requests go to %s, want %s", apiServer, got, want)
		}
	}
	for _, bad := range []string{"192.168.50.10", ":6443", "host:"} {
		if _, err := Client(kc, bad); err == nil || !strings.Contains(err.Error(), "want host:port") {
			t.Errorf("Client(--api-server %q): %v, want an error asking for host:port", bad, err)
		}
	}
}
