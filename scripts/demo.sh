#!/usr/bin/env bash
# make demo: one node with three pods, all in network namespaces, and traffic
# between the pods carried by ringnetd's AF_XDP fast path in user space.
# Everything it creates is removed on exit, on error and on Ctrl-C.
set -euo pipefail
BIN=${1:-bin}
BIN=$(cd "$BIN" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces, XDP, AF_XDP)" >&2; exit 1; }

id=$$
NODE=rn-node-$id
PODS=(a b c)
declare -A IP4=([a]=10.244.0.10 [b]=10.244.0.11 [c]=10.244.0.12)
declare -A IP6=([a]=fd00::a [b]=fd00::b [c]=fd00::c)
declare -A MAC=([a]=02:00:00:00:00:0a [b]=02:00:00:00:00:0b [c]=02:00:00:00:00:0c)
work=$(mktemp -d)
rnd_pid=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_pod() { local p=$1; shift; ip netns exec "rn-$p-$id" "$@"; }

cleanup() {
  trap - EXIT INT TERM
  if [[ -n $rnd_pid ]] && kill -0 "$rnd_pid" 2>/dev/null; then
    kill -TERM "$rnd_pid"; wait "$rnd_pid" 2>/dev/null || true
  fi
  for p in "${PODS[@]}"; do ip netns del "rn-$p-$id" 2>/dev/null || true; done
  ip netns del "$NODE" 2>/dev/null || true
  rm -rf "$work"
  echo "demo: cleaned up (namespaces removed)"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

step "A node namespace ($NODE) with IP forwarding OFF: the kernel cannot route between pods"
ip netns add "$NODE"
ip netns exec "$NODE" ip link set lo up
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
# The node's own address (a real node has one on its uplink); pods reach it
# and the node reaches pods from it through the slow path.
NODE_IP=192.168.200.1
ip netns exec "$NODE" ip addr add "$NODE_IP/32" dev lo

step "Three pods, set up the way the CNI plugin does it (ringnet pod add)"
echo "pods:" > "$work/pods.yaml"
for p in "${PODS[@]}"; do
  ip netns add "rn-$p-$id"
  ip netns exec "$NODE" "$BIN/ringnet" pod add --netns "/run/netns/rn-$p-$id" --host-if "rn$p" \
    --ipv4 "${IP4[$p]}" --ipv6 "${IP6[$p]}" --mac "${MAC[$p]}" >/dev/null
  printf -- '- {name: %s, hostInterface: rn%s, mac: "%s", ipv4: %s, ipv6: "%s"}\n' \
    "$p" "$p" "${MAC[$p]}" "${IP4[$p]}" "${IP6[$p]}" >> "$work/pods.yaml"
  echo "pod $p: ${IP4[$p]} ${IP6[$p]}  (veth rn$p <-> eth0, default via 169.254.1.1 / fe80::1)"
done
in_pod a ip route | sed 's/^/  pod a route: /'

step "ringnetd: XDP + AF_XDP on each pod's host-side veth, forwarding in user space"
ip netns exec "$NODE" "$BIN/ringnetd" --pods "$work/pods.yaml" >"$work/ringnetd.out" 2>"$work/ringnetd.log" &
rnd_pid=$!
for _ in $(seq 100); do grep -q 'msg=forwarding' "$work/ringnetd.log" && break; sleep 0.1; done
grep -q 'msg=forwarding' "$work/ringnetd.log" || { cat "$work/ringnetd.log"; echo "demo: ringnetd did not start" >&2; exit 1; }
sed 's/^/  ringnetd: /' "$work/ringnetd.log"
ip netns exec "$NODE" ip -br link show type veth | sed 's/^/  node: /'
ip netns exec "$NODE" ip link show rna | grep -o 'prog/xdp.*' | sed 's/^/  rna: /'

step "ping pod a -> pod b (IPv4 and IPv6)"
in_pod a ping -c 3 -i 0.2 "${IP4[b]}" | tail -2
in_pod a ping -6 -c 3 -i 0.2 "${IP6[b]}" | tail -2

step "The node reaches its pods through the slow path (TAP ringnet0 into the fast path)"
ip netns exec "$NODE" ip route | grep ringnet0 | head -3 | sed 's/^/  node route: /'
ip netns exec "$NODE" ping -c 2 -i 0.2 "${IP4[a]}" | tail -2
echo "  and pod a reaches the node's address $NODE_IP:"
in_pod a ping -c 2 -i 0.2 "$NODE_IP" | tail -2

step "UDP stream pod a -> pod c (iperf3, 200 Mbit/s, 3 s)"
in_pod c iperf3 -s -1 -B "${IP4[c]}" >/dev/null & srv=$!
sleep 0.3
in_pod a iperf3 -u -b 200M -t 3 -c "${IP4[c]}" | grep -E 'receiver'
wait $srv || true

step "TCP transfer pod b -> pod c (iperf3, 3 s)"
in_pod c iperf3 -s -1 -B "${IP4[c]}" >/dev/null & srv=$!
sleep 0.3
in_pod b iperf3 -t 3 -c "${IP4[c]}" | grep -E 'sender|receiver'
wait $srv || true

step "What went through the fast path (ringnetd counters, SIGUSR1)"
kill -USR1 "$rnd_pid"; sleep 0.3
awk '/^counters/{block=""} {block=block $0 "\n"} END{printf "%s", block}' "$work/ringnetd.out" | sed 's/^/  /'
echo "  node ip_forward = $(ip netns exec "$NODE" sysctl -n net.ipv4.ip_forward) (so every frame above was carried by ringnetd)"

step "Shutdown: SIGTERM detaches XDP and closes the sockets"
kill -TERM "$rnd_pid"; wait "$rnd_pid" || true; rnd_pid=
if ip netns exec "$NODE" ip link show rna | grep -q xdp; then echo "  XDP still attached!"; exit 1; fi
echo "  no XDP program left on the pod veths"
in_pod a ping -c 1 -W 1 "${IP4[b]}" >/dev/null 2>&1 && { echo "  ping works without ringnetd?!"; exit 1; }
echo "  with ringnetd stopped, pod a can no longer reach pod b"
