// Package counters reads the counters the benchmarks prove their figures
// with: an interface's packet counters over netlink, the kernel's SNMP
// counters (/proc/net/snmp) and connection tracking statistics of a
// namespace, the packet counts of its iptables rules, and the counter
// block ringnetd prints on SIGUSR1 and at exit. Readers are cheap enough to call at the
// edges of a measurement window; nothing here keeps state between calls.
package counters

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Link is one interface's counters at one instant.
type Link struct {
	RxPackets, TxPackets, TxDropped, RxDropped uint64
	RxBytes, TxBytes                           uint64
}

// OpenNS returns a netlink handle inside the named network namespace
// (/run/netns/name). Its sockets keep working in that namespace; the
// caller closes it.
func OpenNS(name string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", name, err)
	}
	return nl, nil
}

// ReadLink reads an interface's counters over netlink (IFLA_STATS64: the
// same counters as /sys/class/net/IF/statistics, without a process per
// read).
func ReadLink(h *netlink.Handle, ifname string) (Link, error) {
	l, err := h.LinkByName(ifname)
	if err != nil {
		return Link{}, fmt.Errorf("read counters of %s: %w", ifname, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return Link{}, fmt.Errorf("read counters of %s: kernel sent none", ifname)
	}
	return Link{RxPackets: s.RxPackets, TxPackets: s.TxPackets, TxDropped: s.TxDropped, RxDropped: s.RxDropped,
		RxBytes: s.RxBytes, TxBytes: s.TxBytes}, nil
}

// SNMP reads a counter from /proc/net/snmp in a namespace, e.g. ("Ip",
// "ForwDatagrams").
func SNMP(ctx context.Context, nsName, group, name string) (uint64, error) {
	out, err := child.Run(ctx, nsName, "cat", "/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/net/snmp in %s: no %s %s", nsName, group, name)
}

// IPTables reads the packet count of every rule of a chain of the filter
// table, in order, with iptables command cmd ("iptables", whose backend is
// nf_tables on Debian, or "iptables-legacy") in namespace ns.
func IPTables(ctx context.Context, ns, cmd, chain string) ([]uint64, error) {
	out, err := child.Run(ctx, ns, cmd, "-t", "filter", "-L", chain, "-v", "-x", "-n")
	if err != nil {
		return nil, err
	}
	return parseIPTables(out)
}

// parseIPTables reads the first column (pkts) of iptables -L -v -x -n's
// rule lines, after the chain's header and the column titles.
func parseIPTables(out string) ([]uint64, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "Chain ") {
		return nil, fmt.Errorf("iptables -L: unexpected output %q", out)
	}
	var pkts []uint64
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("iptables -L: rule line %q: %w", line, err)
		}
		pkts = append(pkts, n)
	}
	return pkts, nil
}

// Conntrack reads the kernel's connection tracking statistics in
// namespace ns (/proc/net/stat/nf_conntrack, as conntrack -S shows them),
// summed over the CPUs: "insert", "drop", "early_drop", "found" and the
// rest by the file's own names. Left out is "entries", the number of
// connections tracked now, which is no count of events.
func Conntrack(ctx context.Context, ns string) (map[string]uint64, error) {
	out, err := child.Run(ctx, ns, "cat", "/proc/net/stat/nf_conntrack")
	if err != nil {
		return nil, err
	}
	return parseConntrack(out)
}

// parseConntrack sums the hexadecimal per-CPU lines of
// /proc/net/stat/nf_conntrack under its header's names.
func parseConntrack(out string) (map[string]uint64, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	names := strings.Fields(lines[0])
	if len(names) == 0 || names[0] != "entries" {
		return nil, fmt.Errorf("/proc/net/stat/nf_conntrack: unexpected header %q", lines[0])
	}
	m := map[string]uint64{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != len(names) {
			return nil, fmt.Errorf("/proc/net/stat/nf_conntrack: %d fields in %q, want %d", len(f), line, len(names))
		}
		for i, name := range names[1:] {
			n, err := strconv.ParseUint(f[i+1], 16, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/net/stat/nf_conntrack: %s: %w", name, err)
			}
			m[name] += n
		}
	}
	return m, nil
}

// Ringnetd parses the last counter block in ringnetd's output:
//
//	counters
//	port rna rx_frames=N tx_frames=N ...   -> "port.rna.rx_frames"
//	worker 0 forwarded=N dropped=N         -> "worker.0.forwarded"
//	reason forwarded N                     -> "reason.forwarded"
func Ringnetd(out string) (map[string]uint64, error) {
	i := strings.LastIndex(out, "counters\n")
	if i < 0 {
		return nil, fmt.Errorf("ringnetd printed no counters")
	}
	c := map[string]uint64{}
	for _, line := range strings.Split(out[i+len("counters\n"):], "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "port", "worker":
			for _, kv := range f[2:] {
				k, v, ok := strings.Cut(kv, "=")
				if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil {
					c[f[0]+"."+f[1]+"."+k] = n
				}
			}
		case "reason":
			if n, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				c["reason."+f[1]] = n
			}
		}
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("ringnetd's counters block is empty or unreadable: %q", out[i:])
	}
	return c, nil
}

// Delta returns after - before for every key of after (a counter missing
// from before counts from zero; ringnetd leaves out reasons at zero).
func Delta(before, after map[string]uint64) map[string]uint64 {
	d := make(map[string]uint64, len(after))
	for k, v := range after {
		if v >= before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// NonZero is m without its zero counts, for reports.
func NonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
