package cluster

// NetworkPolicy in the cluster file: the namespaces, pods and policies
// sections as the file writes them (a policy's spec field for field as
// networking.k8s.io/v1 does), their conversion to agent/netpol's input,
// and their validation.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/agent/netpol"
)

// fileNamespace is a namespace with the labels namespaceSelectors see.
type fileNamespace struct {
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// filePod is a pod as policies see it: who it is, its labels, its
// addresses and its named container ports.
type filePod struct {
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	Ports     []filePodPort     `json:"ports,omitempty"`
}

// filePodPort is a named container port.
type filePodPort struct {
	Name     string `json:"name,omitempty"`
	Port     int64  `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// filePolicy is a NetworkPolicy: its namespace and name, and its spec as
// Kubernetes writes it. The pointers tell an absent spec, selector, peer
// kind or port from an empty one.
type filePolicy struct {
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name,omitempty"`
	Spec      *filePolicySpec `json:"spec,omitempty"`
}

type filePolicySpec struct {
	PodSelector *fileSelector     `json:"podSelector,omitempty"`
	PolicyTypes []string          `json:"policyTypes,omitempty"`
	Ingress     []fileIngressRule `json:"ingress,omitempty"`
	Egress      []fileEgressRule  `json:"egress,omitempty"`
}

type fileIngressRule struct {
	From  []filePeer       `json:"from,omitempty"`
	Ports []filePolicyPort `json:"ports,omitempty"`
}

type fileEgressRule struct {
	To    []filePeer       `json:"to,omitempty"`
	Ports []filePolicyPort `json:"ports,omitempty"`
}

type filePeer struct {
	PodSelector       *fileSelector `json:"podSelector,omitempty"`
	NamespaceSelector *fileSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *fileIPBlock  `json:"ipBlock,omitempty"`
}

type fileIPBlock struct {
	CIDR   string   `json:"cidr,omitempty"`
	Except []string `json:"except,omitempty"`
}

type filePolicyPort struct {
	Protocol string       `json:"protocol,omitempty"`
	Port     *intOrString `json:"port,omitempty"`
	EndPort  int64        `json:"endPort,omitempty"`
}

type fileSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []fileRequirement `json:"matchExpressions,omitempty"`
}

type fileRequirement struct {
	Key      string   `json:"key,omitempty"`
	Operator string   `json:"operator,omitempty"`
	Values   []string `json:"values,omitempty"`
}

// intOrString is a value Kubernetes writes as a number or as a name (its
// IntOrString), such as a policy's port: 8080 or http. checkShape lets
// only those two through.
type intOrString struct {
	num    int64
	name   string
	isName bool
}

func (v intOrString) MarshalJSON() ([]byte, error) {
	if v.isName {
		return json.Marshal(v.name)
	}
	return json.Marshal(v.num)
}

func (v *intOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.isName = true
		return json.Unmarshal(b, &v.name)
	}
	return json.Unmarshal(b, &v.num)
}

// labelsOf copies labels, nil when there are none (the model never holds
// an empty map, so that a round trip through the file compares equal).
func labelsOf(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return maps.Clone(labels)
}

// stringsOf copies ss, nil when empty.
func stringsOf(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return slices.Clone(ss)
}

// model converts one pod of the file, reporting under f what does not
// parse: addresses, port numbers and protocols.
func (fp *filePod) model(p *problems, f string) netpol.Pod {
	pod := netpol.Pod{Namespace: fp.Namespace, Name: fp.Name, Labels: labelsOf(fp.Labels),
		IPs: parseAddrs(p, f+".addresses", fp.Addresses, endpointIPExample)}
	for j, pp := range fp.Ports {
		fj := fmt.Sprintf("%s.ports[%d]", f, j)
		pod.Ports = append(pod.Ports, netpol.NamedPort{Name: pp.Name,
			Proto: parseProtocol(p, fj+".protocol", pp.Protocol), Port: parsePort(p, fj+".port", pp.Port)})
	}
	return pod
}

// model converts one policy of the file, reporting under f what the
// model cannot hold (a missing spec or podSelector, port numbers out of
// range, an unknown protocol, an ipBlock without a cidr). The rest, what
// makes a policy valid, is Validate's (through netpol.Check).
func (fp *filePolicy) model(p *problems, f string) netpol.NetworkPolicy {
	np := netpol.NetworkPolicy{Namespace: fp.Namespace, Name: fp.Name}
	s := fp.Spec
	if s == nil {
		p.add(f+".spec", "missing; give the policy's spec as Kubernetes writes it: podSelector, policyTypes, ingress, egress")
		return np
	}
	f += ".spec"
	if s.PodSelector == nil {
		p.add(f+".podSelector", "missing; select the pods of the policy's namespace it applies to, such as {matchLabels: {app: web}}, or give {} for all of them")
	} else {
		np.PodSelector = s.PodSelector.model()
	}
	np.PolicyTypes = stringsOf(s.PolicyTypes)
	for i, r := range s.Ingress {
		np.Ingress = append(np.Ingress, ruleModel(p, fmt.Sprintf("%s.ingress[%d]", f, i), "from", r.From, r.Ports))
	}
	for i, r := range s.Egress {
		np.Egress = append(np.Egress, ruleModel(p, fmt.Sprintf("%s.egress[%d]", f, i), "to", r.To, r.Ports))
	}
	return np
}

// ruleModel converts an ingress or egress rule, whose peers are under
// the key peersKey (from or to).
func ruleModel(p *problems, f, peersKey string, peers []filePeer, ports []filePolicyPort) netpol.Rule {
	var r netpol.Rule
	for k := range peers {
		r.Peers = append(r.Peers, peers[k].model(p, fmt.Sprintf("%s.%s[%d]", f, peersKey, k)))
	}
	for k := range ports {
		r.Ports = append(r.Ports, ports[k].model(p, fmt.Sprintf("%s.ports[%d]", f, k)))
	}
	return r
}

func (fp *filePeer) model(p *problems, f string) netpol.Peer {
	var pe netpol.Peer
	if fp.PodSelector != nil {
		s := fp.PodSelector.model()
		pe.PodSelector = &s
	}
	if fp.NamespaceSelector != nil {
		s := fp.NamespaceSelector.model()
		pe.NamespaceSelector = &s
	}
	if b := fp.IPBlock; b != nil {
		if b.CIDR == "" {
			p.add(f+".ipBlock.cidr", "missing; give the block's CIDR, such as 10.0.0.0/8")
		}
		pe.IPBlock = &netpol.IPBlock{CIDR: b.CIDR, Except: stringsOf(b.Except)}
	}
	return pe
}

func (fp *filePolicyPort) model(p *problems, f string) netpol.PolicyPort {
	var pp netpol.PolicyPort
	if parseProtocol(p, f+".protocol", fp.Protocol) != 0 {
		pp.Protocol = fp.Protocol
	}
	switch v := fp.Port; {
	case v == nil:
	case v.isName:
		pp.Port = &netpol.PortRef{Name: v.name}
	case v.num < 1 || v.num > 65535:
		p.add(f+".port", "%d is not a port; give 1 to 65535, or the name of a container port", v.num)
	default:
		pp.Port = &netpol.PortRef{Num: uint16(v.num)}
	}
	pp.EndPort = parsePort(p, f+".endPort", fp.EndPort)
	return pp
}

func (fs *fileSelector) model() netpol.LabelSelector {
	s := netpol.LabelSelector{MatchLabels: labelsOf(fs.MatchLabels)}
	for _, r := range fs.MatchExpressions {
		s.MatchExpressions = append(s.MatchExpressions, netpol.Requirement{Key: r.Key, Operator: r.Operator, Values: stringsOf(r.Values)})
	}
	return s
}

// filePodOf writes a pod in the file's form.
func filePodOf(pod *netpol.Pod) filePod {
	fp := filePod{Namespace: pod.Namespace, Name: pod.Name, Labels: pod.Labels, Addresses: addrStrings(pod.IPs)}
	for _, np := range pod.Ports {
		fpp := filePodPort{Name: np.Name, Port: int64(np.Port)}
		if np.Proto != 0 {
			fpp.Protocol = ProtocolName(np.Proto)
		}
		fp.Ports = append(fp.Ports, fpp)
	}
	return fp
}

// filePolicyOf writes a policy in the file's form.
func filePolicyOf(np *netpol.NetworkPolicy) filePolicy {
	spec := &filePolicySpec{PodSelector: fileSelectorOf(&np.PodSelector), PolicyTypes: np.PolicyTypes}
	for _, r := range np.Ingress {
		spec.Ingress = append(spec.Ingress, fileIngressRule{From: filePeersOf(r.Peers), Ports: filePortsOf(r.Ports)})
	}
	for _, r := range np.Egress {
		spec.Egress = append(spec.Egress, fileEgressRule{To: filePeersOf(r.Peers), Ports: filePortsOf(r.Ports)})
	}
	return filePolicy{Namespace: np.Namespace, Name: np.Name, Spec: spec}
}

func fileSelectorOf(s *netpol.LabelSelector) *fileSelector {
	fs := &fileSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		fs.MatchExpressions = append(fs.MatchExpressions, fileRequirement{Key: r.Key, Operator: r.Operator, Values: r.Values})
	}
	return fs
}

func filePeersOf(peers []netpol.Peer) []filePeer {
	var out []filePeer
	for _, pe := range peers {
		var fp filePeer
		if pe.PodSelector != nil {
			fp.PodSelector = fileSelectorOf(pe.PodSelector)
		}
		if pe.NamespaceSelector != nil {
			fp.NamespaceSelector = fileSelectorOf(pe.NamespaceSelector)
		}
		if b := pe.IPBlock; b != nil {
			fp.IPBlock = &fileIPBlock{CIDR: b.CIDR, Except: b.Except}
		}
		out = append(out, fp)
	}
	return out
}

func filePortsOf(ports []netpol.PolicyPort) []filePolicyPort {
	var out []filePolicyPort
	for _, po := range ports {
		fp := filePolicyPort{Protocol: po.Protocol, EndPort: int64(po.EndPort)}
		switch {
		case po.Port == nil:
		case po.Port.Name != "":
			fp.Port = &intOrString{name: po.Port.Name, isName: true}
		default:
			fp.Port = &intOrString{num: int64(po.Port.Num)}
		}
		out = append(out, fp)
	}
	return out
}

// validateNamespaces checks the namespaces: names, each once, and labels.
func (c *Cluster) validateNamespaces(p *problems) {
	seen := map[string]int{}
	for i, ns := range c.Namespaces {
		f := fmt.Sprintf("namespaces[%d]", i)
		if ns.Name == "" {
			p.add(f+".name", "missing; give the namespace's name")
		} else {
			validateNamespace(p, f+".name", ns.Name, "")
		}
		if j, dup := seen[ns.Name]; dup && ns.Name != "" {
			p.add(f+".name", "%q is also namespaces[%d].name; list each namespace once", ns.Name, j)
		} else {
			seen[ns.Name] = i
		}
		validateLabels(p, f+".labels", ns.Labels, false)
		if v, ok := ns.Labels[netpol.LabelMetadataName]; ok && v != ns.Name {
			p.add(f+".labels", "%s is %q, but Kubernetes sets it to the namespace's name, %q; remove it (every namespace has it)",
				netpol.LabelMetadataName, v, ns.Name)
		}
	}
}

// validatePods checks the pods: names, each once; labels; addresses,
// one per family, each in a node's pod CIDR and no other pod's; named
// ports.
func (c *Cluster) validatePods(p *problems) {
	names := map[netpol.PodRef]int{}
	owners := map[netip.Addr]string{} // address -> the field that has it, with its pod
	for i := range c.Pods {
		pod := &c.Pods[i]
		f := fmt.Sprintf("pods[%d]", i)
		ref := netpol.PodRef{Namespace: pod.Namespace, Name: pod.Name}
		validateNamespace(p, f+".namespace", pod.Namespace, "pod")
		validateObjectName(p, f+".name", pod.Name, "pod")
		if j, dup := names[ref]; dup && pod.Name != "" {
			p.add(f+".name", "%q is also pods[%d].name in namespace %q; a pod's namespace and name must be unique", pod.Name, j, pod.Namespace)
		} else {
			names[ref] = i
		}
		validateLabels(p, f+".labels", pod.Labels, false)
		if len(pod.IPs) == 0 {
			p.add(f+".addresses", "missing; give the pod's addresses (its status.podIPs: at most one IPv4 and one IPv6, such as [%s])", endpointIPExample)
		}
		var fams famSeen
		for k, a := range pod.IPs {
			fk := fmt.Sprintf("%s.addresses[%d]", f, k)
			const hint = "give the pod's address, from its node's pod CIDR"
			if !unicastOK(p, fk, a, "a pod may have", hint) {
				continue
			}
			if !fams.first(p, fk, f+".addresses", pod.IPs, k, "address", "a pod") {
				continue
			}
			if _, _, ok := c.podCIDROf(a); !ok {
				p.add(fk, "%v is in no node's pod CIDR; %s (an address outside the pod CIDRs is no pod's: match it with an ipBlock)", a, hint)
				continue
			}
			if other, dup := owners[a]; dup {
				p.add(fk, "%v is also %s; every pod needs its own addresses", a, other)
				continue
			}
			owners[a] = fmt.Sprintf("%s (pod %s)", fk, ref)
		}
		for j, np := range pod.Ports {
			fj := fmt.Sprintf("%s.ports[%d]", f, j)
			switch {
			case np.Name == "":
				p.add(fj+".name", "missing; give the container port's name (only named ports matter to policies, whose ports name them)")
			case !netpol.ValidPortName(np.Name):
				p.add(fj+".name", "%q is not a port name; use at most 15 lowercase letters, digits and '-', with a letter, "+
					"no '-' at either end or beside another (an IANA service name, as Kubernetes requires)", np.Name)
			default:
				if k := slices.IndexFunc(pod.Ports[:j], func(q netpol.NamedPort) bool { return q.Name == np.Name }); k >= 0 {
					p.add(fj+".name", "%q is also %s.ports[%d].name; port names must be unique within a pod", np.Name, f, k)
				}
			}
			if _, ok := protocolName(np.Proto); !ok {
				p.add(fj+".protocol", "%d is not a protocol a container port may have; choose %s", np.Proto, choices(protocolNames()))
			}
			if np.Port == 0 {
				p.add(fj+".port", "missing; give the container port's number, 1 to 65535")
			}
		}
	}
}

// validatePolicies checks the policies: names, each once; the label keys
// and values their selectors name; and the rest as netpol.Check does,
// which is what the API server refuses.
func (c *Cluster) validatePolicies(p *problems) {
	names := map[netpol.PodRef]int{}
	for i := range c.Policies {
		np := &c.Policies[i]
		f := fmt.Sprintf("policies[%d]", i)
		validateNamespace(p, f+".namespace", np.Namespace, "policy")
		validateObjectName(p, f+".name", np.Name, "policy")
		ref := netpol.PodRef{Namespace: np.Namespace, Name: np.Name}
		if j, dup := names[ref]; dup && np.Name != "" {
			p.add(f+".name", "%q is also policies[%d].name in namespace %q; a policy's namespace and name must be unique", np.Name, j, np.Namespace)
		} else {
			names[ref] = i
		}
		validateSelector(p, f+".spec.podSelector", &np.PodSelector)
		dirs := []struct {
			key, peers string
			rules      []netpol.Rule
		}{{"ingress", "from", np.Ingress}, {"egress", "to", np.Egress}}
		for _, d := range dirs {
			for k := range d.rules {
				for j, pe := range d.rules[k].Peers {
					fj := fmt.Sprintf("%s.spec.%s[%d].%s[%d]", f, d.key, k, d.peers, j)
					if pe.PodSelector != nil {
						validateSelector(p, fj+".podSelector", pe.PodSelector)
					}
					if pe.NamespaceSelector != nil {
						validateSelector(p, fj+".namespaceSelector", pe.NamespaceSelector)
					}
				}
			}
		}
		for _, e := range netpol.Check(np) {
			p.add(f+"."+e.Field, "%s", e.Msg)
		}
	}
}

// validateObjectName checks the name of a pod or policy (what): a DNS-1123
// subdomain, as Kubernetes requires of both.
func validateObjectName(p *problems, f, name, what string) {
	switch {
	case name == "":
		p.add(f, "missing; give the %s's name (its metadata.name)", what)
	case !isSubdomain(name):
		p.add(f, "%q is not a %s name; use lowercase letters, digits, '-' and '.', "+
			"starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)", name, what)
	}
}

// validateSelector checks the label keys and values a selector names. An
// empty key, operators and the values they need are netpol.Check's.
func validateSelector(p *problems, f string, s *netpol.LabelSelector) {
	validateLabels(p, f+".matchLabels", s.MatchLabels, true)
	for i, r := range s.MatchExpressions {
		fi := fmt.Sprintf("%s.matchExpressions[%d]", f, i)
		if r.Key != "" && !labelKeyOK(r.Key) {
			p.add(fi+".key", "%q is not a label key; %s", r.Key, labelKeyHint)
		}
		for j, v := range r.Values {
			if !labelValueOK(v) {
				p.add(fmt.Sprintf("%s.values[%d]", fi, j), "%q is not a label value; %s", v, labelValueHint)
			}
		}
	}
}

// How label keys and values are written, for messages.
const (
	labelNameRule  = "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
	labelKeyHint   = "use " + labelNameRule + ", after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)"
	labelValueHint = "use " + labelNameRule + ", or nothing"
)

// validateLabels checks labels' keys and values, in key order; an empty
// key is left alone when skipEmpty (a selector's, which netpol.Check
// reports).
func validateLabels(p *problems, f string, labels map[string]string, skipEmpty bool) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" && skipEmpty {
			continue
		}
		if !labelKeyOK(k) {
			p.add(f, "%q is not a label key; %s", k, labelKeyHint)
		}
		if v := labels[k]; !labelValueOK(v) {
			p.add(f, "%q, the value of %q, is not a label value; %s", v, k, labelValueHint)
		}
	}
}

// labelKeyOK reports whether k is a label key as Kubernetes allows it (a
// qualified name): a name, with an optional DNS-1123 subdomain and '/'
// before it.
func labelKeyOK(k string) bool {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		prefix, name = "", k
	} else if !isSubdomain(prefix) {
		return false
	}
	return name != "" && labelValueOK(name)
}

// labelValueOK reports whether v is a label value as Kubernetes allows
// it: empty, or at most 63 letters, digits, '-', '_' and '.', starting and
// ending with a letter or digit.
func labelValueOK(v string) bool {
	if v == "" {
		return true
	}
	alnumAny := func(b byte) bool { return alnum(b) || 'A' <= b && b <= 'Z' }
	if len(v) > 63 || !alnumAny(v[0]) || !alnumAny(v[len(v)-1]) {
		return false
	}
	for i := range len(v) {
		if b := v[i]; !alnumAny(b) && b != '-' && b != '_' && b != '.' {
			return false
		}
	}
	return true
}
