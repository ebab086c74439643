package netpol

// BenchCluster is benchCluster for the benchmarks of a node's whole
// compile (node_bench_test.go), which are in package netpol_test because
// they import agent/cluster, which imports this package.
var BenchCluster = benchCluster
