package podport

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/ringnet/ringnet/internal/netnstest"
)

func TestSetupTeardown(t *testing.T) {
	node, pod := netnstest.New(t, "rnN"), netnstest.New(t, "rnP")
	mac, _ := net.ParseMAC("02:00:00:00:01:01")
	cfg := Config{NetNS: pod.Path, HostIfname: "rnt0", IPv4: netip.MustParseAddr("10.244.1.5"),
		IPv6: netip.MustParseAddr("fd00:1::5"), PodMAC: mac, MTU: 1450, Queues: 2}
	// A node routes (ip_forward=1); new interfaces inherit it unless Setup
	// turns it off on the host end.
	netnstest.Run(t, node.Name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	var port Port
	node.Do(t, func() error {
		var err error
		port, err = Setup(cfg)
		return err
	})
	if port.PodMAC.String() != mac.String() || port.HostIfname != "rnt0" || port.HostIndex == 0 {
		t.Errorf("Setup returned %+v", port)
	}

	// Pod side.
	link := netnstest.Run(t, pod.Name, "ip", "-d", "link", "show", "eth0")
	for _, want := range []string{"mtu 1450", "state UP", mac.String(), "numtxqueues 2", "numrxqueues 2"} {
		if !strings.Contains(link, want) {
			t.Errorf("pod eth0 lacks %q:\n%s", want, link)
		}
	}
	if a := netnstest.Run(t, pod.Name, "ip", "addr", "show", "eth0"); !strings.Contains(a, "10.244.1.5/32") || !strings.Contains(a, "fd00:1::5/128") {
		t.Errorf("pod addresses:\n%s", a)
	}
	if r := netnstest.Run(t, pod.Name, "ip", "route"); !strings.Contains(r, "default via 169.254.1.1 dev eth0 onlink") {
		t.Errorf("pod IPv4 routes:\n%s", r)
	}
	if r := netnstest.Run(t, pod.Name, "ip", "-6", "route"); !strings.Contains(r, "default via fe80::1 dev eth0") {
		t.Errorf("pod IPv6 routes:\n%s", r)
	}
	k := netnstest.Run(t, pod.Name, "ethtool", "-k", "eth0")
	for _, off := range []string{"tx-checksumming: off", "tcp-segmentation-offload: off", "generic-segmentation-offload: off"} {
		if !strings.Contains(k, off) {
			t.Errorf("pod eth0 offloads: want %q in\n%s", off, k)
		}
	}
	// Every transmit offload ethtool can change, by its own names.
	var changed int
	for _, line := range strings.Split(k, "\n") {
		name, state, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !isTxOffload(name) || strings.Contains(state, "[fixed]") {
			continue
		}
		changed++
		if !strings.HasPrefix(state, "off") {
			t.Errorf("pod eth0: %s is %s, want off", name, state)
		}
	}
	if changed < 5 {
		t.Errorf("ethtool -k lists only %d changeable tx offloads on a veth:\n%s", changed, k)
	}

	// Host side.
	host := netnstest.Run(t, node.Name, "ip", "link", "show", "rnt0")
	if !strings.Contains(host, "ee:ee:ee:ee:ee:ee") || !strings.Contains(host, "mtu 1450") {
		t.Errorf("host end:\n%s", host)
	}
	if v := netnstest.Run(t, node.Name, "sysctl", "-n", "net.ipv4.conf.rnt0.forwarding"); strings.TrimSpace(v) != "0" {
		t.Errorf("host end forwards IPv4 (forwarding=%s): with ringnetd down the node would route pod traffic", strings.TrimSpace(v))
	}
	if v := netnstest.Run(t, node.Name, "sysctl", "-n", "net.ipv6.conf.rnt0.disable_ipv6"); strings.TrimSpace(v) != "1" {
		t.Errorf("host end has IPv6 enabled")
	}

	// A second port with the same host name fails and removes nothing.
	node.Do(t, func() error {
		if _, err := Setup(cfg); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("second Setup with the same name: %v", err)
		}
		return nil
	})
	netnstest.Run(t, node.Name, "ip", "link", "show", "rnt0")

	node.Do(t, func() error {
		if err := Teardown("rnt0"); err != nil {
			return err
		}
		return Teardown("rnt0") // idempotent
	})
	if _, err := netnstest.Output(pod.Name, "ip", "link", "show", "eth0"); err == nil {
		t.Error("pod eth0 still exists after Teardown")
	}
}

// TestSetupFailureCleansUp makes the pod side fail (an address the kernel
// refuses) and checks the veth is gone.
func TestSetupFailureCleansUp(t *testing.T) {
	node, pod := netnstest.New(t, "rnN"), netnstest.New(t, "rnP")
	node.Do(t, func() error {
		_, err := Setup(Config{NetNS: pod.Path, HostIfname: "rnt1", PodIfname: "eth0",
			IPv4: netip.MustParseAddr("10.244.1.6"), PodMAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}}) // multicast MAC
		if err == nil {
			t.Error("Setup with a multicast pod MAC succeeded")
		}
		return nil
	})
	if out, err := netnstest.Output(node.Name, "ip", "link", "show", "rnt1"); err == nil {
		t.Errorf("host end left behind:\n%s", out)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{HostIfname: "x", IPv4: netip.MustParseAddr("10.0.0.1")}, "no netns path"},
		{Config{NetNS: "/x", HostIfname: "a-very-long-interface", IPv4: netip.MustParseAddr("10.0.0.1")}, "1 to 15 bytes"},
		{Config{NetNS: "/x", HostIfname: "x"}, "neither an IPv4 nor an IPv6"},
		{Config{NetNS: "/x", HostIfname: "x", IPv4: netip.MustParseAddr("fd00::1")}, "is not IPv4"},
		{Config{NetNS: "/x", HostIfname: "x", IPv4: netip.MustParseAddr("10.0.0.1"), MTU: 20}, "MTU 20"},
	} {
		if _, err := Setup(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Setup(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
