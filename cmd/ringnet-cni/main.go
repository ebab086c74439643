// Command ringnet-cni is ringnet's CNI plugin. Install it as "ringnet" in
// the runtime's CNI plugin directory (e.g. /opt/cni/bin/ringnet); it talks to
// ringnetd over its unix socket. See package cni and deploy/10-ringnet.conflist.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/ringnet/ringnet/cni"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs, cni.Versions, "ringnet: AF_XDP user-space pod networking (talks to ringnetd)")
}
