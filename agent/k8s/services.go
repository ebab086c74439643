package k8s

// Services: RunServices, its informers on Services and EndpointSlices,
// what they keep of each object, and the list built from them (service.go
// converts).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
)

// RunServices starts shared informers on Services (core/v1) and
// EndpointSlices (discovery.k8s.io/v1) in every namespace, waits for
// their caches to sync, then calls publish with every service, its
// endpoints joined from its slices (service.go says how), sorted by
// namespace and name, each time that list changes: debounced like Run (a
// burst within Options.Debounce gives one call), with the first and last
// API event times of the batch (monotonic, first <= last).
//
// The first call comes once the caches have synced, even with no service
// (its times are then the sync's). After that, a batch that leaves the
// list as it was last published (a label, a status other than the
// LoadBalancer's, a slice of no service, a change undone) publishes
// nothing. publish is called on RunServices's goroutine, with a new slice
// each time, which the source keeps to compare the next list with: treat
// it as read-only. Events arriving meanwhile are batched for the next
// call. RunServices returns nil when ctx is done; it needs list and watch
// on services and on discovery.k8s.io endpointslices, and waits for sync
// until it has them. Call it once; it may run beside Run and RunPolicy.
func (s *Source) RunServices(ctx context.Context, publish func(svcs []cluster.Service, firstEvent, lastEvent time.Time)) error {
	return s.follow(ctx, s.serviceEvents, s.watchServices, func(b batch) {
		svcs, err := s.services.list()
		if err != nil { // a lister over a local store does not fail
			s.log.Error("list services from the informers' caches", "err", err)
			return
		}
		if s.servicesPublished && equalServices(svcs, s.lastServices) {
			return
		}
		s.lastServices, s.servicesPublished = svcs, true
		publish(svcs, b.first, b.last)
	})
}

// serviceListers are RunServices's informers' listers.
type serviceListers struct {
	services listerscorev1.ServiceLister
	slices   listersdiscoveryv1.EndpointSliceLister
}

// watchServices adds the Service and EndpointSlice informers to f, their
// events noted in s.serviceEvents, and keeps their listers.
func (s *Source) watchServices(f informers.SharedInformerFactory) error {
	e := s.serviceEvents
	svcs, eps := f.Core().V1().Services(), f.Discovery().V1().EndpointSlices()
	if err := errors.Join(
		handle(e, "service", svcs.Informer(), sameService),
		handle(e, "endpointslice", eps.Informer(), sameEndpointSlice),
	); err != nil {
		return err
	}
	s.services = serviceListers{svcs.Lister(), eps.Lister()}
	return nil
}

// list is the services of the listers' objects.
func (l *serviceListers) list() ([]cluster.Service, error) {
	svcs, err := l.services.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	eps, err := l.slices.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("endpointslices: %w", err)
	}
	return servicesOf(svcs, eps), nil
}

// The update filters: whether two versions of an object convert alike.
// Both keep their namespace and name (the informer's key).

func sameService(a, b *corev1.Service) bool {
	x, okx := convertService(a)
	y, oky := convertService(b)
	return okx == oky && equalService(x, y)
}

// sameEndpointSlice compares the service a slice is of and its endpoints,
// converted: an address's conditions and ports are all a slice gives, and
// its name (the key), which orders slices, stays.
func sameEndpointSlice(a, b *discoveryv1.EndpointSlice) bool {
	return a.Labels[discoveryv1.LabelServiceName] == b.Labels[discoveryv1.LabelServiceName] &&
		equalEndpoints(serviceEndpoints([]*discoveryv1.EndpointSlice{a}), serviceEndpoints([]*discoveryv1.EndpointSlice{b}))
}

// slimService keeps the metadata and what convertService reads: the
// spec's type, addresses, ports, affinity and traffic policy, and the
// LoadBalancer status. The selector and the rest of the status
// (conditions) go.
func slimService(svc *corev1.Service) *corev1.Service {
	s := &corev1.Service{TypeMeta: svc.TypeMeta, ObjectMeta: slimMeta(&svc.ObjectMeta)}
	in, out := &svc.Spec, &s.Spec
	out.Type, out.ClusterIP, out.ClusterIPs, out.ExternalIPs, out.Ports = in.Type, in.ClusterIP, in.ClusterIPs, in.ExternalIPs, in.Ports
	out.SessionAffinity, out.SessionAffinityConfig, out.ExternalTrafficPolicy = in.SessionAffinity, in.SessionAffinityConfig, in.ExternalTrafficPolicy
	s.Status.LoadBalancer = svc.Status.LoadBalancer
	return s
}

// slimEndpointSlice keeps the metadata with only the service-name label,
// the address type, the ports, and of each endpoint its first address
// (the only one with a meaning), conditions and node name. Hostnames,
// target references, zones and hints go.
func slimEndpointSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{TypeMeta: es.TypeMeta, ObjectMeta: slimMeta(&es.ObjectMeta), AddressType: es.AddressType, Ports: es.Ports}
	s.Labels = nil
	if name, ok := es.Labels[discoveryv1.LabelServiceName]; ok {
		s.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	if es.Endpoints != nil {
		s.Endpoints = make([]discoveryv1.Endpoint, len(es.Endpoints))
	}
	for i := range es.Endpoints {
		in, out := &es.Endpoints[i], &s.Endpoints[i]
		out.Addresses, out.Conditions, out.NodeName = in.Addresses[:min(len(in.Addresses), 1)], in.Conditions, in.NodeName
	}
	return s
}
