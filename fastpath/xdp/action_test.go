package xdp

import (
	"flag"
	"testing"
)

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{
		Aborted:   "aborted",
		Drop:      "drop",
		Pass:      "pass",
		Tx:        "tx",
		Redirect:  "redirect",
		Action(5): "Action(5)",
	} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", uint32(a), got, want)
		}
	}
	// The values are the kernel's enum xdp_action.
	for a, want := range map[Action]uint32{Aborted: 0, Drop: 1, Pass: 2, Tx: 3, Redirect: 4} {
		if uint32(a) != want {
			t.Errorf("%v = %d, want XDP value %d", a, uint32(a), want)
		}
	}
}

func TestParseAction(t *testing.T) {
	for _, a := range []Action{Aborted, Drop, Pass, Tx, Redirect} {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	if got, err := ParseAction("DROP"); err != nil || got != Drop {
		t.Errorf("ParseAction(DROP) = %v, %v; want drop", got, err)
	}
	for _, s := range []string{"", "accept", "Action(5)", "2"} {
		if _, err := ParseAction(s); err == nil {
			t.Errorf("ParseAction(%q) = nil error, want one", s)
		}
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		name string
	}{
		{"native", ModeNative, "native"},
		{"Generic", ModeGeneric, "generic"},
	} {
		got, err := ParseMode(tc.in)
		if err != nil || got != tc.want || got.String() != tc.name {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		text, err := got.MarshalText()
		if err != nil || string(text) != tc.name {
			t.Errorf("%v.MarshalText() = %q, %v", got, text, err)
		}
		var back Mode
		if err := back.UnmarshalText(text); err != nil || back != got {
			t.Errorf("UnmarshalText(%q) = %v, %v", text, back, err)
		}
	}
	// The values are the kernel's attach flags.
	if ModeGeneric != 2 || ModeNative != 4 {
		t.Errorf("ModeGeneric, ModeNative = %d, %d; want XDP_FLAGS_SKB_MODE 2, XDP_FLAGS_DRV_MODE 4", ModeGeneric, ModeNative)
	}
	for _, s := range []string{"", "drv", "skb", "offload", "auto"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) = nil error, want one", s)
		}
	}
	if _, err := Mode(0).MarshalText(); err == nil {
		t.Error("Mode(0).MarshalText() = nil error, want one")
	}
	if got := Mode(0).String(); got != "Mode(0)" {
		t.Errorf("Mode(0).String() = %q", got)
	}

	// A Mode is a flag.Value.
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	m := ModeNative
	fs.Var(&m, "xdp-mode", "native or generic")
	if err := fs.Parse([]string{"-xdp-mode=generic"}); err != nil || m != ModeGeneric {
		t.Errorf("flag -xdp-mode=generic: %v, %v", m, err)
	}
}
