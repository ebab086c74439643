//go:build !amd64 || race

package conntrack

const relaxedStores = false
