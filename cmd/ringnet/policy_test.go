package main

import "testing"

func TestParsePort(t *testing.T) {
	for _, tc := range []struct {
		in, proto string
		port      int
		ok        bool
	}{
		{"", "", 0, true},
		{"80", "TCP", 80, true},
		{"53/udp", "UDP", 53, true},
		{"3868/SCTP", "SCTP", 3868, true},
		{"icmp", "ICMP", 0, true},
		{"0", "", 0, false},
		{"65536/TCP", "", 0, false},
		{"http", "", 0, false},
		{"80/ICMP", "", 0, false},
		{"TCP/80", "", 0, false},
	} {
		proto, port, err := parsePort(tc.in)
		if proto != tc.proto || port != tc.port || (err == nil) != tc.ok {
			t.Errorf("parsePort(%q) = %q, %d, %v; want %q, %d, ok %v", tc.in, proto, port, err, tc.proto, tc.port, tc.ok)
		}
	}
}
