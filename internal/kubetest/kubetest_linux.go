package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Version is the kube-apiserver that scripts/kube-apiserver.sh builds; it
// matches the client-go in go.mod.
const Version = "v1.36.3"

// The users of the token file.
const (
	// AdminUser is in group system:masters: it may do anything.
	AdminUser = "admin"
	// RingnetdUser has no group and no bindings until a test gives it
	// some: it is what the agent runs as, for testing its RBAC.
	RingnetdUser = "ringnetd"
)

const (
	// ServiceCIDR is the cluster's --service-cluster-ip-range.
	ServiceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1" // the kubernetes service, first of ServiceCIDR
)

// ErrNotInstalled is wrapped by the error Start returns when
// kube-apiserver has not been built or etcd is not installed; running
// scripts/kube-apiserver.sh fixes both.
var ErrNotInstalled = errors.New("not installed")

// Options configure Start. The zero value is what tests want.
type Options struct {
	// APIServer is the kube-apiserver binary; "" means APIServerPath().
	APIServer string
	// Etcd is the etcd binary; "" means etcd on PATH.
	Etcd string
	// Dir is where the cluster's temporary directory is made; "" means
	// os.TempDir().
	Dir string
	// Args are more kube-apiserver flags, after the ones Start sets (a
	// flag given twice takes the last value).
	Args []string
	// Timeout bounds the start, until the apiserver is ready; 0 means
	// one minute.
	Timeout time.Duration
}

// Cluster is a running etcd and kube-apiserver. Its fields are set by
// Start and read-only afterwards.
type Cluster struct {
	// URL is the apiserver's address, https://127.0.0.1:<port>.
	URL string
	// CAData is the PEM certificate of the CA that signed the apiserver's
	// serving certificate (for 127.0.0.1, localhost and kubernetes.default.svc).
	CAData []byte
	// AdminToken is the bearer token of AdminUser (system:masters).
	AdminToken string
	// RingnetdToken is the bearer token of RingnetdUser (no rights).
	RingnetdToken string
	// EtcdURL is etcd's client address, http://127.0.0.1:<port>.
	EtcdURL string
	// Dir holds the certificates, keys, token file, etcd's data and the
	// logs (etcd.log, kube-apiserver.log). Stop removes it.
	Dir string
	// Startup is how long Start took: etcd and the apiserver from exec to
	// ready (about 2.5 s here).
	Startup time.Duration

	launcher        *launcher
	etcd, apiserver *proc
	client          kubernetes.Interface

	stopOnce sync.Once
	stopErr  error // written once, by stopOnce
}

// APIServerPath returns where scripts/kube-apiserver.sh puts the
// kube-apiserver binary: <user cache dir>/ringnet/kube-apiserver-<Version>.
func APIServerPath() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("kube-apiserver: no cache directory: %w", err)
	}
	return filepath.Join(cache, "ringnet", "kube-apiserver-"+Version, "kube-apiserver"), nil
}

// Start starts etcd and kube-apiserver on free loopback ports and returns
// when the apiserver is ready and has made the default and kube-system
// namespaces. Call Stop when done, also when the test fails.
func Start(opts Options) (*Cluster, error) {
	begin := time.Now()
	apiserverBin, etcdBin, err := binaries(opts)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	dir, err := os.MkdirTemp(opts.Dir, "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	c := &Cluster{Dir: dir, AdminToken: token(), RingnetdToken: token()}
	if err := c.start(apiserverBin, etcdBin, opts); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	c.Startup = time.Since(begin)
	return c, nil
}

func binaries(opts Options) (apiserver, etcd string, err error) {
	apiserver = opts.APIServer
	if apiserver == "" {
		if apiserver, err = APIServerPath(); err != nil {
			return "", "", err
		}
	}
	if st, err := os.Stat(apiserver); err != nil || !st.Mode().IsRegular() {
		return "", "", fmt.Errorf("kube-apiserver %s %w at %s: run scripts/kube-apiserver.sh "+
			"(builds it from the Go module proxy, about 6 minutes the first time)", Version, ErrNotInstalled, apiserver)
	}
	etcd = opts.Etcd
	if etcd == "" {
		etcd = "etcd"
	}
	if etcd, err = exec.LookPath(etcd); err != nil {
		return "", "", fmt.Errorf("etcd %w (%v): run scripts/kube-apiserver.sh (installs Debian's etcd-server)",
			ErrNotInstalled, err)
	}
	return apiserver, etcd, nil
}

func (c *Cluster) start(apiserverBin, etcdBin string, opts Options) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	clientPort, peerPort, securePort := ports[0], ports[1], ports[2]
	c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	c.URL = "https://127.0.0.1:" + strconv.Itoa(securePort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)

	pki, err := newPKI(c.Dir)
	if err != nil {
		return err
	}
	c.CAData = pki.caPEM
	tokens := filepath.Join(c.Dir, "tokens.csv")
	// token,user,uid,"group1,group2"
	csv := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n%s,%s,%s\n",
		c.AdminToken, AdminUser, AdminUser, c.RingnetdToken, RingnetdUser, RingnetdUser)
	if err := os.WriteFile(tokens, []byte(csv), 0o600); err != nil {
		return err
	}

	c.launcher = newLauncher()
	deadline := time.Now().Add(opts.Timeout)
	c.etcd, err = startProc(c.launcher, "etcd", etcdBin, []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + c.EtcdURL,
		"--advertise-client-urls=" + c.EtcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		"--unsafe-no-fsync",
		"--logger=zap",
	}, filepath.Join(c.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	if err := waitHTTP(c.etcd, http.DefaultClient, c.EtcdURL+"/health", "", `"health":"true"`, deadline); err != nil {
		return err
	}

	args := []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(securePort),
		"--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.serviceAccountPK,
		"--service-account-signing-key-file=" + pki.serviceAccountSK,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		// No controller manager makes the default service accounts.
		"--disable-admission-plugins=ServiceAccount",
		// The agent's DaemonSet is privileged.
		"--allow-privileged=true",
		"--profiling=false",
	}
	c.apiserver, err = startProc(c.launcher, "kube-apiserver", apiserverBin, append(args, opts.Args...),
		filepath.Join(c.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	cfg := c.RESTConfig(c.AdminToken)
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return fmt.Errorf("kube-apiserver transport: %w", err)
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	if err := waitHTTP(c.apiserver, hc, c.URL+"/readyz", c.AdminToken, "ok", deadline); err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	// /readyz does not wait for the controller that makes the system
	// namespaces; tests expect "default" at once.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem} {
		for {
			_, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err == nil {
				break
			}
			if !c.apiserver.running() || ctx.Err() != nil {
				return fmt.Errorf("namespace %s: %w%s", ns, err, c.apiserver.tail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// waitHTTP polls url until it answers 200 with a body containing want, p
// exits, or the deadline passes.
func waitHTTP(p *proc, hc *http.Client, url, token, want string, deadline time.Time) error {
	var last string
	for {
		if !p.running() {
			return fmt.Errorf("%s exited while starting: %v%s", p.name, p.err, p.tail())
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s: %s%s", p.name, url, last, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1. They
// are held open together so that they differ, then released for the
// children; another process could take one meanwhile, which is unlikely
// but would make Start fail with the child's "address already in use".
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RESTConfig returns a new client configuration for the apiserver with a
// bearer token (c.AdminToken, c.RingnetdToken or one a test added through
// Options.Args), verifying the server against c.CAData.
func (c *Cluster) RESTConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		// Tests create objects in bursts; client-go's default is 5/s.
		QPS:   100,
		Burst: 200,
	}
}

// Kubeconfig writes a kubeconfig file for the token into c.Dir and returns
// its path: for kubectl, or a daemon under test that takes --kubeconfig.
// It goes away with Stop.
func (c *Cluster) Kubeconfig(token string) (string, error) {
	user := "user"
	switch token {
	case c.AdminToken:
		user = AdminUser
	case c.RingnetdToken:
		user = RingnetdUser
	}
	f, err := os.CreateTemp(c.Dir, "kubeconfig-"+user+"-*")
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	path := f.Name()
	f.Close()
	cfg := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"kubetest": {Server: c.URL, CertificateAuthorityData: c.CAData}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{user: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{user: {Cluster: "kubetest", AuthInfo: user, Namespace: "default"}},
		CurrentContext: user,
	}
	if err := clientcmd.WriteToFile(cfg, path); err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return path, nil
}

// Client returns a clientset as AdminUser.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Stop stops the apiserver, then etcd, and removes c.Dir. It reports a
// child that died before it was asked to. Later calls return the first
// call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		// The apiserver first: without etcd it stalls for 40 s.
		for _, p := range []*proc{c.apiserver, c.etcd} {
			if p != nil {
				errs = append(errs, p.stop(15*time.Second))
			}
		}
		if c.launcher != nil {
			c.launcher.close()
		}
		errs = append(errs, os.RemoveAll(c.Dir))
		if err := errors.Join(errs...); err != nil {
			c.stopErr = fmt.Errorf("kubetest: stop: %w", err)
		}
	})
	return c.stopErr
}
