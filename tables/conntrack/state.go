package conntrack

import (
	"math"
	"time"
)

// Time is a coarse monotonic clock in whole seconds, as the table stores
// last-seen times. Any origin works as long as every caller of one table
// uses the same one; differences are taken modulo 2^32, so the clock may
// wrap. A worker reads its clock once per batch.
type Time uint32

// TimeOf converts a duration since the clock's origin to a Time.
func TimeOf(d time.Duration) Time { return Time(d / time.Second) }

// Dir is the direction of a packet within its connection.
type Dir uint8

const (
	Original Dir = 0 // the direction of the packet that created the connection
	Reply    Dir = 1 // the other direction
)

func (d Dir) String() string {
	if d == Original {
		return "original"
	}
	return "reply"
}

// State is where a connection is in its life. TCP connections walk the
// TCP states; other protocols are New until a reply is seen, then Replied.
type State uint8

const (
	StateNew         State = iota // inserted; no reply yet (non-TCP), no flags seen yet (TCP)
	StateReplied                  // non-TCP: a packet was seen in the reply direction
	StateSynSent                  // TCP: SYN from the original side
	StateSynRecv                  // TCP: SYN-ACK from the reply side
	StateEstablished              // TCP: handshake done, or picked up mid-stream
	StateFinWait                  // TCP: one side sent FIN
	StateTimeWait                 // TCP: both sides sent FIN
	StateClosed                   // TCP: RST seen
	numStates
)

var stateNames = [numStates]string{"new", "replied", "syn_sent", "syn_recv", "established", "fin_wait", "time_wait", "closed"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "unknown"
}

// TCP flag bits, as in the TCP header's flag byte.
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagACK = 0x10
)

// tcpNext is the TCP state machine: the state and FIN-seen bits (bit d set:
// direction d sent FIN) after a packet in direction d with flags f. It is
// deliberately loose, like a middlebox must be: it follows flags, not
// sequence numbers, and picks up connections it saw no handshake for.
//
//	RST, any direction                     -> Closed
//	SYN (no ACK), original, from New, SynSent, TimeWait or Closed
//	                                       -> SynSent (a new connection on the tuple)
//	SYN-ACK, reply, from SynSent/SynRecv   -> SynRecv
//	FIN in direction d                     -> FinWait, or TimeWait once both sides sent FIN
//	                                          (ignored in TimeWait and Closed)
//	ACK, original, from SynRecv            -> Established
//	anything else without SYN, from New    -> Established (mid-stream pickup)
//
// Everything else leaves the state as it is.
func tcpNext(st State, fin uint8, d Dir, f uint8) (State, uint8) {
	switch {
	case f&TCPFlagRST != 0:
		return StateClosed, fin
	case f&TCPFlagSYN != 0 && f&TCPFlagACK == 0:
		if d == Original && (st == StateNew || st == StateSynSent || st == StateTimeWait || st == StateClosed) {
			return StateSynSent, 0
		}
	case f&TCPFlagSYN != 0:
		if d == Reply && (st == StateSynSent || st == StateSynRecv) {
			return StateSynRecv, fin
		}
	case f&TCPFlagFIN != 0:
		if st == StateTimeWait || st == StateClosed {
			break
		}
		fin |= 1 << d
		if fin == 3 {
			return StateTimeWait, fin
		}
		return StateFinWait, fin
	case st == StateNew:
		return StateEstablished, fin
	case st == StateSynRecv && d == Original && f&TCPFlagACK != 0:
		return StateEstablished, fin
	}
	return st, fin
}

// Timeouts say how long a connection lives without packets, by protocol
// and state. Zero fields take the defaults of [DefaultTimeouts]. Durations
// are rounded up to whole seconds.
type Timeouts struct {
	TCPSynSent     time.Duration // TCP after SYN, or inserted with no flags seen yet
	TCPSynRecv     time.Duration // TCP after SYN-ACK
	TCPEstablished time.Duration // TCP open
	TCPFinWait     time.Duration // TCP after FIN from one side
	TCPTimeWait    time.Duration // TCP after FIN from both sides
	TCPClose       time.Duration // TCP after RST
	UDP            time.Duration // UDP, no reply yet
	UDPStream      time.Duration // UDP, replied
	ICMP           time.Duration // ICMP and ICMPv6 echo
	Other          time.Duration // any other protocol
}

// DefaultTimeouts are close to Cilium's and Linux's: a handshake has a
// minute to complete; an established TCP connection lives 6 hours idle (the
// kernel keeps 5 days, which on a shared table mostly keeps dead peers;
// applications that idle longer run keepalives); closing connections linger
// briefly for retransmitted FINs and ACKs; UDP gets 30 s for an answer and
// 3 minutes once it is a two-way stream.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSynSent:     60 * time.Second,
		TCPSynRecv:     60 * time.Second,
		TCPEstablished: 6 * time.Hour,
		TCPFinWait:     30 * time.Second,
		TCPTimeWait:    30 * time.Second,
		TCPClose:       10 * time.Second,
		UDP:            30 * time.Second,
		UDPStream:      180 * time.Second,
		ICMP:           30 * time.Second,
		Other:          60 * time.Second,
	}
}

// Protocol classes, as stored in a record: they pick the timeout row.
const (
	classTCP = iota
	classUDP
	classICMP
	classOther
	numClasses
)

func classOf(proto uint8) uint64 {
	switch proto {
	case ProtoTCP:
		return classTCP
	case ProtoUDP:
		return classUDP
	case ProtoICMP, ProtoICMPv6:
		return classICMP
	}
	return classOther
}

// timeoutTable is the timeout in seconds by class and state.
type timeoutTable [numClasses][numStates]int32

func (to Timeouts) table() timeoutTable {
	d := DefaultTimeouts()
	pick := func(v, def time.Duration) int32 {
		if v <= 0 {
			v = def
		}
		s := (v + time.Second - 1) / time.Second
		return int32(min(s, math.MaxInt32))
	}
	var t timeoutTable
	tcp := &t[classTCP]
	tcp[StateNew] = pick(to.TCPSynSent, d.TCPSynSent)
	tcp[StateReplied] = tcp[StateNew] // not reached by TCP
	tcp[StateSynSent] = tcp[StateNew]
	tcp[StateSynRecv] = pick(to.TCPSynRecv, d.TCPSynRecv)
	tcp[StateEstablished] = pick(to.TCPEstablished, d.TCPEstablished)
	tcp[StateFinWait] = pick(to.TCPFinWait, d.TCPFinWait)
	tcp[StateTimeWait] = pick(to.TCPTimeWait, d.TCPTimeWait)
	tcp[StateClosed] = pick(to.TCPClose, d.TCPClose)
	udp, stream := pick(to.UDP, d.UDP), pick(to.UDPStream, d.UDPStream)
	icmp, other := pick(to.ICMP, d.ICMP), pick(to.Other, d.Other)
	for s := range numStates {
		t[classUDP][s] = stream
		t[classICMP][s] = icmp
		t[classOther][s] = other
	}
	t[classUDP][StateNew] = udp
	return t
}
