package cluster

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/agent/netpol"
	"sigs.k8s.io/yaml"
)

// Default is the embedded example cluster that the demo and the tests
// run: two ringnet nodes and one flannel node on the underlay subnet
// 192.168.50.0/24, with pod CIDRs 10.244.{1,2,3}.0/24 (and
// fd00:244:{1,2}::/64 on the ringnet nodes), tunnel mode vxlan.
//
//go:embed default.yaml
var Default []byte

// Load reads and parses a cluster file (see [Parse]).
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a cluster file, YAML or JSON, applies the defaults and
// validates the result. Keys are matched exactly (encoding/json would let
// "vtepmac" pass for "vtepMAC"); unknown keys are errors.
func Parse(data []byte) (*Cluster, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if err := checkShape("", tree, reflect.TypeFor[file]()); err != nil {
		return nil, err
	}
	var f file
	dec = json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err // checkShape lets nothing through that fails here
	}
	c, err := f.model()
	if err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// MarshalJSON writes c in the cluster file's format, which Parse reads
// back (sigs.k8s.io/yaml's Marshal makes YAML of it).
func (c Cluster) MarshalJSON() ([]byte, error) {
	f := file{Tunnel: fileTunnel{
		Mode:             string(c.Tunnel.Mode),
		CrossSubnetEncap: string(c.Tunnel.CrossSubnetEncap),
		VXLANPort:        int64(c.Tunnel.VXLANPort),
		VNI:              int64(c.Tunnel.VNI),
	}}
	for _, n := range c.Nodes {
		fn := fileNode{Name: n.Name, Backend: string(n.Backend)}
		if n.Address.IsValid() {
			fn.Address = n.Address.String()
		}
		for _, p := range n.PodCIDRs {
			fn.PodCIDRs = append(fn.PodCIDRs, p.String())
		}
		if n.VtepMAC != nil {
			fn.VtepMAC = n.VtepMAC.String()
		}
		f.Nodes = append(f.Nodes, fn)
	}
	for i := range c.Services {
		fs, err := fileServiceOf(&c.Services[i])
		if err != nil {
			return nil, err
		}
		f.Services = append(f.Services, fs)
	}
	for _, ns := range c.Namespaces {
		f.Namespaces = append(f.Namespaces, fileNamespace{Name: ns.Name, Labels: ns.Labels})
	}
	for i := range c.Pods {
		f.Pods = append(f.Pods, filePodOf(&c.Pods[i]))
	}
	for i := range c.Policies {
		f.Policies = append(f.Policies, filePolicyOf(&c.Policies[i]))
	}
	return json.Marshal(f)
}

// fileServiceOf writes a service in the file's form. The file cannot say
// everything the model can: every endpoint of a file has the same ports,
// the service ports' target ports. A service whose endpoints differ is an
// error.
func fileServiceOf(s *Service) (fileService, error) {
	fs := fileService{Name: s.Name, Namespace: s.Namespace,
		ClusterIPs: addrStrings(s.ClusterIPs), ExternalIPs: addrStrings(s.ExternalIPs)}
	// The target ports are those of the first endpoint; then every
	// endpoint must have exactly them.
	target := make([]EndpointPort, len(s.Ports))
	for j, sp := range s.Ports {
		target[j] = EndpointPort{Name: sp.Name, Protocol: sp.Protocol, Port: sp.Port}
		if len(s.Endpoints) > 0 {
			eps := s.Endpoints[0].Ports
			if k := slices.IndexFunc(eps, func(ep EndpointPort) bool { return ep.Name == sp.Name && ep.Protocol == sp.Protocol }); k >= 0 {
				target[j].Port = eps[k].Port
			}
		}
		fp := fileServicePort{Name: sp.Name, Port: int64(sp.Port), NodePort: int64(sp.NodePort)}
		if sp.Protocol != 0 {
			fp.Protocol = ProtocolName(sp.Protocol)
		}
		if target[j].Port != sp.Port {
			fp.TargetPort = int64(target[j].Port)
		}
		fs.Ports = append(fs.Ports, fp)
	}
	if s.Affinity != 0 {
		fs.SessionAffinity, fs.SessionAffinityTimeout = affinityClientIP, s.Affinity.String()
	}
	if s.ExternalLocal {
		fs.ExternalTrafficPolicy = policyLocal
	}
	for _, e := range s.Endpoints {
		if !slices.Equal(e.Ports, target) {
			return fs, fmt.Errorf("service %s/%s: endpoint %v has ports %v, not the service ports' target ports %v: "+
				"the cluster file gives every endpoint of a service the same ports", s.Namespace, s.Name, e.Addr, e.Ports, target)
		}
		fe := fileEndpoint{Node: e.Node}
		if e.Addr.IsValid() {
			fe.Address = e.Addr.String()
		}
		// Only what differs from the defaults (see fileService.model).
		if e.Terminating {
			fe.Terminating = new(true)
		}
		if e.Ready == e.Terminating {
			fe.Ready = new(e.Ready)
		}
		if e.Serving != (e.Ready || e.Terminating) {
			fe.Serving = new(e.Serving)
		}
		fs.Endpoints = append(fs.Endpoints, fe)
	}
	return fs, nil
}

// addrStrings writes addresses, an invalid one as "".
func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		s := ""
		if a.IsValid() {
			s = a.String()
		}
		out = append(out, s)
	}
	return out
}

// file is the cluster file. Its fields are the strings, numbers and
// booleans the file holds; model turns them into the model's types,
// naming the field that does not parse. A new part of the file is a new
// field here and in Cluster.
type file struct {
	Tunnel     fileTunnel      `json:"tunnel,omitzero"`
	Nodes      []fileNode      `json:"nodes,omitempty"`
	Services   []fileService   `json:"services,omitempty"`
	Namespaces []fileNamespace `json:"namespaces,omitempty"`
	Pods       []filePod       `json:"pods,omitempty"`
	Policies   []filePolicy    `json:"policies,omitempty"`
}

type fileTunnel struct {
	Mode             string `json:"mode,omitempty"`
	CrossSubnetEncap string `json:"crossSubnetEncap,omitempty"`
	VXLANPort        int64  `json:"vxlanPort,omitempty"`
	VNI              int64  `json:"vni,omitempty"`
}

type fileNode struct {
	Name     string   `json:"name,omitempty"`
	Address  string   `json:"address,omitempty"`
	PodCIDRs []string `json:"podCIDRs,omitempty"`
	Backend  string   `json:"backend,omitempty"`
	VtepMAC  string   `json:"vtepMAC,omitempty"`
}

// fileService is a Service as the file writes it: Kubernetes' field
// names, and endpoints whose ports are the service ports' targetPorts.
type fileService struct {
	Name                   string            `json:"name,omitempty"`
	Namespace              string            `json:"namespace,omitempty"`
	ClusterIPs             []string          `json:"clusterIPs,omitempty"`
	ExternalIPs            []string          `json:"externalIPs,omitempty"`
	Ports                  []fileServicePort `json:"ports,omitempty"`
	SessionAffinity        string            `json:"sessionAffinity,omitempty"`
	SessionAffinityTimeout string            `json:"sessionAffinityTimeout,omitempty"`
	ExternalTrafficPolicy  string            `json:"externalTrafficPolicy,omitempty"`
	Endpoints              []fileEndpoint    `json:"endpoints,omitempty"`
}

type fileServicePort struct {
	Name       string `json:"name,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	Port       int64  `json:"port,omitempty"`
	TargetPort int64  `json:"targetPort,omitempty"`
	NodePort   int64  `json:"nodePort,omitempty"`
}

// fileEndpoint's conditions are pointers: absent is not false (ready is
// true unless terminating).
type fileEndpoint struct {
	Address     string `json:"address,omitempty"`
	Node        string `json:"node,omitempty"`
	Ready       *bool  `json:"ready,omitempty"`
	Serving     *bool  `json:"serving,omitempty"`
	Terminating *bool  `json:"terminating,omitempty"`
}

// The values of the file's enumerated service fields, as Kubernetes
// spells them.
const (
	affinityNone     = "None"
	affinityClientIP = "ClientIP"
	policyCluster    = "Cluster"
	policyLocal      = "Local"
)

// Kubernetes' defaults and limits for services.
const (
	defaultNamespace = "default"
	defaultAffinity  = 3 * time.Hour // sessionAffinityConfig.clientIP.timeoutSeconds, 10800
	nodePortMin      = 30000         // the default --service-node-port-range
	nodePortMax      = 32767
)

// Addresses the messages give as examples.
const (
	serviceIPExample  = "10.96.0.10"
	endpointIPExample = "10.244.1.5"
)

// model converts one service of the file, reporting under f what does
// not parse: addresses, protocols, port numbers, durations and the
// enumerated fields. Defaults that depend on the file's form (targetPort,
// the conditions, the affinity timeout) are applied here; the others by
// SetDefaults.
func (fs *fileService) model(p *problems, f string) Service {
	s := Service{Namespace: fs.Namespace, Name: fs.Name}
	s.ClusterIPs = parseAddrs(p, f+".clusterIPs", fs.ClusterIPs, serviceIPExample)
	s.ExternalIPs = parseAddrs(p, f+".externalIPs", fs.ExternalIPs, "192.168.50.100")
	var target []EndpointPort
	for j, fp := range fs.Ports {
		fj := fmt.Sprintf("%s.ports[%d]", f, j)
		sp := ServicePort{Name: fp.Name, Port: parsePort(p, fj+".port", fp.Port), NodePort: parsePort(p, fj+".nodePort", fp.NodePort),
			Protocol: parseProtocol(p, fj+".protocol", fp.Protocol)}
		tp := parsePort(p, fj+".targetPort", fp.TargetPort)
		if tp == 0 {
			tp = sp.Port
		}
		s.Ports = append(s.Ports, sp)
		target = append(target, EndpointPort{Name: sp.Name, Protocol: sp.Protocol, Port: tp})
	}
	switch fs.SessionAffinity {
	case "", affinityNone:
		if fs.SessionAffinityTimeout != "" {
			p.add(f+".sessionAffinityTimeout", "only used with sessionAffinity: %s; remove it, or set sessionAffinity: %s", affinityClientIP, affinityClientIP)
		}
	case affinityClientIP:
		s.Affinity = defaultAffinity
		if t := fs.SessionAffinityTimeout; t != "" {
			d, err := time.ParseDuration(t)
			switch {
			case err != nil:
				p.add(f+".sessionAffinityTimeout", "%q is not a duration; write it with its unit, such as 3h or 10800s", t)
			case d <= 0:
				p.add(f+".sessionAffinityTimeout", "%s is not positive; give how long a client keeps its backend, such as 3h (the default), or remove sessionAffinity", t)
			default:
				s.Affinity = d
			}
		}
	default:
		vs := []string{affinityNone, affinityClientIP}
		p.add(f+".sessionAffinity", "unknown affinity %q; choose %s%s", fs.SessionAffinity, choices(vs), didYouMean(fs.SessionAffinity, vs))
	}
	switch fs.ExternalTrafficPolicy {
	case "", policyCluster:
	case policyLocal:
		s.ExternalLocal = true
	default:
		vs := []string{policyCluster, policyLocal}
		p.add(f+".externalTrafficPolicy", "unknown policy %q; choose %s%s", fs.ExternalTrafficPolicy, choices(vs), didYouMean(fs.ExternalTrafficPolicy, vs))
	}
	for k, fe := range fs.Endpoints {
		fk := fmt.Sprintf("%s.endpoints[%d]", f, k)
		e := ServiceEndpoint{Node: fe.Node, Ports: slices.Clone(target)}
		if fe.Address == "" {
			p.add(fk+".address", "missing; give the endpoint's (the pod's) IP address, such as %s", endpointIPExample)
		} else {
			e.Addr = parseAddr(p, fk+".address", fe.Address, endpointIPExample)
		}
		e.Terminating = fe.Terminating != nil && *fe.Terminating
		e.Ready = !e.Terminating
		if fe.Ready != nil {
			e.Ready = *fe.Ready
		}
		e.Serving = e.Ready || e.Terminating
		if fe.Serving != nil {
			e.Serving = *fe.Serving
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

// parseAddrs parses a list of IP addresses, reporting each that does not
// parse as f[k].
func parseAddrs(p *problems, f string, ss []string, example string) []netip.Addr {
	var out []netip.Addr
	for k, s := range ss {
		out = append(out, parseAddr(p, fmt.Sprintf("%s[%d]", f, k), s, example))
	}
	return out
}

func parseAddr(p *problems, f, s, example string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			p.add(f, "%q is a prefix; give one address, without a length, such as %s", s, example)
		} else {
			p.add(f, "%q is not an IP address; write it as one, such as %s", s, example)
		}
	}
	return a
}

// parseProtocol parses a protocol of the file as Kubernetes spells it
// (TCP, UDP or SCTP): its number, or 0 when s is empty or unknown (which
// it reports).
func parseProtocol(p *problems, f, s string) uint8 {
	if s == "" {
		return 0
	}
	k := slices.IndexFunc(protocols, func(q protocol) bool { return q.name == s })
	if k < 0 {
		names := protocolNames()
		p.add(f, "unknown protocol %q; choose %s%s", s, choices(names), didYouMean(s, names))
		return 0
	}
	return protocols[k].num
}

// parsePort checks a port number of the file: 0 (absent) or 1 to 65535.
func parsePort(p *problems, f string, n int64) uint16 {
	if n < 0 || n > 65535 {
		p.add(f, "%d is not a port; give 1 to 65535", n)
		return 0
	}
	return uint16(n)
}

// model converts the file to the model: it parses addresses, prefixes,
// MACs and numbers, and reports those that do not parse. Validate checks
// the rest.
func (f *file) model() (*Cluster, error) {
	var p problems
	t := f.Tunnel
	c := &Cluster{Tunnel: Tunnel{Mode: Mode(t.Mode), CrossSubnetEncap: Mode(t.CrossSubnetEncap)}}
	if t.VXLANPort < 0 || t.VXLANPort > 65535 {
		p.add("tunnel.vxlanPort", "%d is not a UDP port; give 1 to 65535, the Flannel nodes' if there are any (Flannel's default is %d)", t.VXLANPort, DefaultVXLANPort)
	} else {
		c.Tunnel.VXLANPort = uint16(t.VXLANPort)
	}
	if t.VNI < 0 || t.VNI > maxVNI {
		p.add("tunnel.vni", "%d is out of range; a VNI is 1 to %d, the Flannel nodes' if there are any (Flannel's default is %d)", t.VNI, maxVNI, DefaultVNI)
	} else {
		c.Tunnel.VNI = uint32(t.VNI)
	}
	for i, fn := range f.Nodes {
		fi := fmt.Sprintf("nodes[%d]", i)
		n := Node{Name: fn.Name, Backend: Backend(fn.Backend)}
		if fn.Address != "" {
			if a, err := netip.ParsePrefix(fn.Address); err == nil {
				n.Address = a
			} else if a, err := netip.ParseAddr(fn.Address); err == nil {
				p.add(fi+".address", "%q has no subnet length; write it as %v/24 or whatever the length of the node's underlay subnet is", fn.Address, a)
			} else {
				p.add(fi+".address", "%q is not an IPv4 address with a subnet length, such as 192.168.50.1/24", fn.Address)
			}
		}
		for k, s := range fn.PodCIDRs {
			pc, err := netip.ParsePrefix(s)
			if err != nil {
				p.add(fmt.Sprintf("%s.podCIDRs[%d]", fi, k), "%q is not a CIDR; write it as address/length, such as 10.244.1.0/24", s)
			}
			n.PodCIDRs = append(n.PodCIDRs, pc)
		}
		if fn.VtepMAC != "" {
			mac, err := net.ParseMAC(fn.VtepMAC)
			if err != nil {
				p.add(fi+".vtepMAC", "%q is not a MAC; write it as six hex bytes, such as 02:42:c0:a8:32:03", fn.VtepMAC)
			}
			n.VtepMAC = mac
		}
		c.Nodes = append(c.Nodes, n)
	}
	for i := range f.Services {
		c.Services = append(c.Services, f.Services[i].model(&p, fmt.Sprintf("services[%d]", i)))
	}
	for _, fn := range f.Namespaces {
		c.Namespaces = append(c.Namespaces, netpol.Namespace{Name: fn.Name, Labels: labelsOf(fn.Labels)})
	}
	for i := range f.Pods {
		c.Pods = append(c.Pods, f.Pods[i].model(&p, fmt.Sprintf("pods[%d]", i)))
	}
	for i := range f.Policies {
		c.Policies = append(c.Policies, f.Policies[i].model(&p, fmt.Sprintf("policies[%d]", i)))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkShape reports the first place where v, a document decoded by
// encoding/json into any (numbers as json.Number), does not fit the Go
// type t: a key t has no field for, matched exactly, or a value of the
// wrong kind. null fits anything (it is as if the key were absent).
func checkShape(path string, v any, t reflect.Type) error {
	where := path
	if where == "" {
		where = "cluster file"
	}
	if v == nil {
		return nil
	}
	if t == reflect.TypeFor[intOrString]() {
		switch n := v.(type) {
		case string:
			return nil
		case json.Number:
			if _, err := n.Int64(); err != nil {
				return fmt.Errorf("%s: %s is not a whole number in range", where, n)
			}
			return nil
		}
		return fmt.Errorf("%s: got %s, want a number or a name", where, kind(v))
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want a mapping", where, kind(v))
		}
		fields := map[string]reflect.Type{}
		var names []string
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields[name] = f.Type
			names = append(names, name)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				for _, name := range names {
					if strings.EqualFold(k, name) {
						return fmt.Errorf("%s: unknown key %q; did you mean %q?", where, k, name)
					}
				}
				return fmt.Errorf("%s: unknown key %q; the keys here are %s", where, k, strings.Join(names, ", "))
			}
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if err := checkShape(sub, m[k], ft); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want a mapping", where, kind(v))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := checkShape(fmt.Sprintf("%s[%q]", path, k), m[k], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want a list", where, kind(v))
		}
		for i, e := range l {
			if err := checkShape(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: got %s, want a string (put it in quotes)", where, kind(v))
		}
	case reflect.Pointer:
		return checkShape(path, v, t.Elem())
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: got %s, want true or false", where, kind(v))
		}
	case reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: got %s, want a whole number", where, kind(v))
		}
		if _, err := n.Int64(); err != nil {
			return fmt.Errorf("%s: %s is not a whole number in range", where, n)
		}
	default:
		panic("cluster: checkShape: no rule for " + t.String())
	}
	return nil
}

// kind names the kind of a decoded JSON value for a message.
func kind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%t (a boolean; YAML reads yes, no, on and off as booleans)", v)
	}
	return fmt.Sprintf("%T", v)
}
