package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/ringnet/ringnet/cni"
)

// Steps of ringnet's ADD as the exec'd plugin timed them itself (its
// cni.TimingsEnv file), in the order the plugin runs them.
const (
	stepStart    = "plugin: package init to ADD"
	stepAllocate = "plugin: allocate (call to ringnetd)"
	stepVeth     = "plugin: veth + pod side"
	stepAttach   = "plugin: attach (call to ringnetd)"
	stepTotal    = "plugin: package init to result"
	stepCPU      = "plugin: CPU time of the process"
	stepOutside  = "outside the plugin's code: exec, Go start-up, exit, cnitool"
)

var stepOrder = []string{stepStart, stepAllocate, stepVeth, stepAttach, stepTotal, stepCPU, stepOutside}

// pluginSteps reads the timings ringnet's plugin wrote to path, one line
// per ADD in the order of the calls: the warm-up's, then one per sample of
// addMs (the wall time of each cnitool ADD). It fails unless there is a
// line for every call.
func pluginSteps(path string, addMs []float64) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []cni.Timings
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var t cni.Timings
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lines = append(lines, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) != 1+len(addMs) {
		return nil, fmt.Errorf("%s: %d ADDs timed, want %d (the warm-up and %d counted)", path, len(lines), 1+len(addMs), len(addMs))
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	out := map[string][]float64{}
	for i, t := range lines[1:] {
		out[stepStart] = append(out[stepStart], ms(t.Start))
		out[stepAllocate] = append(out[stepAllocate], ms(t.Allocate))
		out[stepVeth] = append(out[stepVeth], ms(t.Veth))
		out[stepAttach] = append(out[stepAttach], ms(t.Attach))
		out[stepTotal] = append(out[stepTotal], ms(t.Total))
		out[stepCPU] = append(out[stepCPU], ms(t.CPU))
		out[stepOutside] = append(out[stepOutside], max(0, addMs[i]-ms(t.Total)))
	}
	return out, nil
}
