package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
)

// DefaultDebounce is how long a burst of changes is batched by default.
const DefaultDebounce = 20 * time.Millisecond

// Options configure a Source.
type Options struct {
	// NodeName is this node's name: it is in the model only once it has
	// registered (its ringnet annotations present).
	NodeName string
	// Tunnel is the cluster's tunnel settings (from ringnetd's flags:
	// Kubernetes has no object for them). Empty fields take the model's
	// defaults (cluster.Cluster.SetDefaults).
	Tunnel cluster.Tunnel
	// Debounce is how long changes are batched, from the first change of
	// a batch, before the model is built. Zero means DefaultDebounce.
	Debounce time.Duration
	// Resync is the informers' resync period; zero, the default, means
	// none. Resyncs change nothing and publish nothing.
	Resync time.Duration
	// Log receives what the source says about nodes left out and models
	// that do not validate. Nil means no logging.
	Log *slog.Logger
}

// Source follows the cluster through the Kubernetes API and publishes
// the model. Make one with New; Run it once.
type Source struct {
	client kubernetes.Interface
	o      Options // defaults applied, tunnel included
	log    *slog.Logger

	mu      sync.Mutex    // guards pending
	pending batch         // written by the informers' handlers (changed), taken by Run's loop
	kick    chan struct{} // cap 1: a batch is pending; sent by changed, received by Run

	// Owned by Run's goroutine.
	nodes   listerscorev1.NodeLister // set by watchNodes before the informers start
	last    *cluster.Cluster         // the last model published; nil before the first
	said    map[string]notice        // per node, what was last logged about it
	lastErr string                   // the last model error logged
}

// batch is the API events noticed since the last build: the times the
// informers delivered the first and the last (zero when none).
type batch struct {
	first, last time.Time
}

// New returns a source that reads the cluster through client. Nothing
// happens until Run.
func New(client kubernetes.Interface, o Options) *Source {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := cluster.Cluster{Tunnel: o.Tunnel}
	c.SetDefaults()
	o.Tunnel = c.Tunnel
	return &Source{client: client, o: o, log: o.Log, kick: make(chan struct{}, 1), said: map[string]notice{}}
}

// Run starts a shared informer factory (Nodes), waits for its caches to
// sync, then calls publish with a complete, validated model each time it
// changes: a burst of events within Options.Debounce gives one call. The
// first and last event times are when the informers delivered the
// earliest and the latest event folded into the call (monotonic, first <=
// last). publish is called on Run's goroutine; events arriving meanwhile
// are batched for the next call. Run returns nil when ctx is done, and an
// error at once if Options.Tunnel does not validate. Call it once.
func (s *Source) Run(ctx context.Context, publish func(c *cluster.Cluster, firstEvent, lastEvent time.Time)) error {
	if err := tunnelProblem(s.o.Tunnel); err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := informers.NewSharedInformerFactoryWithOptions(s.client, s.o.Resync, informers.WithTransform(slim))
	defer func() {
		cancel()
		f.Shutdown() // waits for the informers' goroutines, which stop with ctx
	}()
	if err := s.watchNodes(f); err != nil {
		return err
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sync the %v informer's cache", typ)
		}
	}
	s.log.Debug("Kubernetes caches synced")
	s.loop(ctx, publish)
	return nil
}

// loop builds and publishes a model for each batch of changes until ctx
// is done.
func (s *Source) loop(ctx context.Context, publish func(c *cluster.Cluster, firstEvent, lastEvent time.Time)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		// The batch's first event is in: give the rest of the burst
		// Debounce to arrive, then build once.
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.o.Debounce):
		}
		// Drop the kicks of the events during the wait, then take the
		// batch: in that order, an event noted after the take has
		// kicked again, and one noted in between kicks for a batch
		// already taken, which the next round skips.
		select {
		case <-s.kick:
		default:
		}
		s.mu.Lock()
		b := s.pending
		s.pending = batch{}
		s.mu.Unlock()
		if b.first.IsZero() {
			// A kick whose batch the last round took: nothing new. (A
			// change in the store whose handler has not run yet comes
			// with its own kick and times.)
			continue
		}
		if c := s.build(); c != nil && !sameModel(c, s.last) {
			s.last = c
			publish(c, b.first, b.last)
		}
	}
}

// changed notes an API event that may change the model. Called by the
// informers' handlers, from their goroutines.
func (s *Source) changed() {
	s.mu.Lock()
	now := time.Now() // under mu, so that first <= last whatever the goroutine
	if s.pending.first.IsZero() {
		s.pending.first = now
	}
	s.pending.last = now
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// build makes the model from the listers and logs what is new to say
// about it. It returns nil when there is nothing (new or valid) to
// publish.
func (s *Source) build() *cluster.Cluster {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil { // a lister over a local store does not fail
		s.log.Error("list nodes from the informer's cache", "err", err)
		return nil
	}
	c, notes, err := buildModel(s.o.Tunnel, s.o.NodeName, nodes)
	s.tell(notes, c)
	switch {
	case err != nil:
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			s.log.Error("the cluster's nodes do not make a valid model; keeping the last good one", "err", err)
		}
		return nil
	case c == nil:
		s.log.Debug("no node is networked yet: nothing to publish")
		return nil
	}
	s.lastErr = ""
	return c
}

// tell logs each notice that differs from the last one said about its
// node, and when a node left out before is in c now.
func (s *Source) tell(notes map[string]notice, c *cluster.Cluster) {
	ctx := context.Background()
	for name, n := range notes {
		if s.said[name] != n {
			s.log.Log(ctx, n.level, n.msg, "node", name)
		}
	}
	for name := range s.said {
		if _, ok := notes[name]; !ok && c != nil {
			if _, in := c.Node(name); in {
				s.log.Info("node "+name+" is in the model now", "node", name)
			}
		}
	}
	s.said = notes
}

// slim is the informers' transform: what the model needs of each object,
// the rest dropped before it is stored.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return slimNode(o), nil
	}
	return obj, nil
}
