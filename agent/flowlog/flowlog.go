// Package flowlog is ringnetd's flow log: it drains the fast path's flow
// events (one per decision about a new connection: allowed and tracked,
// denied by NetworkPolicy, refused for want of a service backend or a NAT
// port; see fastpath/pipeline's flows.go) a few times a second, writes
// them to a file as JSON lines, and keeps the latest in memory for
// `ringnet flows`.
//
// The fast path records events only where it tracks connections: with
// NetworkPolicy, services or masquerade published. Events of a
// connection's later packets do not exist, by design: the fast path does
// nothing per packet but count.
//
// The file is appended to; when it would grow past MaxBytes it is renamed
// to PATH.1 (replacing the previous one) and a new one started, so the
// log takes at most twice MaxBytes.
package flowlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/conntrack"
)

// Source is where the events come from: the dataplane.
type Source interface {
	ReadFlows(buf []pipeline.FlowEvent) []pipeline.FlowEvent
	FlowsLost() uint64
}

// Options configure a Recorder.
type Options struct {
	// Path is the flow log file; empty: no file, memory only.
	Path string
	// MaxBytes is the size at which the file is rotated (default 64 MiB).
	MaxBytes int64
	// Keep is how many of the latest events memory holds (default 1000).
	Keep int
	// Interval is how often the rings are drained (default 250 ms; each
	// worker's ring holds pipeline.FlowRingSize events).
	Interval time.Duration
	// Describe names the pods of a flow and, for a denied one, the
	// policies that isolate them (agent/daemon's Policies.Describe); nil
	// names nothing.
	Describe func(src, dst netip.Addr, denied bool) (srcPod, dstPod string, policies []string)
	// Ports names the pod ports by ID (their host interfaces), for the
	// records; called once per drain that found events. nil leaves the
	// interface out.
	Ports func() map[uint16]string
	Log   *slog.Logger
}

// Recorder drains a Source into the file and memory.
type Recorder struct {
	src  Source
	o    Options
	file *os.File
	w    *bufio.Writer
	size int64

	mu     sync.Mutex
	recent []api.Flow // a ring of the latest o.Keep, oldest at next once full
	next   int
	total  map[string]uint64 // events by verdict since start
}

// New opens the file (if any) and returns a Recorder; Run drains.
func New(src Source, o Options) (*Recorder, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 1000
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	r := &Recorder{src: src, o: o, total: map[string]uint64{}}
	if o.Path != "" {
		if err := r.open(); err != nil {
			return nil, fmt.Errorf("flow log: %w", err)
		}
	}
	return r, nil
}

func (r *Recorder) open() error {
	f, err := os.OpenFile(r.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.file, r.w, r.size = f, bufio.NewWriter(f), st.Size()
	return nil
}

// Run drains the source every Interval until ctx ends, then once more,
// and closes the file.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	var buf []pipeline.FlowEvent
	for {
		select {
		case <-ctx.Done():
			r.Drain(buf)
			if r.file != nil {
				r.w.Flush()
				r.file.Close()
			}
			return
		case <-t.C:
			buf = r.Drain(buf)
		}
	}
}

// Drain reads the events the source has, records them and returns buf
// for reuse.
func (r *Recorder) Drain(buf []pipeline.FlowEvent) []pipeline.FlowEvent {
	buf = r.src.ReadFlows(buf[:0])
	if len(buf) == 0 {
		return buf
	}
	var ports map[uint16]string
	if r.o.Ports != nil {
		ports = r.o.Ports()
	}
	for i := range buf {
		fl := r.convert(&buf[i], ports)
		r.keep(fl)
		if r.file != nil {
			if err := r.write(&fl); err != nil {
				r.o.Log.Error("flow log: write failed; flows are kept in memory only from now on", "path", r.o.Path, "err", err)
				r.file.Close()
				r.file = nil
			}
		}
	}
	if r.file != nil {
		if err := r.w.Flush(); err != nil {
			r.o.Log.Error("flow log: write failed", "path", r.o.Path, "err", err)
		}
	}
	return buf
}

func (r *Recorder) convert(e *pipeline.FlowEvent, ports map[uint16]string) api.Flow {
	fl := api.Flow{Time: e.Time.UTC(), Verdict: e.Verdict.String(), Protocol: protoName(e.Tuple.Proto),
		Src: e.Src().String(), Dst: e.Dst().String()}
	if e.NAT.Src != ([16]byte{}) || e.NAT.SrcPort != 0 {
		fl.TranslatedSrc = translated(e.Tuple.Src, e.Tuple.SrcPort, e.NAT.Src, e.NAT.SrcPort)
	}
	if e.NAT.Dst != ([16]byte{}) || e.NAT.DstPort != 0 {
		fl.TranslatedDst = translated(e.Tuple.Dst, e.Tuple.DstPort, e.NAT.Dst, e.NAT.DstPort)
	}
	if e.Port != pipeline.NoFlowPort {
		fl.Interface = ports[e.Port]
	}
	if r.o.Describe != nil {
		// The source and the final destination: a service's backend.
		dst := e.Tuple.Dst
		if e.NAT.Dst != ([16]byte{}) {
			dst = e.NAT.Dst
		}
		fl.SrcPod, fl.DstPod, fl.Policies = r.o.Describe(netip.AddrFrom16(e.Tuple.Src).Unmap(), netip.AddrFrom16(dst).Unmap(),
			e.Verdict == pipeline.FlowDenied)
	}
	return fl
}

// translated is addr:port after a translation that may change either.
func translated(addr [16]byte, port uint16, nAddr [16]byte, nPort uint16) string {
	if nAddr != ([16]byte{}) {
		addr = nAddr
	}
	if nPort != 0 {
		port = nPort
	}
	return netip.AddrPortFrom(netip.AddrFrom16(addr).Unmap(), port).String()
}

func protoName(p uint8) string {
	switch p {
	case conntrack.ProtoTCP:
		return "TCP"
	case conntrack.ProtoUDP:
		return "UDP"
	case 132:
		return "SCTP"
	case conntrack.ProtoICMP:
		return "ICMP"
	case conntrack.ProtoICMPv6:
		return "ICMPv6"
	}
	return fmt.Sprint(p)
}

func (r *Recorder) keep(fl api.Flow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total[fl.Verdict]++
	if len(r.recent) < r.o.Keep {
		r.recent = append(r.recent, fl)
		return
	}
	r.recent[r.next] = fl
	r.next = (r.next + 1) % r.o.Keep
}

// write appends fl to the file as a JSON line, rotating first if the line
// would take the file past MaxBytes.
func (r *Recorder) write(fl *api.Flow) error {
	line, err := json.Marshal(fl)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if r.size > 0 && r.size+int64(len(line)) > r.o.MaxBytes {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.w.Write(line)
	r.size += int64(n)
	return err
}

func (r *Recorder) rotate() error {
	err := r.w.Flush()
	err = errors.Join(err, r.file.Close())
	err = errors.Join(err, os.Rename(r.o.Path, r.o.Path+".1"))
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	return r.open()
}

// Recent returns the latest events, newest last: at most n (0: all kept),
// only those of verdict if it is not empty.
func (r *Recorder) Recent(n int, verdict string) api.FlowList {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := api.FlowList{Flows: []api.Flow{}, Lost: r.src.FlowsLost(), Total: map[string]uint64{}}
	for k, v := range r.total {
		out.Total[k] = v
	}
	ordered := append(append([]api.Flow(nil), r.recent[r.next:]...), r.recent[:r.next]...)
	for _, fl := range ordered {
		if verdict == "" || fl.Verdict == verdict {
			out.Flows = append(out.Flows, fl)
		}
	}
	if n > 0 && len(out.Flows) > n {
		out.Flows = out.Flows[len(out.Flows)-n:]
	}
	return out
}
