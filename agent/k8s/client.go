package k8s

import (
	"errors"
	"fmt"
	"net"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Interface is client-go's clientset interface, named here so that the
// daemon can hold one without importing Kubernetes packages itself.
type Interface = kubernetes.Interface

// Client returns a clientset for the cluster of the kubeconfig file at
// path or, when path is "", of the pod's service account (in-cluster
// config). apiServer, "host:port", replaces the API server's address
// (in-cluster, the kubernetes Service's cluster IP, which without
// kube-proxy nothing translates before ringnetd itself has read the
// Services). It speaks protobuf, which the informers' lists and watches of
// the built-in kinds favour.
func Client(kubeconfig, apiServer string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	var host, port string
	if apiServer != "" {
		if host, port, err = net.SplitHostPort(apiServer); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("API server address %q: want host:port, e.g. 192.168.50.10:6443", apiServer)
		}
	}
	if kubeconfig == "" {
		if apiServer != "" {
			// What InClusterConfig reads the address from.
			os.Setenv("KUBERNETES_SERVICE_HOST", host)
			os.Setenv("KUBERNETES_SERVICE_PORT", port)
		}
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, errors.New("not running in a pod (no KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT): give a kubeconfig file")
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	} else if apiServer != "" {
		cfg.Host = "https://" + net.JoinHostPort(host, port)
	}
	return clientFor(cfg)
}

// clientFor returns a clientset for cfg, which it makes ringnetd's: its
// user agent, and protobuf.
func clientFor(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg.UserAgent = "ringnetd"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	return c, nil
}
