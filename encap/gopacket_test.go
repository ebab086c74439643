package encap

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// outerSummary is what gopacket says about an outer frame.
type outerSummary struct {
	EthSrc, EthDst string
	EtherType      layers.EthernetType
	Version, IHL   uint8
	TOS            uint8
	Length         uint16
	ID             uint16
	Flags          layers.IPv4Flag
	FragOffset     uint16
	TTL            uint8
	Protocol       layers.IPProtocol
	Src, Dst       string
	ChecksumValid  bool
}

// summarizeOuter decodes the outer Ethernet and IPv4 headers with gopacket
// and checks the IPv4 header checksum by having gopacket compute it again.
func summarizeOuter(t *testing.T, p gopacket.Packet) outerSummary {
	t.Helper()
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4) // the first, outer one
	if eth == nil || ip == nil {
		t.Fatalf("gopacket found no Ethernet or IPv4 layer in %v", p)
	}
	// Serializing a copy with ComputeChecksums sets its Checksum field to
	// the correct value.
	again := *ip
	again.Options = nil
	sb := gopacket.NewSerializeBuffer()
	if err := again.SerializeTo(sb, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return outerSummary{
		EthSrc: eth.SrcMAC.String(), EthDst: eth.DstMAC.String(), EtherType: eth.EthernetType,
		Version: ip.Version, IHL: ip.IHL, TOS: ip.TOS, Length: ip.Length, ID: ip.Id,
		Flags: ip.Flags, FragOffset: ip.FragOffset, TTL: ip.TTL, Protocol: ip.Protocol,
		Src: ip.SrcIP.String(), Dst: ip.DstIP.String(), ChecksumValid: again.Checksum == ip.Checksum,
	}
}

func wantOuter(proto layers.IPProtocol, length, id uint16) outerSummary {
	return outerSummary{
		EthSrc: net.HardwareAddr(macA[:]).String(), EthDst: net.HardwareAddr(macB[:]).String(), EtherType: layers.EthernetTypeIPv4,
		Version: 4, IHL: 5, TOS: 0, Length: length, ID: id, Flags: layers.IPv4DontFragment, FragOffset: 0, TTL: 64,
		Protocol: proto, Src: "192.168.1.10", Dst: "192.168.1.20", ChecksumValid: true,
	}
}

// TestGopacketVXLAN decodes what Encap builds with gopacket: Ethernet, IPv4
// and UDP from the frame, then VXLAN and the inner Ethernet frame from the
// UDP payload.
func TestGopacketVXLAN(t *testing.T) {
	type udpVXLAN struct {
		SrcPortInRange bool
		DstPort        layers.UDPPort
		Length         uint16
		Checksum       uint16
		ValidIDFlag    bool
		VNI            uint32
		GBP            bool
		Inner          []byte
	}
	for _, v := range []VXLAN{flannel, {VNI: 0xabcdef, Port: IANAPort}} {
		for _, in := range innerFrames(t) {
			t.Run(in.name, func(t *testing.T) {
				frame := vxlanFrame(t, v, outerAB(), in.frame, 0x4242)
				p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
				n := len(in.frame)
				if diff := cmp.Diff(wantOuter(layers.IPProtocolUDP, uint16(n+36), 0x4242), summarizeOuter(t, p)); diff != "" {
					t.Errorf("outer headers (-want +got):\n%s", diff)
				}
				udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if udp == nil {
					t.Fatalf("gopacket found no UDP layer")
				}
				vp := gopacket.NewPacket(udp.Payload, layers.LayerTypeVXLAN, gopacket.Default)
				vx, _ := vp.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if vx == nil {
					t.Fatalf("gopacket found no VXLAN header in the UDP payload: %v", vp)
				}
				got := udpVXLAN{
					SrcPortInRange: udp.SrcPort >= 49152, DstPort: udp.DstPort, Length: udp.Length, Checksum: udp.Checksum,
					ValidIDFlag: vx.ValidIDFlag, VNI: vx.VNI, GBP: vx.GBPExtension, Inner: vx.Payload,
				}
				want := udpVXLAN{
					SrcPortInRange: true, DstPort: layers.UDPPort(v.Port), Length: uint16(n + 16), Checksum: 0,
					ValidIDFlag: true, VNI: v.VNI, GBP: false, Inner: in.frame,
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("UDP and VXLAN (-want +got):\n%s", diff)
				}
				if ie, _ := vp.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ie == nil || ie.SrcMAC.String() != podMACA.String() {
					t.Errorf("gopacket did not find the inner Ethernet header behind VXLAN")
				}
			})
		}
	}
}

// TestGopacketIPIP decodes what EncapIPIP builds with gopacket: Ethernet and
// IPv4, then the inner IPv4 or IPv6 packet, which must be the original.
func TestGopacketIPIP(t *testing.T) {
	for _, in := range innerFrames(t) {
		if !isIP(in.frame) {
			continue
		}
		t.Run(in.name, func(t *testing.T) {
			frame := ipipFrame(t, outerAB(), in.frame, 77)
			p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
			proto, innerType := layers.IPProtocolIPv4, layers.LayerTypeIPv4
			if in.frame[12] == 0x86 {
				proto, innerType = layers.IPProtocolIPv6, layers.LayerTypeIPv6
			}
			n := len(in.frame)
			if diff := cmp.Diff(wantOuter(proto, uint16(n+6), 77), summarizeOuter(t, p)); diff != "" {
				t.Errorf("outer headers (-want +got):\n%s", diff)
			}
			// The inner IP layer: for IPv4 inside, gopacket's second IPv4
			// layer.
			var inner gopacket.Layer
			for _, l := range p.Layers()[2:] {
				if l.LayerType() == innerType {
					inner = l
					break
				}
			}
			if inner == nil {
				t.Fatalf("gopacket found no inner %v layer: %v", innerType, p)
			}
			// gopacket stops at the inner packet's own length; gopacket's
			// encoder padded the short inner frames to 60 bytes, and that
			// padding travels after the packet.
			got := cat(inner.LayerContents(), inner.LayerPayload())
			if want := ipPacket(in.frame); !bytes.Equal(got, want) {
				t.Errorf("inner packet\n got %x\nwant %x", got, want)
			}
		})
	}
}

// gopacketVXLAN builds the outer frame for inner with gopacket, with a
// computed (nonzero) UDP checksum, as Encap would build it otherwise.
func gopacketVXLAN(t *testing.T, v VXLAN, inner []byte, srcPort uint16, id uint16) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, Id: id, Flags: layers.IPv4DontFragment, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP(nodeA[:]), DstIP: net.IP(nodeB[:])}
	udp := &layers.UDP{SrcPort: layers.UDPPort(srcPort), DstPort: layers.UDPPort(v.Port)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t,
		&layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4},
		ip, udp, &layers.VXLAN{ValidIDFlag: true, VNI: v.VNI}, gopacket.Payload(inner))
}

// TestGopacketBuiltVXLAN goes the other way: frames that gopacket builds are
// byte for byte what Encap builds once the UDP checksum is zeroed, and
// Decap accepts them both with their computed UDP checksum and without.
func TestGopacketBuiltVXLAN(t *testing.T) {
	for _, in := range innerFrames(t) {
		t.Run(in.name, func(t *testing.T) {
			sport := uint16(49152 | FlowHash(in.frame)&0x3fff)
			ref := gopacketVXLAN(t, flannel, in.frame, sport, 0x0102)
			if ref[40] == 0 && ref[41] == 0 {
				t.Fatalf("gopacket wrote no UDP checksum")
			}
			inner, end, src, err := flannel.Decap(ref, nodeB)
			if err != OK || !bytes.Equal(ref[inner:end], in.frame) || src != nodeA {
				t.Errorf("Decap(gopacket frame with UDP checksum) = %d, %d, %v, %v; want the inner frame from %v", inner, end, src, err, nodeA)
			}
			ref[40], ref[41] = 0, 0
			if got := vxlanFrame(t, flannel, outerAB(), in.frame, 0x0102); !bytes.Equal(got, ref) {
				t.Errorf("Encap and gopacket differ\nEncap    %x\ngopacket %x", got, ref)
			}
		})
	}
}

// ipPacket returns the IP packet in an untagged Ethernet frame, by the
// packet's own length field, without Ethernet padding.
func ipPacket(frame []byte) []byte {
	ip := frame[14:]
	if ip[0]>>4 == 4 {
		return ip[:int(ip[2])<<8|int(ip[3])]
	}
	return ip[:40+(int(ip[4])<<8|int(ip[5]))]
}
