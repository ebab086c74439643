package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	agentd "github.com/ringnet/ringnet/agent/daemon"
	"github.com/ringnet/ringnet/agent/flowlog"
	"github.com/ringnet/ringnet/agent/ipam"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// cniFlags are the flags of the CNI plugin's API and IPAM.
type cniFlags struct {
	podCIDRs prefixList
	socket   string
	stateDir string
	mtu      int
	flowLog  string
	flowMax  int
}

type prefixList []netip.Prefix

func (l *prefixList) String() string {
	var s []string
	for _, p := range *l {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*l = append(*l, p)
	}
	return nil
}

func addCNIFlags(fs *flag.FlagSet) *cniFlags {
	c := &cniFlags{}
	fs.Var(&c.podCIDRs, "pod-cidr", "the node's pod CIDR to hand addresses out of, IPv4 and/or IPv6 (repeat or comma-separate); enables the CNI plugin's API")
	fs.StringVar(&c.socket, "socket", api.DefaultSocket, "unix socket the CNI plugin calls")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/ringnet", "where address allocations are kept")
	fs.IntVar(&c.mtu, "mtu", 1500, "MTU of pod interfaces (with --cluster the default is the uplink's MTU less the largest tunnel overhead in use: VXLAN 50, IPIP 20)")
	fs.StringVar(&c.flowLog, "flow-log", "", "append every connection the fast path decides about (allowed, denied, translated) to this file as JSON lines; empty: keep the latest 1000 in memory only (ringnet flows)")
	fs.IntVar(&c.flowMax, "flow-log-max-size", 64, "rotate the flow log to FILE.1 when it reaches this many MiB")
	return c
}

// startAPI opens the address store, re-attaches the ports of pods that
// survived a restart, and serves the API on its socket: the CNI plugin's
// calls and the ringnet CLI's views (pol: the policy view's source, nil
// for none). The returned stop function closes the server and the store.
func startAPI(c *cniFlags, dp *pipeline.Dataplane, pol *agentd.Policies, log *slog.Logger) (stop func(), err error) {
	fs := dp.Config().XSK.FrameSize
	if max := pipeline.MaxMTU(fs); c.mtu < 576 || c.mtu > max {
		return nil, fmt.Errorf("--mtu %d out of range [576, %d]: frames of --frame-size %d hold at most MTU %d (--frame-size 4096: %d)",
			c.mtu, max, fs, max, pipeline.MaxMTU(4096))
	}
	store, err := ipam.Open(filepath.Join(c.stateDir, "ipam.db"), c.podCIDRs)
	if err != nil {
		return nil, err
	}
	d := agentd.New(dp, store, c.mtu, log)
	if c.flowMax < 1 {
		store.Close()
		return nil, fmt.Errorf("--flow-log-max-size %d: want at least 1 (MiB)", c.flowMax)
	}
	rec, err := flowlog.New(dp, flowlog.Options{Path: c.flowLog, MaxBytes: int64(c.flowMax) << 20, Ports: portNames(dp),
		Describe: pol.Describe, Log: log})
	if err != nil {
		store.Close()
		return nil, err
	}
	d.SetFlowLog(rec)
	d.SetPolicies(pol)
	ctx, cancel := context.WithCancel(context.Background())
	recDone := make(chan struct{})
	go func() { rec.Run(ctx); close(recDone) }()
	restored, missing, err := d.Restore()
	if err != nil {
		log.Warn("some pods could not be re-attached", "err", err)
	}
	if restored+missing > 0 {
		log.Info("restored pods", "attached", restored, "without_veth", missing)
	}
	ln, err := listenUnix(c.socket)
	if err != nil {
		cancel()
		<-recDone
		store.Close()
		return nil, err
	}
	srv := api.NewServer(d)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server", "err", err)
		}
	}()
	log.Info("serving the CNI plugin and the ringnet CLI", "socket", c.socket, "pod_cidrs", c.podCIDRs.String(), "state", store.Pools())
	return func() {
		srv.Close()
		os.Remove(c.socket)
		cancel()
		<-recDone
		store.Close()
	}, nil
}

// portNames names the dataplane's ports by ID, for the flow log.
func portNames(dp *pipeline.Dataplane) func() map[uint16]string {
	return func() map[uint16]string {
		ports, _ := dp.Stats()
		m := make(map[uint16]string, len(ports))
		for _, p := range ports {
			m[p.ID] = p.Ifname
		}
		return m
	}
}

// listenUnix listens on path with mode 0600 in a 0700 directory, replacing
// a stale socket but refusing to steal one a live daemon serves.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another ringnetd is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
