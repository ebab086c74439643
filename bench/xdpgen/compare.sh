#!/bin/bash
# Compares trafgen and bench/xdpgen sending the same 64-byte frame on one
# bare veth (namespace xg1, v0 -> namespace xg2, v1), each on CPU 0, three
# interleaved rounds, and prints what v1 received per second over 3 s of
# each 6 s run. As root, from the repository:
#
#   bash bench/xdpgen/compare.sh
#
# (docs/benchmarks.md, "The generator"). Needs trafgen (netsniff-ng) and
# python3 (to write the frame).
set -euo pipefail
bin=$(mktemp -d)
trap 'ip netns del xg1 2>/dev/null || true; ip netns del xg2 2>/dev/null || true; rm -rf "$bin"' EXIT
echo "build bench/xdpgen"
go build -o "$bin/xdpgen" ./bench/xdpgen
ip netns add xg1
ip netns add xg2
ip link add v0 netns xg1 type veth peer name v1 netns xg2
ip -n xg1 link set v0 up
ip -n xg2 link set v1 up
smac=$(ip netns exec xg1 cat /sys/class/net/v0/address)
dmac=$(ip netns exec xg2 cat /sys/class/net/v1/address)

# One 60-byte frame (64 on the wire): IPv4/UDP 10.99.0.1:9 -> 10.99.0.2:9,
# 18 bytes of payload, UDP checksum 0; raw for xdpgen, as bytes for trafgen.
python3 - "$smac" "$dmac" "$bin" <<'PY'
import struct, sys
smac, dmac, out = bytes.fromhex(sys.argv[1].replace(':', '')), bytes.fromhex(sys.argv[2].replace(':', '')), sys.argv[3]
ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 46, 0, 0x4000, 64, 17, 0, bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2])))
s = sum(struct.unpack('!10H', ip))
s = (s & 0xffff) + (s >> 16)
struct.pack_into('!H', ip, 10, ~((s & 0xffff) + (s >> 16)) & 0xffff)
frame = dmac + smac + b'\x08\x00' + bytes(ip) + struct.pack('!HHHH', 9, 9, 26, 0) + bytes(18)
open(out + '/frame', 'wb').write(frame)
open(out + '/frame.trafgen', 'w').write('{ ' + ', '.join('0x%02x' % b for b in frame) + ' }\n')
PY

rx() { ip netns exec xg2 cat /sys/class/net/v1/statistics/rx_packets; }
measure() { # name command...
  local name=$1
  shift
  "$@" >"$bin/$name.out" 2>&1 &
  local pid=$!
  sleep 2
  local a b
  a=$(rx)
  sleep 3
  b=$(rx)
  wait "$pid" 2>/dev/null || true
  printf '%-8s %8d pps received\n' "$name" $(((b - a) / 3))
}
for round in 1 2 3; do
  echo "round $round"
  measure trafgen timeout -s INT 6 ip netns exec xg1 taskset -c 0 trafgen --cpus 1 -q --no-sock-mem --notouch-irq -i "$bin/frame.trafgen" -o v0
  measure xdpgen ip netns exec xg1 taskset -c 0 "$bin/xdpgen" --dev v0 --frame "$bin/frame" --duration 6s
done
