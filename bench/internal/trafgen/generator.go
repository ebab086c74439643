package trafgen

import (
	"flag"
	"fmt"
)

// The generators bench/e2e and bench/crossnode can send their 64-byte load
// with (--generator).
const (
	GenXDP     = "xdpgen"  // bench/xdpgen: AF_XDP, about 1.3x trafgen from one core on a veth
	GenTrafgen = "trafgen" // netsniff-ng's trafgen: PF_PACKET's TX ring
)

// GeneratorFlag registers --generator on fs, GenXDP by default.
func GeneratorFlag(fs *flag.FlagSet) *string {
	return fs.String("generator", GenXDP, "what sends the 64-byte load: "+GenXDP+" (ringnet's AF_XDP generator, bench/xdpgen) or "+GenTrafgen)
}

// CheckGenerator says what is wrong with a --generator value.
func CheckGenerator(g string) error {
	if g != GenXDP && g != GenTrafgen {
		return fmt.Errorf("--generator %q: want %s or %s", g, GenXDP, GenTrafgen)
	}
	return nil
}

// Method says, for a benchmark's method list, how the load is sent from
// pod (e.g. "pod A"): the generator, on CPU 0, and what it does.
func Method(generator, pod string) string {
	if generator == GenXDP {
		return "ringnet's own generator bench/xdpgen in " + pod + " (`taskset -c 0 xdpgen --dev eth0`: an AF_XDP socket on its eth0 in copy mode, " +
			"batches of 64, no per-frame system call; about 1.3x trafgen's rate from one core; `--generator trafgen` measures with trafgen)"
	}
	return "trafgen in " + pod + " (`taskset -c 0 trafgen --cpus 1`, one worker on CPU 0; it aborts when its send buffer is momentarily full " +
		"(\"Flushing TX_RING failed\"), and such a measurement is taken again with a fresh trafgen, at most 3 times, counted as trafgen_restarts in the JSON)"
}
