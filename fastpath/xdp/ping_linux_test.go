package xdp

import (
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"
)

// With the program attached natively on the host end of a veth pair and no
// socket registered, the fallback decides: Drop means the pod cannot reach
// the host (its ARP requests die in XDP, so it receives nothing at all), Pass
// means the kernel answers as if ringnet were not there.
func TestPingThroughFallback(t *testing.T) {
	ping, err := exec.LookPath("ping")
	if err != nil {
		t.Fatalf("this test needs ping (Debian: iputils-ping): %v", err)
	}
	for _, tc := range []struct {
		fallback Action
		reach    bool
	}{
		{Drop, false},
		{Pass, true},
	} {
		t.Run(tc.fallback.String(), func(t *testing.T) {
			host, pod := newTestNS(t), newTestNS(t)
			host.disableIPv6(t)
			pod.disableIPv6(t)
			dev, eth0 := host.addVeth(t, vethOptions{
				Name: "rnxh0", PeerName: "eth0", Peer: pod,
				Addr: "192.0.2.1/24", PeerAddr: "192.0.2.2/24",
			})
			p := newTestProgram(t, ProgramOptions{Queues: 1, Fallback: tc.fallback})
			a, err := attachIn(host, p, dev, ModeNative)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })

			before := stats(t, pod, eth0)
			out, err := exec.Command("ip", "netns", "exec", pod.Name,
				ping, "-n", "-q", "-c", "2", "-W", "1", "192.0.2.1").CombinedOutput()
			after := stats(t, pod, eth0)
			if reached := err == nil; reached != tc.reach {
				t.Errorf("ping from the pod: reached %v, want %v (%v)\n%s", reached, tc.reach, err, out)
			}
			sent, received := after.TxPackets-before.TxPackets, after.RxPackets-before.RxPackets
			t.Logf("pod eth0: sent %d, received %d packets", sent, received)
			if sent == 0 {
				t.Errorf("pod eth0 sent nothing: the test did not test")
			}
			if gotSome := received > 0; gotSome != tc.reach {
				t.Errorf("pod eth0 received %d packets; want some: %v", received, tc.reach)
			}
		})
	}
}

type linkStats struct{ TxPackets, RxPackets uint64 }

func stats(t *testing.T, ns *testNS, dev netlink.Link) linkStats {
	t.Helper()
	l, err := ns.NL.LinkByIndex(dev.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		t.Fatalf("netns %s: no statistics for %s", ns.Name, l.Attrs().Name)
	}
	return linkStats{TxPackets: s.TxPackets, RxPackets: s.RxPackets}
}
