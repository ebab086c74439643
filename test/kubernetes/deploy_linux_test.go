package kubernetes_test

// The manifests in deploy/: that the API server takes them as they are,
// that their parts agree with each other and with ringnetd's flags, that
// the ClusterRole is exactly what agent/k8s needs (each verb used, nothing
// more), that the conflist parses, and that the init container's
// installer does what the DaemonSet relies on.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/k8s"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/internal/kubetest"
	"github.com/ringnet/ringnet/tables/policy"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// deployDir holds the manifests, relative to this package.
const deployDir = "../../deploy"

// conflistKey is the ConfigMap key of the network configuration, and the
// name it is installed under.
const conflistKey = "10-ringnet.conflist"

// manifests are the objects of deploy/*.yaml, one of each kind.
type manifests struct {
	sa      *corev1.ServiceAccount
	role    *rbacv1.ClusterRole
	binding *rbacv1.ClusterRoleBinding
	config  *corev1.ConfigMap
	ds      *appsv1.DaemonSet
}

// strictDecoder decodes with client-go's scheme and fails on unknown or
// duplicate fields.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// loadManifests decodes every document of every deploy/*.yaml strictly and
// fails the test on an unknown kind or a kind given twice: each object is
// one the checks below know.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", deployDir, err)
	}
	m := &manifests{}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", file, i, err)
			}
			if j, err := yaml.YAMLToJSON(doc); err != nil || string(bytes.TrimSpace(j)) == "null" {
				continue // only comments
			}
			obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: document %d: %v", file, i, err)
			}
			var dup bool
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				dup, m.sa = m.sa != nil, o
			case *rbacv1.ClusterRole:
				dup, m.role = m.role != nil, o
			case *rbacv1.ClusterRoleBinding:
				dup, m.binding = m.binding != nil, o
			case *corev1.ConfigMap:
				dup, m.config = m.config != nil, o
			case *appsv1.DaemonSet:
				dup, m.ds = m.ds != nil, o
			default:
				t.Fatalf("%s: document %d: a %v, which this test does not check; add it here", file, i, gvk)
			}
			if dup {
				t.Fatalf("%s: document %d: a second %v", file, i, gvk)
			}
		}
		f.Close()
	}
	if m.sa == nil || m.role == nil || m.binding == nil || m.config == nil || m.ds == nil {
		t.Fatalf("deploy/ lacks one of ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet: %+v", m)
	}
	return m
}

// container returns the pod template's (init) container named name.
func (m *manifests) container(t *testing.T, name string) *corev1.Container {
	t.Helper()
	spec := &m.ds.Spec.Template.Spec
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	t.Fatalf("the DaemonSet has no container %q", name)
	return nil
}

// argValue returns the value of --name=VALUE among c's args.
func argValue(t *testing.T, c *corev1.Container, name string) string {
	t.Helper()
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("container %s has no --%s=VALUE argument: %q", c.Name, name, c.Args)
	return ""
}

// hostPathAt returns the hostPath behind c's mount at mountPath, or "".
func (m *manifests) hostPathAt(c *corev1.Container, mountPath string) string {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != mountPath {
			continue
		}
		for _, v := range m.ds.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.HostPath != nil {
				return v.HostPath.Path
			}
		}
	}
	return ""
}

// TestDeployStrictDecoding: the decoder the manifests go through refuses
// an unknown field, so a misspelt one in deploy/ fails the test rather
// than vanishing.
func TestDeployStrictDecoding(t *testing.T) {
	bad := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n"
	if _, _, err := strictDecoder.Decode([]byte(bad), nil, nil); err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Errorf("decoding a DaemonSet with an unknown field: %v, want an error naming it", err)
	}
	loadManifests(t)
}

// TestDeployConsistent: what the API server cannot check, because it
// spans objects or what runs on the node.
func TestDeployConsistent(t *testing.T) {
	m := loadManifests(t)
	const ns = metav1.NamespaceSystem
	for what, got := range map[string]string{"ServiceAccount": m.sa.Namespace, "ConfigMap": m.config.Namespace, "DaemonSet": m.ds.Namespace} {
		if got != ns {
			t.Errorf("%s in namespace %q, want %s", what, got, ns)
		}
	}
	if want := (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: m.role.Name}); m.binding.RoleRef != want {
		t.Errorf("ClusterRoleBinding refers to %+v, want %+v", m.binding.RoleRef, want)
	}
	// The tests that run as ringnetd (kubetest.GrantRingnetd) have the
	// manifest's rights, read by kubetest.
	if role, err := kubetest.RingnetdRole(); err != nil {
		t.Error(err)
	} else if diff := cmp.Diff(m.role.Rules, role.Rules); diff != "" || role.Name != m.role.Name {
		t.Errorf("kubetest.RingnetdRole is %s, not the manifest's %s (-manifest +kubetest):\n%s", role.Name, m.role.Name, diff)
	}
	saSubject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: m.sa.Name, Namespace: m.sa.Namespace}
	if !slices.Contains(m.binding.Subjects, saSubject) || len(m.binding.Subjects) != 1 {
		t.Errorf("ClusterRoleBinding subjects %+v, want only %+v", m.binding.Subjects, saSubject)
	}

	spec := &m.ds.Spec.Template.Spec
	if spec.ServiceAccountName != m.sa.Name {
		t.Errorf("DaemonSet runs as service account %q, want %q", spec.ServiceAccountName, m.sa.Name)
	}
	if !spec.HostNetwork || spec.HostPID || spec.HostIPC || spec.PriorityClassName != "system-node-critical" {
		t.Errorf("hostNetwork %v, hostPID %v, hostIPC %v, priorityClassName %q: want true, false, false, system-node-critical",
			spec.HostNetwork, spec.HostPID, spec.HostIPC, spec.PriorityClassName)
	}
	if !slices.Contains(spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists}) {
		t.Errorf("tolerations %+v: want one with operator Exists and no key or effect (every taint)", spec.Tolerations)
	}

	// Every ConfigMap key the pod reads exists: the API server does not
	// check, and kubelet would refuse to start the container.
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, e := range c.Env {
			if ref := e.ValueFrom; ref != nil && ref.ConfigMapKeyRef != nil {
				if ref.ConfigMapKeyRef.Name != m.config.Name {
					t.Errorf("container %s env %s reads ConfigMap %q, not %q", c.Name, e.Name, ref.ConfigMapKeyRef.Name, m.config.Name)
				} else if _, ok := m.config.Data[ref.ConfigMapKeyRef.Key]; !ok {
					t.Errorf("container %s env %s reads key %q, which the ConfigMap lacks", c.Name, e.Name, ref.ConfigMapKeyRef.Key)
				}
			}
		}
		if c.Image != spec.Containers[0].Image {
			t.Errorf("container %s runs %s, container %s %s: want one image", c.Name, c.Image, spec.Containers[0].Name, spec.Containers[0].Image)
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		for _, it := range v.ConfigMap.Items {
			if _, ok := m.config.Data[it.Key]; !ok || v.ConfigMap.Name != m.config.Name {
				t.Errorf("volume %s takes key %q of ConfigMap %q, which has no such key", v.Name, it.Key, v.ConfigMap.Name)
			}
		}
	}

	// ringnetd: this node's name from the downward API, its socket and
	// state on the node, its probes where it serves them.
	d := m.container(t, "ringnetd")
	if !slices.Contains(d.Args, "--kubernetes") || argValue(t, d, "node") != "$(NODE_NAME)" {
		t.Errorf("ringnetd args %q: want --kubernetes and --node=$(NODE_NAME)", d.Args)
	}
	if !slices.ContainsFunc(d.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("ringnetd has no NODE_NAME from spec.nodeName: %+v", d.Env)
	}
	socket := argValue(t, d, "socket")
	if dir := filepath.Dir(socket); m.hostPathAt(d, dir) != dir {
		t.Errorf("--socket %s: its directory must be the node's own %s (a hostPath at the same path), for the CNI plugin on the node", socket, dir)
	}
	if state := argValue(t, d, "state-dir"); m.hostPathAt(d, state) == "" {
		t.Errorf("--state-dir %s is not a hostPath: allocations would not outlive the pod", state)
	}
	metricsAddr := argValue(t, d, "metrics-addr")
	for name, p := range map[string]*corev1.Probe{"startup": d.StartupProbe, "liveness": d.LivenessProbe, "readiness": d.ReadinessProbe} {
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet == nil {
			t.Errorf("ringnetd has no %s probe over HTTP", name)
			continue
		}
		if g := p.HTTPGet; net.JoinHostPort(g.Host, g.Port.String()) != metricsAddr || g.Path != want {
			t.Errorf("%s probe %s%s, want %s%s (--metrics-addr)", name, net.JoinHostPort(g.Host, g.Port.String()), g.Path, metricsAddr, want)
		}
	}
	if sc := d.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("ringnetd's root filesystem is writable")
	}

	// The init container: writes the plugin and the conflist into the
	// node's directories, reads the conflist from the ConfigMap, and has
	// no privilege at all.
	in := m.container(t, "install-cni")
	for f, host := range map[string]string{"cni-bin-dir": "/opt/cni/bin", "cni-conf-dir": "/etc/cni/net.d"} {
		if got := m.hostPathAt(in, argValue(t, in, f)); got != host {
			t.Errorf("install-cni --%s is the node's %q, want %s", f, got, host)
		}
	}
	if filepath.Base(argValue(t, in, "conflist")) != conflistKey {
		t.Errorf("install-cni --conflist %s: want a file named %s", argValue(t, in, "conflist"), conflistKey)
	}
	if sc := in.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("install-cni's security context %+v: want unprivileged with every capability dropped", sc)
	}

	// The conflist names the socket ringnetd serves.
	var conf struct {
		Plugins []struct {
			Type   string `json:"type"`
			Socket string `json:"socket"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(m.config.Data[conflistKey]), &conf); err != nil || len(conf.Plugins) == 0 {
		t.Fatalf("conflist: %v", err)
	}
	if conf.Plugins[0].Socket != socket {
		t.Errorf("the conflist's socket %q is not ringnetd's --socket %q", conf.Plugins[0].Socket, socket)
	}
}

// TestDeployConflist: the ConfigMap's network configuration is the one in
// deploy/10-ringnet.conflist (tested by package cni's TestPortmapChain),
// libcni parses it, and ringnet comes first.
func TestDeployConflist(t *testing.T) {
	m := loadManifests(t)
	data, ok := m.config.Data[conflistKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", m.config.Name, conflistKey)
	}
	list, err := libcni.ConfListFromBytes([]byte(data))
	if err != nil {
		t.Fatalf("libcni: %v", err)
	}
	var kinds []string
	for _, p := range list.Plugins {
		kinds = append(kinds, p.Network.Type)
	}
	if len(kinds) == 0 || kinds[0] != "ringnet" {
		t.Errorf("plugins %q: want ringnet first", kinds)
	}
	file, err := os.ReadFile(filepath.Join(deployDir, conflistKey))
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(file, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(data), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the ConfigMap's conflist differs from deploy/%s (-file +ConfigMap):\n%s", conflistKey, diff)
	}
}

// TestDeployAPIServer: the API server creates the RBAC objects, the
// ServiceAccount and the ConfigMap, and takes the DaemonSet, and a pod of
// it as the DaemonSet controller would make, in a server-side dry run
// (validation, defaulting and admission: the priority class resolves).
// There are no nodes, so nothing would run anyway.
func TestDeployAPIServer(t *testing.T) {
	m := loadManifests(t)
	api := kubetest.StartT(t)
	c := api.Client()
	ctx := context.Background()
	ns := m.ds.Namespace
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, m.sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ServiceAccount: %v", err)
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, m.role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ClusterRole: %v", err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, m.binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ClusterRoleBinding: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, m.config, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ConfigMap: %v", err)
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ds, err := c.AppsV1().DaemonSets(ns).Create(ctx, m.ds, dryRun)
	if err != nil {
		t.Fatalf("DaemonSet (dry run): %v", err)
	}
	if ds.Spec.RevisionHistoryLimit == nil || ds.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("the dry run returned no defaults: %+v", ds.Spec)
	}
	if _, err := c.AppsV1().DaemonSets(ns).Get(ctx, m.ds.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a dry run, get DaemonSet = %v, want not found", err)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: m.ds.Name + "-", Namespace: ns, Labels: m.ds.Spec.Template.Labels},
		Spec:       *m.ds.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = "node-1"
	got, err := c.CoreV1().Pods(ns).Create(ctx, pod, dryRun)
	if err != nil {
		t.Fatalf("a pod of the DaemonSet (dry run): %v", err)
	}
	pc, err := c.SchedulingV1().PriorityClasses().Get(ctx, pod.Spec.PriorityClassName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Priority == nil || *got.Spec.Priority != pc.Value {
		t.Errorf("the pod's priority %v, want %s's %d", got.Spec.Priority, pc.Name, pc.Value)
	}
}

// varRef is a $(NAME) reference, which kubelet expands in args from the
// container's environment.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestDeployRingnetdArgs: the DaemonSet's command line, expanded as
// kubelet would with the ConfigMap's values, is one this ringnetd accepts:
// every flag exists and every value parses. ringnetd then stops where a
// node would continue, finding no device with the node address.
func TestDeployRingnetdArgs(t *testing.T) {
	if bins.Ringnetd == "" {
		t.Skip("needs root: TestMain builds ringnetd only then")
	}
	m := loadManifests(t)
	d := m.container(t, "ringnetd")
	const hostIP = "192.0.2.1" // TEST-NET-1: on no device here
	env := map[string]string{}
	for _, e := range d.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env[e.Name] = "node-1"
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP":
			env[e.Name] = hostIP
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = m.config.Data[e.ValueFrom.ConfigMapKeyRef.Key]
		default:
			t.Fatalf("env %s: a source this test does not expand: %+v", e.Name, e.ValueFrom)
		}
	}
	var args []string
	for _, a := range d.Args {
		args = append(args, varRef.ReplaceAllStringFunc(a, func(ref string) string {
			name := varRef.FindStringSubmatch(ref)[1]
			v, ok := env[name]
			if !ok {
				t.Errorf("argument %q refers to $(%s), which the container's env does not define", a, name)
			}
			return v
		}))
	}
	if len(d.Command) != 1 || filepath.Base(d.Command[0]) != "ringnetd" {
		t.Fatalf("command %q: want ringnetd", d.Command)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.Ringnetd, args...).CombinedOutput()
	t.Logf("ringnetd %s\n%s", strings.Join(args, " "), out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("ringnetd: %v, want exit status 1 (no device with the node address)", err)
	}
	for _, bad := range []string{"flag provided but not defined", "invalid value", "invalid boolean", "Usage:"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("ringnetd refused its command line (%q)", bad)
		}
	}
	if !bytes.Contains(out, []byte(hostIP)) {
		t.Errorf("ringnetd did not get as far as looking for the node address %s", hostIP)
	}
}

// perm is one verb on one resource, as RBAC and access reviews see it.
type perm struct {
	group, resource, subresource, verb string
}

func (p perm) String() string {
	r := p.resource
	if p.subresource != "" {
		r += "/" + p.subresource
	}
	return r + " " + p.verb
}

// permissions expands the role's rules into single verbs on single
// resources. It fails on what would make the role broader than a list of
// verbs: wildcards, resource names, non-resource URLs.
func permissions(t *testing.T, role *rbacv1.ClusterRole) []perm {
	t.Helper()
	var ps []perm
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Fatalf("rule %+v: resource names and non-resource URLs are not expected", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" || strings.HasSuffix(res, "/*") {
						t.Errorf("rule %+v has a wildcard", r)
					}
					resource, sub, _ := strings.Cut(res, "/")
					ps = append(ps, perm{g, resource, sub, v})
				}
			}
		}
	}
	return ps
}

// roleWithout is role with ps less drop, one rule per permission.
func roleWithout(role *rbacv1.ClusterRole, ps []perm, drop perm) *rbacv1.ClusterRole {
	out := role.DeepCopy()
	out.Rules = nil
	for _, p := range ps {
		if p == drop {
			continue
		}
		res := p.resource
		if p.subresource != "" {
			res += "/" + p.subresource
		}
		out.Rules = append(out.Rules, rbacv1.PolicyRule{APIGroups: []string{p.group}, Resources: []string{res}, Verbs: []string{p.verb}})
	}
	return out
}

// recorder notes the requests a client's transport saw answered, and
// which of them the API server refused (403).
type recorder struct {
	mu       sync.Mutex // guards the slices
	answered []string
	refused  []string
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		what := req.Method + " " + req.URL.Path
		if w := req.URL.Query().Get("watch"); w == "true" || w == "1" {
			what += " (watch)"
		}
		r.mu.Lock()
		r.answered = append(r.answered, what)
		if resp.StatusCode == http.StatusForbidden {
			r.refused = append(r.refused, what)
		}
		r.mu.Unlock()
		return resp, err
	})
}

// collectionAnswered reports whether a list or watch of nodes was answered.
func (r *recorder) collectionAnswered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.answered, func(s string) bool {
		return strings.HasPrefix(s, "GET /api/v1/nodes") && !strings.HasPrefix(s, "GET /api/v1/nodes/")
	})
}

func (r *recorder) refusals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refused)
}

// ringnetdClient is a clientset as the test's ringnetd user, made as
// k8s.Client makes ringnetd's (protobuf, user agent), its requests noted
// by rec.
func ringnetdClient(t *testing.T, api *kubetest.Cluster, rec *recorder) kubernetes.Interface {
	t.Helper()
	cfg := api.RESTConfig(api.RingnetdToken)
	cfg.UserAgent = "ringnetd"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if rec != nil {
		cfg.WrapTransport = rec.wrap
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// outcome is how one agent/k8s call went: an error, and the requests the
// API server refused while it ran.
type outcome struct {
	call    string
	err     error
	refused []string
}

func (o outcome) failed() bool { return o.err != nil || len(o.refused) > 0 }

func (o outcome) String() string {
	switch {
	case !o.failed():
		return o.call + ": ok"
	case len(o.refused) == 0:
		return fmt.Sprintf("%s: %v", o.call, o.err)
	}
	return fmt.Sprintf("%s: refused %q (%v)", o.call, slices.Compact(o.refused), o.err)
}

// probe runs what ringnetd does with the API, in its order, on a fresh
// node named after n, each call through its own client: k8s.PodCIDRs while
// the node gets its pod CIDRs (so that it must wait through a list and a
// watch), k8s.Register, a k8s.Source's Run that must publish a model, then
// publish again when a node is added, and its RunPolicy that must publish
// a namespace, a pod and a NetworkPolicy made before it started, then each
// kind again made after (through the watches), and its RunServices that
// must publish a Service with the endpoint of its EndpointSlice made before
// it started, then another made after. A call that meets a refusal (403)
// is stopped there. The objects go in t's cleanup.
func probe(t *testing.T, api *kubetest.Cluster, n int) (self string, _ []outcome) {
	t.Helper()
	admin := api.Client()
	nodes := admin.CoreV1().Nodes()
	ctx := context.Background()
	self, peer, late := fmt.Sprintf("node-%d", n), fmt.Sprintf("peer-%d", n), fmt.Sprintf("late-%d", n)
	cidr := func(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 100+n, i) }
	underlay := func(i int) string { return fmt.Sprintf("172.16.%d.%d/24", n, i) }
	mk := func(name string, cidrs []string, ann map[string]string) {
		t.Helper()
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
		if len(cidrs) > 0 {
			node.Spec.PodCIDR = cidrs[0]
		}
		if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	mk(self, nil, nil)
	mk(peer, []string{cidr(2)}, map[string]string{k8s.AnnotationUnderlay: underlay(2)})

	var out []outcome
	{
		rec := &recorder{}
		c := ringnetdClient(t, api, rec)
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		type result struct {
			cidrs []netip.Prefix
			err   error
		}
		done := make(chan result, 1)
		go func() {
			cidrs, err := k8s.PodCIDRs(cctx, c, self)
			done <- result{cidrs, err}
		}()
		var r result
		patched := false
	wait:
		for {
			select {
			case r = <-done:
				break wait
			case <-time.After(10 * time.Millisecond):
			}
			if len(rec.refusals()) > 0 {
				cancel()
			}
			if !patched && rec.collectionAnswered() {
				patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, cidr(1), cidr(1))
				if _, err := nodes.Patch(ctx, self, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
				patched = true
			}
		}
		cancel()
		if want := []netip.Prefix{netip.MustParsePrefix(cidr(1))}; r.err == nil && !slices.Equal(r.cidrs, want) {
			r.err = fmt.Errorf("pod CIDRs %v, want %v", r.cidrs, want)
		}
		out = append(out, outcome{"k8s.PodCIDRs", r.err, rec.refusals()})
	}
	{
		rec := &recorder{}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := k8s.Register(cctx, ringnetdClient(t, api, rec), self, k8s.Registration{
			Address: netip.MustParsePrefix(underlay(1)), VtepMAC: net.HardwareAddr{2, 0, 0, 0, byte(n), 1}, FlannelCompatible: true})
		cancel()
		out = append(out, outcome{"k8s.Register", err, rec.refusals()})
	}
	{
		rec := &recorder{}
		src := k8s.New(ringnetdClient(t, api, rec), k8s.Options{NodeName: self, Debounce: 10 * time.Millisecond})
		models := make(chan *cluster.Cluster, 64)
		stop := background(func(ctx context.Context) error {
			return src.Run(ctx, func(c *cluster.Cluster, _, _ time.Time) { offer(models, c) })
		})
		// has is a model holding node name.
		has := func(name string) func(*cluster.Cluster) bool {
			return func(c *cluster.Cluster) bool { _, ok := c.Node(name); return ok }
		}
		err := await(rec, models, "a model with node "+peer, has(peer))
		if err == nil {
			mk(late, []string{cidr(3)}, map[string]string{k8s.AnnotationUnderlay: underlay(3)})
			err = await(rec, models, "a model with node "+late, has(late))
		}
		out = append(out, outcome{"k8s.Source.Run", errors.Join(err, stop()), rec.refusals()})
	}
	{
		podIP := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(100 + n), 9, byte(i)}) }
		early := policyObjects(t, admin, fmt.Sprintf("policy-%d-early", n), self, podIP(1))
		rec := &recorder{}
		src := k8s.New(ringnetdClient(t, api, rec), k8s.Options{NodeName: self, Debounce: 10 * time.Millisecond})
		inputs := make(chan k8s.PolicyInput, 64)
		stop := background(func(ctx context.Context) error {
			return src.RunPolicy(ctx, func(in k8s.PolicyInput, _, _ time.Time) { offer(inputs, in) })
		})
		err := await(rec, inputs, "an input with "+early.String(), early.in)
		if err == nil {
			late := policyObjects(t, admin, fmt.Sprintf("policy-%d-late", n), self, podIP(2))
			err = await(rec, inputs, "an input with "+late.String(), late.in)
		}
		out = append(out, outcome{"k8s.Source.RunPolicy", errors.Join(err, stop()), rec.refusals()})
	}
	{
		endpoint := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(100 + n), 8, byte(i)}) }
		early := serviceObjects(t, admin, fmt.Sprintf("web-%d-early", n), endpoint(1))
		rec := &recorder{}
		src := k8s.New(ringnetdClient(t, api, rec), k8s.Options{NodeName: self, Debounce: 10 * time.Millisecond})
		lists := make(chan []cluster.Service, 64)
		stop := background(func(ctx context.Context) error {
			return src.RunServices(ctx, func(svcs []cluster.Service, _, _ time.Time) { offer(lists, svcs) })
		})
		err := await(rec, lists, "services with "+early.String(), early.in)
		if err == nil {
			late := serviceObjects(t, admin, fmt.Sprintf("web-%d-late", n), endpoint(2))
			err = await(rec, lists, "services with "+late.String(), late.in)
		}
		out = append(out, outcome{"k8s.Source.RunServices", errors.Join(err, stop()), rec.refusals()})
	}
	return self, out
}

// probedService is a Service and its EndpointSlice that serviceObjects
// made, in namespace default.
type probedService struct {
	name string
	ip   netip.Addr // the slice's one endpoint
}

func (p probedService) String() string {
	return fmt.Sprintf("service default/%s and its endpoint %v", p.name, p.ip)
}

// in reports whether svcs hold the service with its endpoint, ready.
func (p probedService) in(svcs []cluster.Service) bool {
	return slices.ContainsFunc(svcs, func(s cluster.Service) bool {
		return s.Namespace == metav1.NamespaceDefault && s.Name == p.name && len(s.ClusterIPs) == 1 &&
			slices.ContainsFunc(s.Endpoints, func(e cluster.ServiceEndpoint) bool { return e.Addr == p.ip && e.Ready })
	})
}

// serviceObjects makes, as the admin, Service default/name (its cluster
// IP allocated) and an EndpointSlice of it with one endpoint at ip. They
// go in t's cleanup.
func serviceObjects(t *testing.T, admin kubernetes.Interface, name string, ip netip.Addr) probedService {
	t.Helper()
	ctx := context.Background()
	svcs := admin.CoreV1().Services(metav1.NamespaceDefault)
	if _, err := svcs.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eps := admin.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	if _, err := eps.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		eps.Delete(ctx, name+"-1", metav1.DeleteOptions{})
		svcs.Delete(ctx, name, metav1.DeleteOptions{})
	})
	return probedService{name, ip}
}

// background runs f on its own goroutine until stop, which cancels f's
// context and returns what f returned (or that it did not return).
func background(f func(ctx context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- f(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-ran:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("did not return after cancel")
		}
	}
}

// offer sends v on ch, its only sender, making room by dropping the
// oldest value when it is full: the probe waits for the latest state.
func offer[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// await waits for a value on ch for which ok holds, and stops at the
// first refusal rec sees, or after 20s.
func await[T any](rec *recorder, ch <-chan T, what string, ok func(T) bool) error {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return nil
			}
		case <-time.After(10 * time.Millisecond):
			if r := rec.refusals(); len(r) > 0 {
				return errors.New("stopped at the refusal")
			}
		case <-timeout:
			return fmt.Errorf("no %s published in 20s", what)
		}
	}
}

// probed are the objects of one kind each that policyObjects made.
type probed struct {
	ns, pod, policy string // pod and policy in namespace ns
	ip              netip.Addr
}

func (p probed) String() string {
	return fmt.Sprintf("namespace %s, pod %s/%s (%v) and networkpolicy %s/%s", p.ns, p.ns, p.pod, p.ip, p.ns, p.policy)
}

// in reports whether in holds the objects, converted: the namespace with
// its label, the pod with its label, address and named port, the policy
// with its selector.
func (p probed) in(in k8s.PolicyInput) bool {
	return slices.ContainsFunc(in.Namespaces, func(ns netpol.Namespace) bool {
		return ns.Name == p.ns && ns.Labels["probe"] == p.ns
	}) && slices.ContainsFunc(in.Pods, func(pod netpol.Pod) bool {
		return pod.Namespace == p.ns && pod.Name == p.pod && pod.Labels["app"] == "web" && slices.Equal(pod.IPs, []netip.Addr{p.ip}) &&
			slices.Equal(pod.Ports, []netpol.NamedPort{{Name: "http", Proto: policy.TCP, Port: 80}})
	}) && slices.ContainsFunc(in.Policies, func(np netpol.NetworkPolicy) bool {
		return np.Namespace == p.ns && np.Name == p.policy && np.PodSelector.MatchLabels["app"] == "web"
	})
}

// policyObjects makes, as the admin, namespace ns, a running pod in it on
// node with address ip and a named port, and a NetworkPolicy selecting
// it. They go in t's cleanup.
func policyObjects(t *testing.T, admin kubernetes.Interface, ns, node string, ip netip.Addr) probed {
	t.Helper()
	ctx := context.Background()
	p := probed{ns: ns, pod: "web", policy: "allow-web", ip: ip}
	web := map[string]string{"app": "web"}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.ns, Labels: map[string]string{"probe": p.ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := admin.CoreV1().Pods(p.ns)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.pod, Labels: web},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "web", Image: "registry.k8s.io/pause:3.10", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.ip.String(), PodIPs: []corev1.PodIP{{IP: p.ip.String()}}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	nps := admin.NetworkingV1().NetworkPolicies(p.ns)
	if _, err := nps.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: p.policy},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: web}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		nps.Delete(ctx, p.policy, metav1.DeleteOptions{})
		pods.Delete(ctx, p.pod, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}) // no kubelet to confirm
		admin.CoreV1().Namespaces().Delete(ctx, p.ns, metav1.DeleteOptions{})
	})
	return p
}

func ptr[T any](v T) *T { return &v }

// waitRights waits until the ringnetd user may do each of ps but drop
// (none: perm{}), as the API server's authorizer answers now.
func waitRights(t *testing.T, api *kubetest.Cluster, ps []perm, drop perm) {
	t.Helper()
	c := ringnetdClient(t, api, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var wrong []string
		for _, p := range ps {
			r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: p.verb, Group: p.group, Resource: p.resource, Subresource: p.subresource}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed != (p != drop) {
				wrong = append(wrong, fmt.Sprintf("%s allowed=%v", p, r.Status.Allowed))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RBAC did not settle in 20s: %v", wrong)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeployRBAC: the ClusterRole, bound (by the test) to the kubetest
// user "ringnetd" beside the manifest's ServiceAccount, lets ringnetd's
// calls of agent/k8s do their work; it lets that user do nothing else
// asked here; and it is minimal: without any one of its verbs, one of the
// calls fails or the API server refuses one of its requests. The manifest's
// ServiceAccount gets exactly the role's rights.
func TestDeployRBAC(t *testing.T) {
	m := loadManifests(t)
	api := kubetest.StartT(t)
	admin := api.Client()
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts(m.sa.Namespace).Create(ctx, m.sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, m.role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := m.binding.DeepCopy()
	binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: kubetest.RingnetdUser})
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ps := permissions(t, m.role)
	waitRights(t, api, ps, perm{})

	t.Run("ServiceAccount", func(t *testing.T) {
		user := fmt.Sprintf("system:serviceaccount:%s:%s", m.sa.Namespace, m.sa.Name)
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + m.sa.Namespace, "system:authenticated"}
		allowed := func(p perm) bool {
			r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: p.verb, Group: p.group, Resource: p.resource, Subresource: p.subresource}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return r.Status.Allowed
		}
		for _, p := range ps {
			if !allowed(p) {
				t.Errorf("%s may not %s", user, p)
			}
		}
		for _, p := range []perm{
			{"", "secrets", "", "list"}, {"", "nodes", "", "delete"}, {"", "pods", "", "get"}, {"", "pods", "", "create"},
			{"", "services", "", "get"}, {"", "endpoints", "", "list"}, {"discovery.k8s.io", "endpointslices", "", "create"},
			{"networking.k8s.io", "networkpolicies", "", "create"},
		} {
			if allowed(p) {
				t.Errorf("%s may %s", user, p)
			}
		}
	})

	t.Run("works", func(t *testing.T) {
		self, outs := probe(t, api, 0)
		for _, o := range outs {
			t.Log(o)
			if o.failed() {
				t.Errorf("with the manifest's ClusterRole, %v", o)
			}
		}
		n, err := admin.CoreV1().Nodes().Get(ctx, self, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Annotations[k8s.AnnotationUnderlay] == "" || n.Annotations[k8s.FlannelBackendType] != "vxlan" {
			t.Errorf("after Register, annotations %v", n.Annotations)
		}
		if !slices.ContainsFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool {
			return c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionFalse && c.Reason == k8s.ConditionReason
		}) {
			t.Errorf("after Register, conditions %+v: want NetworkUnavailable False", n.Status.Conditions)
		}
	})

	t.Run("forbidden", func(t *testing.T) {
		c := ringnetdClient(t, api, nil)
		victim := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "victim"}}
		if _, err := admin.CoreV1().Nodes().Create(ctx, victim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			what string
			do   func() error
		}{
			{"list secrets in every namespace", func() error {
				_, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			}},
			{"list secrets in kube-system", func() error {
				_, err := c.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"get a pod (informers list and watch; nothing gets one)", func() error {
				_, err := c.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, "any", metav1.GetOptions{})
				return err
			}},
			{"delete a pod", func() error {
				return c.CoreV1().Pods(metav1.NamespaceSystem).Delete(ctx, "any", metav1.DeleteOptions{})
			}},
			{"get a service (informers list and watch)", func() error {
				_, err := c.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
				return err
			}},
			{"list Endpoints (the API before EndpointSlices)", func() error {
				_, err := c.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
				return err
			}},
			{"create a NetworkPolicy", func() error {
				_, err := c.NetworkingV1().NetworkPolicies(metav1.NamespaceDefault).Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{})
				return err
			}},
			{"delete a node", func() error { return c.CoreV1().Nodes().Delete(ctx, victim.Name, metav1.DeleteOptions{}) }},
			{"create a node", func() error {
				_, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{})
				return err
			}},
			{"update a node (all of it, not a patch)", func() error {
				n, err := admin.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				n.Spec.Unschedulable = true
				_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
				return err
			}},
			{"patch a node's status", func() error {
				_, err := c.CoreV1().Nodes().Patch(ctx, victim.Name, types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}, "status")
				return err
			}},
		} {
			if err := x.do(); !apierrors.IsForbidden(err) {
				t.Errorf("%s: %v, want forbidden", x.what, err)
			}
		}
		if _, err := admin.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("the node ringnetd was to delete: %v", err)
		}
	})

	for i, drop := range ps {
		t.Run("without "+drop.String(), func(t *testing.T) {
			cur, err := admin.RbacV1().ClusterRoles().Get(ctx, m.role.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			less := roleWithout(cur, ps, drop)
			if _, err := admin.RbacV1().ClusterRoles().Update(ctx, less, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitRights(t, api, ps, drop)
			_, outs := probe(t, api, i+1)
			failed := false
			for _, o := range outs {
				t.Log(o)
				failed = failed || o.failed()
			}
			if !failed {
				t.Errorf("without %s every call succeeded and no request was refused: the role grants more than ringnetd uses", drop)
			}
		})
	}
}

// TestDeployInstallCNI: the init container's installer puts the plugin and
// the ConfigMap's conflist where the DaemonSet mounts the node's
// directories, with their modes, leaving no temporary file; refuses a
// conflist whose chained plugins are missing, or whose first plugin is not
// ringnet, installing nothing; and replaces both on an upgrade.
func TestDeployInstallCNI(t *testing.T) {
	m := loadManifests(t)
	dir := t.TempDir()
	installer := filepath.Join(dir, "ringnet-install-cni")
	if out, err := exec.Command("go", "build", "-o", installer, "github.com/ringnet/ringnet/deploy/install-cni").CombinedOutput(); err != nil {
		t.Fatalf("build the installer: %v\n%s", err, out)
	}
	binDir, confDir, src := filepath.Join(dir, "opt/cni/bin"), filepath.Join(dir, "etc/cni/net.d"), filepath.Join(dir, "image")
	for _, d := range []string{binDir, confDir, src} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, data string, perm os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
	}
	conflist := filepath.Join(src, conflistKey)
	write(conflist, m.config.Data[conflistKey], 0o644)
	plugin := filepath.Join(src, "ringnet-cni")
	write(plugin, "plugin v1", 0o755)
	install := func() ([]byte, error) {
		return exec.Command(installer, "--plugin="+plugin, "--conflist="+conflist,
			"--cni-bin-dir="+binDir, "--cni-conf-dir="+confDir).CombinedOutput()
	}
	// ls lists a directory: name and mode of each file.
	ls := func(d string) map[string]os.FileMode {
		t.Helper()
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]os.FileMode{}
		for _, e := range es {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			got[e.Name()] = fi.Mode()
		}
		return got
	}

	out, err := install()
	if err == nil || !bytes.Contains(out, []byte(`"portmap"`)) {
		t.Errorf("without portmap in the plugin directory: %v, %s; want an error naming it", err, out)
	}
	if got := len(ls(binDir)) + len(ls(confDir)); got != 0 {
		t.Errorf("a refused install left %d files", got)
	}

	write(filepath.Join(binDir, "portmap"), "", 0o755)
	write(filepath.Join(binDir, "bandwidth"), "", 0o755)
	for _, version := range []string{"plugin v1", "plugin v2"} {
		write(plugin, version, 0o755)
		if out, err := install(); err != nil {
			t.Fatalf("install %s: %v\n%s", version, err, out)
		}
		if diff := cmp.Diff(map[string]os.FileMode{"ringnet": 0o755, "portmap": 0o755, "bandwidth": 0o755}, ls(binDir)); diff != "" {
			t.Errorf("%s: plugin directory (-want +got):\n%s", version, diff)
		}
		if diff := cmp.Diff(map[string]os.FileMode{conflistKey: 0o644}, ls(confDir)); diff != "" {
			t.Errorf("%s: configuration directory (-want +got):\n%s", version, diff)
		}
		for path, want := range map[string]string{filepath.Join(binDir, "ringnet"): version, filepath.Join(confDir, conflistKey): m.config.Data[conflistKey]} {
			if got, err := os.ReadFile(path); err != nil || string(got) != want {
				t.Errorf("%s: %s holds %q (%v), want %q", version, path, got, err, want)
			}
		}
	}

	write(conflist, `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "portmap", "capabilities": {"portMappings": true}}]}`, 0o644)
	if out, err := install(); err == nil || !bytes.Contains(out, []byte("first plugin")) {
		t.Errorf("a conflist without ringnet first: %v, %s; want an error", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(confDir, conflistKey)); string(got) != m.config.Data[conflistKey] {
		t.Errorf("a refused conflist replaced the installed one")
	}
}
