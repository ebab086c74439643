package underlay

import (
	"github.com/ringnet/ringnet/nsnetlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// subscription is one netlink subscription made through the netlink
// library, which runs two goroutines for it: one reads the socket and
// sends on ch, closing ch when the socket fails or is closed; the other
// closes the socket when done is closed.
type subscription[T any] struct {
	ch   chan T        // written by the library's reader; closed by it when it stops
	done chan struct{} // closed by close
	errc chan error    // cap 1: the error that stopped the reader, if any
}

// events is the channel of events; nil (never ready) for a nil subscription.
func (s *subscription[T]) events() <-chan T {
	if s == nil {
		return nil
	}
	return s.ch
}

// err is what stopped the subscription, if the library said.
func (s *subscription[T]) err() error {
	select {
	case err := <-s.errc:
		return err
	default:
		return nil
	}
}

// close ends the subscription and waits for its reader, draining what it
// still sends so that it is never left blocked. Safe on nil, once.
func (s *subscription[T]) close() {
	if s == nil {
		return
	}
	close(s.done)
	for range s.ch {
	}
}

func newSubscription[T any]() *subscription[T] {
	return &subscription[T]{ch: make(chan T, eventQueue), done: make(chan struct{}), errc: make(chan error, 1)}
}

func (s *subscription[T]) onError(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

type subOptions struct {
	ns netns.NsHandle // the namespace the socket is opened in
}

func subscribeNeigh(o subOptions) (*subscription[netlink.NeighUpdate], error) {
	s := newSubscription[netlink.NeighUpdate]()
	err := nsnetlink.Open(o.ns, func(ns netns.NsHandle) error {
		return netlink.NeighSubscribeWithOptions(s.ch, s.done, netlink.NeighSubscribeOptions{
			Namespace:         &ns,
			ErrorCallback:     s.onError,
			ReceiveBufferSize: subBuffer,
		})
	})
	if err != nil {
		close(s.done)
		return nil, err
	}
	return s, nil
}

func subscribeRoute(o subOptions) (*subscription[netlink.RouteUpdate], error) {
	s := newSubscription[netlink.RouteUpdate]()
	err := nsnetlink.Open(o.ns, func(ns netns.NsHandle) error {
		return netlink.RouteSubscribeWithOptions(s.ch, s.done, netlink.RouteSubscribeOptions{
			Namespace:         &ns,
			ErrorCallback:     s.onError,
			ReceiveBufferSize: subBuffer,
		})
	})
	if err != nil {
		close(s.done)
		return nil, err
	}
	return s, nil
}
