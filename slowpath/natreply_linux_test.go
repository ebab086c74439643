package slowpath

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/internal/netnstest"
)

// natReplyRig is a node namespace running the slow path, whose uplink up0
// (192.168.77.1, fd77::1) leads to a client namespace; the node routes the
// client's addresses 198.51.100.7 and 2001:db8:7::7 via the client's
// 192.168.77.2 and fd77::2 out of up0. send writes into the TAP what the
// fast path writes for a reverse-NATed NodePort reply: a UDP datagram from
// the node's own address, port 30000, to the client's port 40000.
type natReplyRig struct {
	node, client netnstest.NS
	sp           *SlowPath
	conn4, conn6 net.PacketConn // the client's sockets on port 40000
	logFile      string         // the slow path's log
	tag          byte           // the last datagram's
}

var (
	natNode4, natClient4 = netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("198.51.100.7")
	natNode6, natClient6 = netip.MustParseAddr("fd77::1"), netip.MustParseAddr("2001:db8:7::7")
)

// newNATReplyRig starts the slow path in a fresh node namespace whose
// net.ipv4.conf.all.rp_filter is allRPFilter.
func newNATReplyRig(t *testing.T, allRPFilter string) *natReplyRig {
	t.Helper()
	netnstest.RequireRoot(t)
	r := &natReplyRig{node: nodeNS(t), client: netnstest.New(t, "rnC")}
	// A new namespace's IPv4 settings are copied from the root
	// namespace's: set those that matter here. New devices, the TAP
	// among them, get rp_filter 2 as on a host with systemd's defaults.
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=" + allRPFilter, "net.ipv4.conf.default.rp_filter=2",
		"net.ipv4.conf.all.accept_local=0", "net.ipv4.conf.default.accept_local=0"} {
		netnstest.Run(t, r.node.Name, "sysctl", "-qw", kv)
	}
	netnstest.Run(t, r.node.Name, "ip", "link", "set", "up0p", "netns", r.client.Name)
	netnstest.Run(t, r.client.Name, "ip", "link", "set", "up0p", "up")
	for _, a := range []string{"192.168.77.2/24", "198.51.100.7/32", "fd77::2/64", "2001:db8:7::7/128"} {
		netnstest.Run(t, r.client.Name, "ip", "addr", "add", a, "dev", "up0p", "nodad")
	}
	netnstest.Run(t, r.node.Name, "ip", "route", "add", "198.51.100.7/32", "via", "192.168.77.2", "dev", "up0")
	netnstest.Run(t, r.node.Name, "ip", "route", "add", "2001:db8:7::7/128", "via", "fd77::2", "dev", "up0")
	r.client.Do(t, func() (err error) {
		if r.conn4, err = net.ListenPacket("udp4", "198.51.100.7:40000"); err != nil {
			return err
		}
		r.conn6, err = net.ListenPacket("udp6", "[2001:db8:7::7]:40000")
		return err
	})
	t.Cleanup(func() { r.conn4.Close(); r.conn6.Close() })
	// The log goes to a file, which the test reads while the slow path
	// may still write.
	log, err := os.Create(filepath.Join(t.TempDir(), "slowpath.log"))
	if err != nil {
		t.Fatal(err)
	}
	r.logFile = log.Name()
	_, r.sp = startIn(t, r.node, Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	t.Cleanup(func() { r.sp.Close(); log.Close() })
	return r
}

// log returns what the slow path has logged so far.
func (r *natReplyRig) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send writes one reply into the TAP, from the node's address of the
// family to the client's, and reports whether the client received it
// within wait.
func (r *natReplyRig) send(t *testing.T, v6 bool, wait time.Duration) bool {
	t.Helper()
	r.tag++
	conn, node, f := r.conn4, natNode4, udpFrame(natNode4.String(), natClient4.String(), 30000, 40000, r.tag)
	if v6 {
		conn, node, f = r.conn6, natNode6, udp6Frame(natNode6, natClient6, 30000, 40000, r.tag)
	}
	copy(f[0:6], r.sp.MAC())
	copy(f[6:12], testGW.MAC[:])
	if sent, _, err := r.sp.dev.WriteBatch([][]byte{f}); sent != 1 || err != nil {
		t.Fatalf("write the reply into the TAP: sent %d, %v", sent, err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(wait))
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return false
		}
		if a := from.(*net.UDPAddr).AddrPort(); a.Addr().Unmap() != node || a.Port() != 30000 || n != 4 {
			t.Fatalf("the client received %d bytes from %s, want 4 from %s", n, from, netip.AddrPortFrom(node, 30000))
		}
		if buf[n-1] == r.tag {
			return true
		}
		// An earlier reply, delivered late: read on.
	}
}

// udp6Frame is an Ethernet/IPv6/UDP frame with a 4-byte payload ending in
// tag, its checksum filled in (IPv6 requires one).
func udp6Frame(src, dst netip.Addr, sport, dport uint16, tag byte) []byte {
	f := make([]byte, 14+40+8+4)
	binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv6)
	ip := f[14:54]
	ip[0], ip[6], ip[7] = 0x60, packet.ProtoUDP, 64
	binary.BigEndian.PutUint16(ip[4:], 12)
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	udp := f[54:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], 12)
	udp[len(udp)-1] = tag
	binary.BigEndian.PutUint16(udp[6:], packet.Checksum(udp, packet.PseudoHeaderSum(packet.ProtoUDP, src, dst, 12)))
	return f
}

func (r *natReplyRig) sysctl(t *testing.T, kv string) {
	t.Helper()
	netnstest.Run(t, r.node.Name, "sysctl", "-qw", kv)
}

// rpFilterDrops is the node namespace's count of packets dropped by the
// reverse-path filter (TcpExt IPReversePathFilter, counted per namespace).
func (r *natReplyRig) rpFilterDrops(t *testing.T) uint64 {
	t.Helper()
	lines := strings.Split(netnstest.Run(t, r.node.Name, "cat", "/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" {
			continue
		}
		for j := range names {
			if names[j] == "IPReversePathFilter" && j < len(values) {
				v, err := strconv.ParseUint(values[j], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("no TcpExt IPReversePathFilter in /proc/net/netstat")
	return 0
}

// martians is the machine's count of packets dropped as martian sources
// (in_martian_src of /proc/net/stat/rt_cache, summed over CPUs). Unlike
// rpFilterDrops it is not per namespace: other tests may add to it.
func martians(t *testing.T) uint64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(netnstest.Run(t, "", "cat", "/proc/net/stat/rt_cache")), "\n")
	col := slices.Index(strings.Fields(lines[0]), "in_martian_src")
	if col < 0 {
		t.Fatal("no in_martian_src in /proc/net/stat/rt_cache")
	}
	var sum uint64
	for _, l := range lines[1:] {
		v, err := strconv.ParseUint(strings.Fields(l)[col], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// The node forwards a reverse-NATed reply that the fast path writes into
// the TAP with one of the node's own addresses as source, out of the
// uplink to the client, with the sysctls Start sets on the TAP; and drops
// it, counted, without either of them, or with the reverse-path filter on
// in conf.all (the kernel applies the larger of conf.all's and the TAP's).
// IPv6 has neither check: its reply is forwarded whatever they say.
func TestNATReplyThroughTAP(t *testing.T) {
	r := newNATReplyRig(t, "0")
	tap := "net.ipv4.conf." + r.sp.TAP() + "."
	for key, want := range map[string]string{tap + "accept_local": "1", tap + "rp_filter": "0"} {
		if got := sysctl(t, r.node.Name, key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	if log := r.log(t); strings.Contains(log, "rp_filter") {
		t.Errorf("warned about rp_filter with conf.all.rp_filter=0:\n%s", log)
	}

	for _, tc := range []struct {
		name      string
		sysctls   []string // changed from what Start set
		forwarded bool
		rpFilter  bool // dropped by the reverse-path filter, not only as a martian
	}{
		{name: "as Start sets it", forwarded: true},
		{name: "without accept_local", sysctls: []string{tap + "accept_local=0"}},
		{name: "TAP rp_filter strict", sysctls: []string{tap + "rp_filter=1"}, rpFilter: true},
		{name: "TAP rp_filter loose", sysctls: []string{tap + "rp_filter=2"}, rpFilter: true},
		{name: "all rp_filter strict", sysctls: []string{"net.ipv4.conf.all.rp_filter=1"}, rpFilter: true},
		{name: "all rp_filter loose", sysctls: []string{"net.ipv4.conf.all.rp_filter=2"}, rpFilter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				for _, kv := range []string{tap + "accept_local=1", tap + "rp_filter=0", "net.ipv4.conf.all.rp_filter=0"} {
					r.sysctl(t, kv)
				}
			})
			for _, kv := range tc.sysctls {
				r.sysctl(t, kv)
			}
			rp, m := r.rpFilterDrops(t), martians(t)
			wait := 2 * time.Second
			if !tc.forwarded {
				wait = 300 * time.Millisecond
			}
			if got := r.send(t, false, wait); got != tc.forwarded {
				t.Fatalf("IPv4 reply forwarded to the client: %v, want %v", got, tc.forwarded)
			}
			if !r.send(t, true, 2*time.Second) {
				t.Errorf("IPv6 reply not forwarded to the client")
			}
			if tc.forwarded {
				return
			}
			wantRP := uint64(0)
			if tc.rpFilter {
				wantRP = 1
			}
			if got := r.rpFilterDrops(t) - rp; got != wantRP {
				t.Errorf("reverse-path filter drops: +%d, want +%d", got, wantRP)
			}
			if martians(t) == m {
				t.Errorf("no martian source counted: the reply was lost somewhere else")
			}
		})
	}
	if !r.send(t, false, 2*time.Second) {
		t.Errorf("IPv4 reply not forwarded once the sysctls are back as Start set them")
	}
}

// With conf.all.rp_filter on, Start warns that the node drops these
// replies, says what to set, and changes nothing global itself.
func TestNATReplyRPFilterWarning(t *testing.T) {
	for _, v := range []string{"1", "2"} {
		t.Run("rp_filter="+v, func(t *testing.T) {
			r := newNATReplyRig(t, v)
			log := r.log(t)
			for _, want := range []string{"level=WARN", "net.ipv4.conf.all.rp_filter=0", "rp_filter=" + v} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks %q:\n%s", want, log)
				}
			}
			if got := sysctl(t, r.node.Name, "net.ipv4.conf.all.rp_filter"); got != v {
				t.Errorf("conf.all.rp_filter = %s after Start, want %s, untouched", got, v)
			}
			if r.send(t, false, 300*time.Millisecond) {
				t.Errorf("IPv4 reply forwarded with conf.all.rp_filter=%s", v)
			}
		})
	}
}
