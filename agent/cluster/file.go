package cluster

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"

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
	return json.Marshal(f)
}

// file is the cluster file. Its fields are the strings and numbers the
// file holds; model turns them into the model's types, naming the field
// that does not parse. A new part of the file (pods, policies, services)
// is a new field here and in Cluster.
type file struct {
	Tunnel fileTunnel `json:"tunnel,omitzero"`
	Nodes  []fileNode `json:"nodes,omitempty"`
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
