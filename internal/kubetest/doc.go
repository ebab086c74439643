// Package kubetest runs a real Kubernetes control plane for integration
// tests: one etcd and one kube-apiserver, on loopback, in a temporary
// directory, owned by the calling process.
//
//	test process
//	  |-- etcd            127.0.0.1:<client>  (data in <dir>/etcd, no fsync)
//	  `-- kube-apiserver  https://127.0.0.1:<port>
//	        TLS:   a CA and serving certificate made here (Cluster.CAData)
//	        authn: static tokens: admin (system:masters) and ringnetd (no
//	               group, no bindings: RBAC starts it with nothing but
//	               the discovery and self-review rights of every user,
//	               until GrantRingnetd gives it deploy/ringnet.yaml's
//	               ClusterRole, read from the tree)
//	        authz: RBAC
//
// There is no controller manager, scheduler or kubelet: objects are only
// stored. A Pod stays where it is put; its status changes when a test
// writes it (UpdateStatus), as a kubelet would.
//
// # Binaries
//
// etcd is Debian's etcd-server, found on PATH. Debian has no
// kube-apiserver: scripts/kube-apiserver.sh builds Version from the Go
// module proxy into <user cache dir>/ringnet/kube-apiserver-<Version>
// (APIServerPath) once, and installs etcd-server when etcd is missing.
// Start uses what is there and says to run the script when the apiserver is
// absent; StartT runs the script itself, and skips the test when that
// fails.
//
// # Lifetime
//
// Start returns once /readyz answers ok (a few seconds). Stop stops the
// apiserver, then etcd (the other order stalls the apiserver's shutdown),
// and removes the directory, logs included. Both children run in a process
// group of their own, which Stop signals as a whole, and are started from
// one locked OS thread that lives until Stop, with PR_SET_PDEATHSIG: if the
// test process dies without Stop, the kernel kills them.
//
// A Cluster is safe for concurrent use; its exported fields are set by
// Start and only read afterwards. Nothing here is on a hot path.
//
// StartT wraps Start and Stop for tests and benchmarks without importing
// package testing.
package kubetest
