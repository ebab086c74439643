#!/usr/bin/env bash
# capture.sh regenerates capture.pcap, the real traffic that
# TestGopacketCrossCheck decodes with both this package and gopacket.
#
# It needs root, iproute2, tcpdump, ethtool, iputils ping and iperf3. It makes
# two fresh network namespaces joined by a veth pair, captures on one end while it sends ARP, IPv6
# ND/MLD, ping and ping -6 (small and fragmented), UDP over IPv4 and IPv6
# (small and fragmented, answered by ICMP port unreachable) and a short TCP
# transfer over IPv4 and IPv6, then deletes the namespaces again.
#
# Offloads are off on the veth so that every frame on the wire is a real
# frame: no GSO super-packets, no partial (CHECKSUM_PARTIAL) L4 checksums.
# The test relies on that to check L4Checksum against the
# kernel's checksums.
#
# There is no VLAN traffic in it: the kernel here has no 802.1Q support
# (ip link add ... type vlan fails). The test tags copies of the captured
# frames itself to cover VLAN decoding against gopacket.
#
# Usage: sudo ./capture.sh [output.pcap]   (default: capture.pcap beside this script)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/capture.pcap}

for tool in ip tcpdump ethtool ping iperf3; do
	command -v "$tool" >/dev/null || { echo "capture.sh: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "capture.sh: must run as root" >&2; exit 1; }

A=rnpkt-a-$$
B=rnpkt-b-$$
tmp=$(mktemp -d)
tcpdump_pid=
iperf_pid=

cleanup() {
	[ -n "$iperf_pid" ] && kill "$iperf_pid" 2>/dev/null || true
	[ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip link add veth0 netns "$A" type veth peer name veth0 netns "$B"
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
	ip netns exec "$ns" ethtool -K veth0 tx off tso off gso off gro off rxvlan off txvlan off >/dev/null 2>&1 || true
	ip -n "$ns" link set veth0 up
done

# Capture from before the first address exists, so DAD and MLD are in it.
ip netns exec "$A" tcpdump -i veth0 -U -n -Z root -w "$tmp/capture.pcap" 2>"$tmp/tcpdump.log" &
tcpdump_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/tcpdump.log" && break; sleep 0.1; done

ip -n "$A" addr add 10.77.0.1/24 dev veth0
ip -n "$B" addr add 10.77.0.2/24 dev veth0
ip -n "$A" addr add fd77::1/64 dev veth0
ip -n "$B" addr add fd77::2/64 dev veth0
sleep 3 # DAD

# ARP and ICMP echo, IPv4, plain and fragmented.
ip netns exec "$A" ping -c 3 -i 0.2 10.77.0.2 >/dev/null
ip netns exec "$A" ping -c 2 -i 0.2 -s 2000 10.77.0.2 >/dev/null
# ND and ICMPv6 echo, plain and fragmented.
ip netns exec "$A" ping -6 -c 3 -i 0.2 fd77::2 >/dev/null
ip netns exec "$A" ping -6 -c 2 -i 0.2 -s 2000 fd77::2 >/dev/null

# UDP to a closed port: each datagram is answered by port unreachable.
ip netns exec "$A" bash -c '
	for i in 1 2 3; do echo "ringnet udp $i" >/dev/udp/10.77.0.2/5001; done
	head -c 3000 /dev/zero >/dev/udp/10.77.0.2/5002
	for i in 1 2 3; do echo "ringnet udp6 $i" >/dev/udp/fd77::2/5003; done
	head -c 3000 /dev/zero >/dev/udp/fd77::2/5004
'
sleep 0.5

# A short TCP transfer each way of addressing.
ip netns exec "$B" iperf3 -s -p 5201 >/dev/null 2>&1 &
iperf_pid=$!
sleep 1
ip netns exec "$A" iperf3 -c 10.77.0.2 -p 5201 -n 24K -l 1200 >/dev/null
ip netns exec "$A" iperf3 -6 -c fd77::2 -p 5201 -n 24K -l 1200 >/dev/null
kill "$iperf_pid"
wait "$iperf_pid" 2>/dev/null || true
iperf_pid=

# Neighbour entries go stale and are probed again; flush and ask once more
# so ARP and NS/NA also appear after the transfer.
ip -n "$A" neigh flush dev veth0
ip netns exec "$A" ping -c 1 10.77.0.2 >/dev/null
ip netns exec "$A" ping -6 -c 1 fd77::2 >/dev/null
sleep 0.5

kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=
cp "$tmp/capture.pcap" "$out"
echo "capture.sh: wrote $out ($(stat -c %s "$out") bytes)"
