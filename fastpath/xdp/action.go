package xdp

import (
	"fmt"
	"strconv"
	"strings"
)

// Action is an XDP verdict. The values are the kernel's enum xdp_action, so a
// program's return value converts directly.
type Action uint32

// XDP verdicts, numbered as XDP_ABORTED .. XDP_REDIRECT.
const (
	// Aborted drops the frame and fires the xdp:xdp_exception tracepoint,
	// so a frame that had nowhere to go can be seen with perf or bpftrace.
	Aborted Action = iota
	// Drop drops the frame silently.
	Drop
	// Pass hands the frame to the kernel's network stack.
	Pass
	// Tx bounces the frame out of the device it arrived on.
	Tx
	// Redirect sends the frame to the target chosen by a redirect helper:
	// here, the AF_XDP socket registered for the frame's RX queue.
	Redirect
)

var actionNames = [...]string{
	Aborted:  "aborted",
	Drop:     "drop",
	Pass:     "pass",
	Tx:       "tx",
	Redirect: "redirect",
}

// String returns the lowercase name of the verdict ("pass"), or
// "Action(N)" for a value the kernel does not define.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "Action(" + strconv.FormatUint(uint64(a), 10) + ")"
}

// ParseAction parses a verdict name as printed by [Action.String], in any
// case: "aborted", "drop", "pass", "tx" or "redirect".
func ParseAction(s string) (Action, error) {
	for a, name := range actionNames {
		if strings.EqualFold(s, name) {
			return Action(a), nil
		}
	}
	return 0, fmt.Errorf("unknown xdp action %q: want aborted, drop, pass, tx or redirect", s)
}

// Mode is where in the receive path an XDP program runs. The values are the
// kernel's XDP_FLAGS_*_MODE attach flags. The zero Mode is not a mode: attach
// asks for one explicitly, because the kernel's "best effort" default hides
// which of the two a device ended up with.
type Mode int

const (
	// ModeGeneric (XDP_FLAGS_SKB_MODE) runs the program after the kernel
	// has built an skb. Every device supports it; it is the slow one.
	ModeGeneric Mode = 1 << 1
	// ModeNative (XDP_FLAGS_DRV_MODE) runs the program in the driver,
	// before any skb exists. veth supports it; AF_XDP on veth is copy mode
	// either way, but native mode skips the skb allocation per frame.
	ModeNative Mode = 1 << 2
)

// String returns "native", "generic", or "Mode(N)" for anything else.
func (m Mode) String() string {
	switch m {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses a mode as given on a command line: "native" or
// "generic", in any case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "native":
		return ModeNative, nil
	case "generic":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("unknown xdp mode %q: want native or generic", s)
}

// Set implements flag.Value, so a Mode can be a command-line flag.
func (m *Mode) Set(s string) error {
	v, err := ParseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) {
	if m != ModeNative && m != ModeGeneric {
		return nil, fmt.Errorf("marshal xdp mode: %v is not a mode", m)
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, for config files.
func (m *Mode) UnmarshalText(text []byte) error {
	return m.Set(string(text))
}
