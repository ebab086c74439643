package hardening_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/cni"
	"github.com/ringnet/ringnet/internal/ringnode"
)

// Fuzz targets for two parsers the issue names that had none: the daemon
// socket's HTTP wire (agent/api's FuzzServer feeds bodies to the handler;
// this feeds whole connections to the server) and the CNI network config.
// They need no root and no ringnetd. The committed corpora are in
// testdata/fuzz.

// FuzzAPIWire writes arbitrary bytes to the API server's unix socket, as
// one connection: request line, headers, body, pipelined requests. The
// server must answer or close at once when the client stops writing, never
// panic, and never answer 500 (the handler behind it always succeeds).
func FuzzAPIWire(f *testing.F) {
	for _, s := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/allocate HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\n\r\n{\"containerID\":\"a\",\"ifName\":\"eth0\"}",
		"POST /v1/attach HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"co\r\n0\r\n\r\n",
		"POST /v1/gc HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"valid\":[]}GET /v1/peers HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/endpoints HTTP/1.0\r\n\r\n",
		"GET /v1/routes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /v1/stats HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		"GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/flows HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/policy HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/policy/endpoint?pod=default/web HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/policy/check?from=a&to=10.0.0.1&protocol=TCP&port=80 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n{",
		"GET /v1/../v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	sock := filepath.Join(f.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	srv := api.NewServer(okHandler{})
	var logs ringnode.LogBuffer
	srv.ErrorLog = log.New(&logs, "", 0)
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Close() })

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(in) // the server may close before it has read everything
		c.(*net.UnixConn).CloseWrite()
		out, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%q: the server neither answered nor closed within 5s of the end of the request", in)
		}
		if l := logs.String(); strings.Contains(l, "panic") {
			t.Fatalf("%q: the server panicked:\n%s", in, l)
		}
		r := bufio.NewReader(bytes.NewReader(out))
		for {
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				break // the end, or a response cut short by the close
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusInternalServerError {
				t.Fatalf("%q: answered %s", in, resp.Status)
			}
		}
	})
}

// okHandler answers every call with success.
type okHandler struct {
	api.Handler // nil: a method the API grows later panics until it is added here, and the fuzz target says so
}

func (okHandler) Allocate(_ context.Context, p api.Pod) (api.AllocateResponse, error) {
	return api.AllocateResponse{IPv4: "10.244.0.2", HostIfname: api.HostIfname(p.ContainerID, p.IfName), MTU: 1450, Queues: 1}, nil
}
func (okHandler) Attach(context.Context, api.AttachRequest) error { return nil }
func (okHandler) Release(context.Context, api.Pod) (api.ReleaseResponse, error) {
	return api.ReleaseResponse{Found: true}, nil
}
func (okHandler) Check(context.Context, api.Pod) (api.CheckResponse, error) {
	return api.CheckResponse{Attached: true}, nil
}
func (okHandler) Status(context.Context) (api.Status, error) { return api.Status{Ready: true}, nil }
func (okHandler) GC(_ context.Context, g api.GCRequest) (api.GCResponse, error) {
	return api.GCResponse{Released: g.Valid}, nil
}
func (okHandler) Endpoints(context.Context) (api.EndpointList, error) { return api.EndpointList{}, nil }
func (okHandler) Routes(context.Context) (api.RouteList, error)       { return api.RouteList{}, nil }
func (okHandler) Peers(context.Context) (api.PeerList, error)         { return api.PeerList{}, nil }
func (okHandler) Stats(context.Context) (api.Stats, error)            { return api.Stats{}, nil }
func (okHandler) Services(context.Context) (api.ServiceList, error)   { return api.ServiceList{}, nil }
func (okHandler) Flows(context.Context) (api.FlowList, error)         { return api.FlowList{}, nil }
func (okHandler) Policy(context.Context) (api.PolicyList, error)      { return api.PolicyList{}, nil }
func (okHandler) PolicyEndpoint(context.Context, string) (api.EndpointPolicy, error) {
	return api.EndpointPolicy{}, nil
}
func (okHandler) PolicyCheck(context.Context, api.PolicyCheckRequest) (api.PolicyVerdict, error) {
	return api.PolicyVerdict{}, nil
}

// FuzzCNIConfig feeds arbitrary network configs to the plugin's STATUS,
// the one command that only reads: the config is parsed and checked, and
// then ringnetd is asked whether it is ready. No ringnetd runs, so the
// answer must always be a CNI error, with a message, of one of the codes
// the plugin documents: cannot decode (6), invalid config (7) or not
// available (50). Anything else, or a panic, fails.
func FuzzCNIConfig(f *testing.F) {
	missing := filepath.Join(f.TempDir(), "no-daemon.sock")
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"ringnet","type":"ringnet","socket":"` + missing + `"}`,
		`{"cniVersion":"1.0.0","name":"ringnet","type":"ringnet","socket":"` + missing + `","timeout":"50ms","dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}}`,
		`{"cniVersion":"1.1.0","name":"ringnet","type":"ringnet","socket":"relative.sock"}`,
		`{"cniVersion":"1.1.0","name":"ringnet","type":"ringnet","socket":"` + missing + `","timeout":"-1s"}`,
		`{"cniVersion":"1.1.0","name":"ringnet","type":"ringnet","socket":"` + missing + `","ipam":{"type":"host-local"}}`,
		`{"cniVersion":"1.1.0","name":"ringnet","type":"ringnet","socket":"` + missing + `","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`,
		`{"cniVersion":"0.3.1","name":"ringnet","type":"ringnet","socket":"` + missing + `","prevResult":{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.244.0.2/32"}]},"runtimeConfig":{"portMappings":[]}}`,
		`{"socket":1}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, conf []byte) {
		err := cni.Status(&skel.CmdArgs{ContainerID: "fuzz", Netns: "/run/netns/none", IfName: "eth0", StdinData: conf})
		var e *types.Error
		if !errors.As(err, &e) {
			t.Fatalf("STATUS with %q and no ringnetd: %v (%T), want a CNI error", conf, err, err)
		}
		switch e.Code {
		case types.ErrDecodingFailure, types.ErrInvalidNetworkConfig, cni.ErrPluginNotAvailable:
		default:
			t.Fatalf("STATUS with %q: code %d (%v)", conf, e.Code, e)
		}
		if e.Msg == "" {
			t.Fatalf("STATUS with %q: code %d and no message", conf, e.Code)
		}
	})
}
