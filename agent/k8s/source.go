package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	// a batch, before the model (or the policy input, or the services) is
	// built. Zero means DefaultDebounce.
	Debounce time.Duration
	// Resync is the informers' resync period; zero, the default, means
	// none. Resyncs change nothing and publish nothing.
	Resync time.Duration
	// Log receives what the source says about nodes left out and models
	// that do not validate. Nil means no logging.
	Log *slog.Logger
}

// Source follows the cluster through the Kubernetes API and publishes
// the model (Run), the NetworkPolicy compiler's input (RunPolicy) and the
// services (RunServices). Make one with New; call each of Run, RunPolicy
// and RunServices at most once. They may run at the same time: each has
// its own informers, events and state.
type Source struct {
	client kubernetes.Interface // shared, read-only
	o      Options              // defaults applied, tunnel included; read-only
	log    *slog.Logger

	nodeEvents    *events // the node informer's, for Run
	policyEvents  *events // the policy informers', for RunPolicy
	serviceEvents *events // the Service and EndpointSlice informers', for RunServices

	// Owned by Run's goroutine.
	nodes   listerscorev1.NodeLister // set by watchNodes before the informers start
	last    *cluster.Cluster         // the last model published; nil before the first
	said    map[string]notice        // per node, what was last logged about it
	lastErr string                   // the last model error logged

	// Owned by RunPolicy's goroutine.
	policy policyListers // set by watchPolicy before the informers start

	// Owned by RunServices's goroutine.
	services          serviceListers    // set by watchServices before the informers start
	lastServices      []cluster.Service // the last list published
	servicesPublished bool              // whether one has been (lastServices may be empty)
}

// New returns a source that reads the cluster through client. Nothing
// happens until Run, RunPolicy or RunServices.
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
	return &Source{client: client, o: o, log: o.Log, nodeEvents: newEvents(), policyEvents: newEvents(), serviceEvents: newEvents(), said: map[string]notice{}}
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
	return s.follow(ctx, s.nodeEvents, s.watchNodes, s.publishModel(publish))
}

// publishModel is Run's build of a batch: the model, published unless
// there is none or it is the last one again.
func (s *Source) publishModel(publish func(c *cluster.Cluster, firstEvent, lastEvent time.Time)) func(batch) {
	return func(b batch) {
		if c := s.build(); c != nil && !sameModel(c, s.last) {
			s.last = c
			publish(c, b.first, b.last)
		}
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

// slim is the informers' transform: what the model, the policy input and
// the services need of each object, the rest dropped before it is stored.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return slimNode(o), nil
	case *corev1.Pod:
		return slimPod(o), nil
	case *corev1.Namespace:
		return slimNamespace(o), nil
	case *networkingv1.NetworkPolicy:
		return slimNetworkPolicy(o), nil
	case *corev1.Service:
		return slimService(o), nil
	case *discoveryv1.EndpointSlice:
		return slimEndpointSlice(o), nil
	}
	return obj, nil
}
