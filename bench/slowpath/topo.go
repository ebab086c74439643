package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
)

// The topology's fixed addressing, private to its own namespaces.
const (
	nodeIP   = "192.168.77.1" // the node's address, on a veth in the node namespace
	nodeIP6  = "fd77::1"
	gwIP     = "169.254.1.1"
	gwMAC    = "ee:ee:ee:ee:ee:ee"
	iperfA   = 5201
	sockPort = 11111
	floodDst = 9 // UDP port the flood is sent to on the node (closed)
)

type pod struct {
	ns, hostIf, ip, ip6, mac string
}

// topo is one node namespace with three pods made by "ringnet pod add":
//
//	pod A (10.244.0.10) ==veth== rna [node: up0 192.168.77.1] rnb ==veth== pod B (10.244.0.11)
//	                                          rnc ==veth== pod C (10.244.0.12, the flood's source)
type topo struct {
	node     string
	pods     [3]pod
	bin      struct{ ringnet, ringnetd string }
	dir      string
	podsFile string
	floodCfg string
	extra    []string // ringnetd flags for every run
	procs    child.Group
	logw     io.Writer
	made     []string
}

const nsPrefix = "rnsp-"

func newTopo(ctx context.Context, dir string, logw io.Writer) (*topo, error) {
	base := fmt.Sprintf("%s%d-", nsPrefix, os.Getpid())
	t := &topo{node: base + "node", dir: dir, logw: logw}
	for i, n := range []string{"a", "b", "c"} {
		t.pods[i] = pod{ns: base + n, hostIf: "rn" + n, ip: fmt.Sprintf("10.244.0.%d", 10+i),
			ip6: fmt.Sprintf("fd00::%x", 0xa+i), mac: fmt.Sprintf("02:00:00:00:00:%02x", 0xa+i)}
	}
	return t, t.setup(ctx)
}

// build compiles ringnet and ringnetd from the module at root into dir.
func (t *topo) build(ctx context.Context, root string) error {
	t.bin.ringnet, t.bin.ringnetd = filepath.Join(t.dir, "ringnet"), filepath.Join(t.dir, "ringnetd")
	for _, b := range []struct{ out, pkg string }{{t.bin.ringnet, "./cmd/ringnet"}, {t.bin.ringnetd, "./cmd/ringnetd"}} {
		fmt.Fprintf(t.logw, "build %s\n", b.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return nil
}

func (t *topo) setup(ctx context.Context) error {
	root, err := child.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if err := t.build(ctx, root); err != nil {
		return err
	}
	for _, n := range []string{t.node, t.pods[0].ns, t.pods[1].ns, t.pods[2].ns} {
		if _, err := child.Run(ctx, "", "ip", "netns", "add", n); err != nil {
			return err
		}
		t.made = append(t.made, n)
		if _, err := child.Run(ctx, n, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	var pods strings.Builder
	pods.WriteString("pods:\n")
	for _, p := range t.pods {
		if _, err := child.Run(ctx, t.node, t.bin.ringnet, "pod", "add", "--netns", "/run/netns/"+p.ns,
			"--host-if", p.hostIf, "--ipv4", p.ip, "--ipv6", p.ip6, "--mac", p.mac); err != nil {
			return err
		}
		fmt.Fprintf(&pods, "- {name: %s, hostInterface: %s, mac: %q, ipv4: %s, ipv6: %q}\n", p.hostIf, p.hostIf, p.mac, p.ip, p.ip6)
	}
	t.podsFile = filepath.Join(t.dir, "pods.yaml")
	if err := os.WriteFile(t.podsFile, []byte(pods.String()), 0o644); err != nil {
		return err
	}
	// The node's own address, on a veth (no dummy module here), and no
	// forwarding: host ↔ pod traffic is local to the node either way.
	if err := child.RunAll(ctx, t.node,
		[]string{"ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p"},
		[]string{"ip", "link", "set", "up0", "up"},
		[]string{"ip", "link", "set", "up0p", "up"},
		[]string{"ip", "addr", "add", nodeIP + "/24", "dev", "up0"},
		[]string{"ip", "addr", "add", nodeIP6 + "/64", "dev", "up0", "nodad"},
		[]string{"sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"},
	); err != nil {
		return fmt.Errorf("node address: %w", err)
	}
	t.floodCfg = filepath.Join(t.dir, "flood.trafgen")
	return os.WriteFile(t.floodCfg, []byte(floodConfig(t.pods[2])), 0o644)
}

// cleanup kills what runs and removes the namespaces; safe to call twice.
func (t *topo) cleanup() {
	t.procs.KillAll()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(t.made) - 1; i >= 0; i-- {
		if out, err := child.Run(ctx, "", "ip", "netns", "pids", t.made[i]); err == nil {
			for _, f := range strings.Fields(out) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_, _ = child.Run(ctx, "", "ip", "netns", "del", t.made[i])
	}
	t.made = nil
}

// kernelPath makes the node's kernel reach pod A over its veth directly,
// as a kernel CNI (Calico) does: a /32 route and a permanent neighbour on
// the host end, and a permanent neighbour for the gateway in the pod (no
// one answers its ARP without ringnetd). undo reverses it.
func (t *topo) kernelPath(ctx context.Context, undo bool) error {
	a := t.pods[0]
	if undo {
		_, _ = child.Run(ctx, t.node, "ip", "route", "del", a.ip+"/32", "dev", a.hostIf)
		_, _ = child.Run(ctx, t.node, "ip", "neigh", "del", a.ip, "dev", a.hostIf)
		_, _ = child.Run(ctx, a.ns, "ip", "neigh", "del", gwIP, "dev", "eth0")
		return nil
	}
	if err := child.RunAll(ctx, t.node,
		[]string{"ip", "route", "replace", a.ip + "/32", "dev", a.hostIf},
		[]string{"ip", "neigh", "replace", a.ip, "dev", a.hostIf, "lladdr", a.mac, "nud", "permanent"},
	); err != nil {
		return err
	}
	_, err := child.Run(ctx, a.ns, "ip", "neigh", "replace", gwIP, "dev", "eth0", "lladdr", gwMAC, "nud", "permanent")
	return err
}

// floodConfig is a trafgen config of one 60-byte UDP frame from pod C to
// the node's address (a closed port), with the gateway's MAC as
// destination: exactly what the fast path punts as to_host_new (the node
// never answers it).
func floodConfig(c pod) string {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x0c})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 46)
	copy(ip[12:], []byte{10, 244, 0, 12})
	copy(ip[16:], []byte{192, 168, 77, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(f[34:], 40000)
	binary.BigEndian.PutUint16(f[36:], floodDst)
	binary.BigEndian.PutUint16(f[38:], 26)
	var b strings.Builder
	fmt.Fprintf(&b, "# 60-byte UDP frame %s -> %s:%d, to the gateway's MAC\n{\n", c.ip, nodeIP, floodDst)
	for i, x := range f {
		fmt.Fprintf(&b, "0x%02x", x)
		if i+1 < len(f) {
			b.WriteString(", ")
		}
		if i%12 == 11 {
			b.WriteString("\n")
		}
	}
	b.WriteString("\n}\n")
	return b.String()
}
