package topo

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Greeter serves TCP on port in namespace ns until the listener it
// returns is closed: each connection is greeted with "name client\n"
// (the client address as the server sees it), then echoed. Tests and the
// demo tell by it which backend a service connection reached, and whom
// the backend saw.
func Greeter(ns, name string, port int) (net.Listener, error) {
	var ln net.Listener
	if err := Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
				buf := make([]byte, 256)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return ln, nil
}

// Session is a connection to a Greeter.
type Session struct {
	Conn   net.Conn
	Server string     // the greeter's name
	Client netip.Addr // the client address the greeter saw
	r      *bufio.Reader
}

// Dial connects from namespace ns to a Greeter at addr and reads the
// greeting, within a few seconds.
func Dial(ns string, addr netip.AddrPort) (*Session, error) {
	var c net.Conn
	if err := Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 3*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	f := strings.Fields(line)
	var client netip.Addr
	if err == nil && len(f) == 2 {
		client, err = netip.ParseAddr(f[1])
	} else if err == nil {
		err = fmt.Errorf("not a greeting: %q", line)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %v: %w", addr, err)
	}
	return &Session{Conn: c, Server: f[0], Client: client, r: r}, nil
}

// Echo checks that the session still carries data both ways.
func (s *Session) Echo() error {
	s.Conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(s.Conn, "ping %s\n", s.Server); err != nil {
		return err
	}
	line, err := s.r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping "+s.Server+"\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// WaitGreeting retries Dial from ns to addr until a greeting comes back or
// within passes (a daemon applies a reloaded file asynchronously), and
// returns the last error if none came.
func WaitGreeting(ns string, addr netip.AddrPort, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		s, err := Dial(ns, addr)
		if err == nil {
			s.Conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v from %s never answered: %w", addr, ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
