package topo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Capture is a running tcpdump writing a pcap file.
type Capture struct {
	Path string // the pcap file; the caller removes it

	cmd    *exec.Cmd
	done   chan struct{} // closed when tcpdump has exited and err is set
	err    error         // tcpdump's exit; written before done is closed
	mu     sync.Mutex
	stderr strings.Builder // tcpdump's messages; guarded by mu
}

// listenTimeout bounds the wait for tcpdump to open the interface.
const listenTimeout = 10 * time.Second

// StartCapture runs tcpdump on iface in the named namespace ("" = where the
// caller runs, e.g. the underlay bridge in the root namespace) with a BPF
// filter ("" = everything), writing a temporary pcap file. It returns once
// tcpdump says it is listening. Packets are written as they arrive (-U).
// Cancelling ctx stops the capture as Stop does.
func StartCapture(ctx context.Context, netns, iface, bpfFilter string) (*Capture, error) {
	f, err := os.CreateTemp("", "topo-*.pcap")
	if err != nil {
		return nil, fmt.Errorf("capture file: %w", err)
	}
	f.Close()
	// -Z root: Debian's tcpdump otherwise drops to user tcpdump before it
	// opens the file, which root made. --immediate-mode: without it libpcap
	// hands over TPACKET_V3 blocks when full or after a second, and a
	// capture stopped sooner loses what the block held (counted as
	// "received by filter", never written, not "dropped"). -s and -B: the
	// immediate ring has one snaplen-sized slot per packet, and veths carry
	// GSO frames of up to 64 KiB; tcpdump's default 256 KiB snaplen in 2
	// MiB makes 8 slots, which a TCP burst overruns.
	args := []string{"-i", iface, "-n", "-U", "--immediate-mode", "-s", "65600", "-B", "32768",
		"-Z", "root", "-w", f.Name()}
	if bpfFilter != "" {
		args = append(args, bpfFilter)
	}
	c := &Capture{Path: f.Name(), done: make(chan struct{})}
	c.cmd = Command(ctx, netns, "tcpdump", args...)
	c.cmd.Cancel = func() error { return c.cmd.Process.Signal(os.Interrupt) }
	c.cmd.WaitDelay = 5 * time.Second
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		os.Remove(c.Path)
		return nil, fmt.Errorf("tcpdump: %w", err)
	}
	if err := c.cmd.Start(); err != nil {
		os.Remove(c.Path)
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	listening := make(chan struct{})
	copied := make(chan struct{})
	go c.readStderr(pipe, listening, copied)
	go func() {
		<-copied // Wait closes the pipe: read it all first
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	select {
	case <-listening:
		return c, nil
	case <-c.done:
		os.Remove(c.Path)
		return nil, fmt.Errorf("tcpdump -i %s %s exited: %v: %s", iface, bpfFilter, c.err, c.log())
	case <-time.After(listenTimeout):
		c.Stop()
		os.Remove(c.Path)
		return nil, fmt.Errorf("tcpdump -i %s not listening after %v: %s", iface, listenTimeout, c.log())
	}
}

// readStderr keeps tcpdump's messages and closes listening at the
// "listening on" line, copied at EOF.
func (c *Capture) readStderr(r io.Reader, listening, copied chan struct{}) {
	defer close(copied)
	sc := bufio.NewScanner(r)
	seen := false
	for sc.Scan() {
		c.mu.Lock()
		c.stderr.WriteString(sc.Text() + "\n")
		c.mu.Unlock()
		if !seen && strings.Contains(sc.Text(), "listening on ") {
			seen = true
			close(listening)
		}
	}
}

func (c *Capture) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSpace(c.stderr.String())
}

// settle is how long the pcap file must stay the same size before Stop
// stops tcpdump: the packets already on the wire are written by then.
const settle = 100 * time.Millisecond

// Stop ends the capture and returns the file's path. It first waits (up to
// 2s) until the file has not grown for 100ms, so that packets sent before
// Stop are in it, then sends SIGINT so that tcpdump finishes the file. It
// may be called more than once.
func (c *Capture) Stop() (string, error) {
	select {
	case <-c.done:
	default:
		c.waitQuiet()
		c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	if st := c.cmd.ProcessState; st == nil || !st.Success() {
		return c.Path, fmt.Errorf("tcpdump: %v: %s", c.err, c.log())
	}
	return c.Path, nil
}

func (c *Capture) waitQuiet() {
	last, still := int64(-1), time.Now()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(settle / 5) {
		fi, err := os.Stat(c.Path)
		if err != nil {
			return
		}
		if fi.Size() != last {
			last, still = fi.Size(), time.Now()
		} else if time.Since(still) >= settle {
			return
		}
	}
}

// Stats returns tcpdump's closing counts, once Stop has returned: packets
// written to the file, received by the filter, and dropped by the kernel
// (-1 each if it did not say). Received above captured means packets
// arrived while tcpdump stopped.
func (c *Capture) Stats() (captured, received, dropped int) {
	captured, received, dropped = -1, -1, -1
	for _, line := range strings.Split(c.log(), "\n") {
		n, what, _ := strings.Cut(line, " packets ")
		v, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		switch what {
		case "captured":
			captured = v
		case "received by filter":
			received = v
		case "dropped by kernel":
			dropped = v
		}
	}
	return captured, received, dropped
}

// Decode reads a pcap with tshark, UDP 8472 decoded as VXLAN, and returns
// one row per packet that matches the display filter ("" = all), holding
// the fields asked for, in order ("" where a packet lacks one).
//
// A field present at several layers comes as one string, its values joined
// by commas, outermost first: in a VXLAN packet ip.src is
// "192.168.50.1,10.244.1.2" (underlay, then pod). Layers splits it.
func Decode(path, displayFilter string, fields ...string) ([][]string, error) {
	if len(fields) == 0 {
		return nil, errors.New("decode: no fields")
	}
	args := []string{"-r", path, "-n", "-d", "udp.port==" + strconv.Itoa(FlannelPort) + ",vxlan",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	if displayFilter != "" {
		args = append(args, "-Y", displayFilter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tshark -r %s -Y %q: %w: %s", path, displayFilter, err, strings.TrimSpace(stderr.String()))
	}
	var rows [][]string
	if len(out) == 0 {
		return nil, nil
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		row := strings.Split(line, "\t")
		for len(row) < len(fields) {
			row = append(row, "")
		}
		rows = append(rows, row[:len(fields)])
	}
	return rows, nil
}

// Layers splits a field that Decode returned into its values, outermost
// layer first; "" gives none.
func Layers(field string) []string {
	if field == "" {
		return nil
	}
	return strings.Split(field, ",")
}
