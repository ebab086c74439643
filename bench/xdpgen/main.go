// Command xdpgen sends one frame again and again, as fast as one core lets
// it, through an AF_XDP socket: the benchmarks' generator where trafgen
// (PF_PACKET's TX ring) is the limit.
//
//	xdpgen --dev eth0 --frame FILE [--new-flows] [--duration 0]
//
// On a veth, AF_XDP has only copy mode: the kernel still builds an skb per
// frame and hands it to the device, but there is no packet socket, no
// qdisc and no per-frame system call (one sendto per batch of 64, and
// none while the kernel is still draining the TX ring). On this machine it
// sends about 1.3x what trafgen does from one core (docs/benchmarks.md).
//
// It prints "Running!" once the socket is bound (as trafgen does, for the
// benchmarks' harness), sends until SIGINT or SIGTERM or --duration, and
// then prints the frames it queued. --new-flows writes random bytes over
// the UDP source port and the low byte of the destination port of every
// frame, as trafgen.Flow.NewFlows has trafgen do.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/fastpath/xsk"
)

func main() {
	dev := flag.String("dev", "", "the interface to send on (queue 0)")
	framePath := flag.String("frame", "", "a file holding the frame to send, Ethernet header first")
	newFlows := flag.Bool("new-flows", false, "random UDP source port and low byte of the destination port in every frame (an IPv4/UDP frame with UDP checksum 0)")
	duration := flag.Duration("duration", 0, "stop after this long (0: at SIGINT or SIGTERM)")
	flag.Parse()
	if err := run(*dev, *framePath, *newFlows, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "xdpgen:", err)
		os.Exit(1)
	}
}

const (
	batch = 64
	// Offsets in an untagged IPv4 frame with a 20-byte header.
	udpSrcPort = 34
	udpDstLow  = 37
)

func run(dev, framePath string, newFlows bool, duration time.Duration) error {
	if dev == "" || framePath == "" {
		return fmt.Errorf("--dev and --frame are required")
	}
	frame, err := os.ReadFile(framePath)
	if err != nil {
		return err
	}
	if len(frame) < 14 || len(frame) > xsk.DefaultFrameSize {
		return fmt.Errorf("%s: a frame of %d bytes; want 14 to %d", framePath, len(frame), xsk.DefaultFrameSize)
	}
	if newFlows && (len(frame) < udpDstLow+1 || frame[12] != 0x08 || frame[13] != 0x00 || frame[14] != 0x45 || frame[23] != 17) {
		return fmt.Errorf("--new-flows wants an IPv4 frame with a 20-byte header carrying UDP")
	}
	s, err := xsk.Open(dev, 0, xsk.Config{Bind: xsk.BindCopy})
	if err != nil {
		return err
	}
	defer s.Close()

	var stop atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; stop.Store(true) }()
	if duration > 0 {
		time.AfterFunc(duration, func() { stop.Store(true) })
	}
	fmt.Println("Running!")

	descs := make([]xsk.Desc, batch)
	rnd := uint64(time.Now().UnixNano()) | 1
	var queued uint64
	start := time.Now()
	for !stop.Load() {
		s.Complete()
		n := 0
		for ; n < batch; n++ {
			addr, ok := s.Alloc()
			if !ok {
				break
			}
			buf := s.Buffer(addr)
			copy(buf, frame)
			if newFlows {
				rnd ^= rnd << 13 // xorshift64
				rnd ^= rnd >> 7
				rnd ^= rnd << 17
				buf[udpSrcPort], buf[udpSrcPort+1], buf[udpDstLow] = byte(rnd), byte(rnd>>8), byte(rnd>>16)
			}
			descs[n] = xsk.Desc{Addr: addr, Len: uint32(len(frame))}
		}
		q := s.Transmit(descs[:n])
		for _, d := range descs[q:n] {
			s.Free(d.Addr)
		}
		queued += uint64(q)
		s.Flush()
	}
	el := time.Since(start)
	fmt.Printf("queued %d frames in %.1f s: %.0f frames/s\n", queued, el.Seconds(), float64(queued)/el.Seconds())
	return nil
}
