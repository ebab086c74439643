// Package cni will hold the CNI plugin's logic (ADD/DEL/CHECK/STATUS/GC/
// VERSION) behind cmd/ringnet-cni. Not built yet: pods are set up with
// "ringnet pod add", which uses the same pod port setup (package podport).
package cni
