// Package slowpath will hand the host kernel what the fast path does not own
// (host-to-pod traffic, ICMP errors, fragments, IP options) through a TAP
// device, rate-limited per reason. Not built yet: until then the fast path
// drops those frames and counts them under their reason (package stats).
package slowpath
