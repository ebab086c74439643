package podport

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ethtool features interface (linux/ethtool.h): the names of a device's
// features (string set ETH_SS_FEATURES), then their state as bit blocks
// indexed like the names. Read and written with SIOCETHTOOL on any socket in
// the device's namespace.
//
// Our own because the library we used (safchain/ethtool) sizes every name
// buffer for 32768 names: each call allocated and zeroed 1 MiB, three calls
// per pod, which was 3 ms of a CNI ADD's 8 ms of CPU in the short-lived
// plugin. Here the buffers are as large as the device's feature count.
const (
	ethtoolGStrings  = 0x1b // ETHTOOL_GSTRINGS
	ethtoolGSsetInfo = 0x37 // ETHTOOL_GSSET_INFO
	ethtoolGFeatures = 0x3a // ETHTOOL_GFEATURES
	ethtoolSFeatures = 0x3b // ETHTOOL_SFEATURES
	ethSSFeatures    = 4    // ETH_SS_FEATURES
	ethGStringLen    = 32   // ETH_GSTRING_LEN
)

// ifreqData is struct ifreq with ifr_data: the argument of SIOCETHTOOL.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

type ethtoolDev struct {
	fd   int
	name string
}

// ioctl runs the ethtool command at the start of buf (a u32 cmd field).
func (e ethtoolDev) ioctl(buf []byte) error {
	ifr := ifreqData{data: unsafe.Pointer(&buf[0])}
	copy(ifr.name[:unix.IFNAMSIZ-1], e.name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}

// featureNames returns the device's feature names in bit order.
func (e ethtoolDev) featureNames() ([]string, error) {
	// struct ethtool_sset_info: cmd, reserved, u64 sset_mask, u32 data[1].
	info := make([]byte, 20)
	ne := binary.NativeEndian
	ne.PutUint32(info, ethtoolGSsetInfo)
	ne.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := e.ioctl(info); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
	}
	if ne.Uint64(info[8:]) == 0 {
		return nil, nil // the device has no feature names
	}
	n := int(ne.Uint32(info[16:]))
	// struct ethtool_gstrings: cmd, string_set, len, then len names.
	strs := make([]byte, 12+n*ethGStringLen)
	ne.PutUint32(strs, ethtoolGStrings)
	ne.PutUint32(strs[4:], ethSSFeatures)
	ne.PutUint32(strs[8:], uint32(n))
	if err := e.ioctl(strs); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
	}
	names := make([]string, min(n, int(ne.Uint32(strs[8:]))))
	for i := range names {
		b := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		names[i] = unix.ByteSliceToString(b)
	}
	return names, nil
}

// activeFeatures returns the active bit of each of n features.
func (e ethtoolDev) activeFeatures(n int) ([]bool, error) {
	// struct ethtool_gfeatures: cmd, size, then size blocks of
	// {available, requested, active, never_changed}.
	blocks := (n + 31) / 32
	buf := make([]byte, 8+blocks*16)
	ne := binary.NativeEndian
	ne.PutUint32(buf, ethtoolGFeatures)
	ne.PutUint32(buf[4:], uint32(blocks))
	if err := e.ioctl(buf); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GFEATURES: %w", err)
	}
	on := make([]bool, n)
	for i := range on {
		active := ne.Uint32(buf[8+i/32*16+8:])
		on[i] = active&(1<<(i%32)) != 0
	}
	return on, nil
}

// clearFeatures asks to switch off the features at the given bits.
func (e ethtoolDev) clearFeatures(n int, bits []int) error {
	// struct ethtool_sfeatures: cmd, size, then size blocks of {valid,
	// requested}; requested 0 under valid 1 switches a feature off.
	blocks := (n + 31) / 32
	buf := make([]byte, 8+blocks*8)
	ne := binary.NativeEndian
	ne.PutUint32(buf, ethtoolSFeatures)
	ne.PutUint32(buf[4:], uint32(blocks))
	for _, i := range bits {
		at := 8 + i/32*8
		ne.PutUint32(buf[at:], ne.Uint32(buf[at:])|1<<(i%32))
	}
	// A positive return (ETHTOOL_F_WISH, ...) says not everything took;
	// the caller reads the features back.
	if err := e.ioctl(buf); err != nil {
		return fmt.Errorf("ETHTOOL_SFEATURES: %w", err)
	}
	return nil
}

// disableTxOffloads switches off every transmit checksum and segmentation
// offload of ifname (isTxOffload) that is on, and checks they went off.
func disableTxOffloads(ifname string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	e := ethtoolDev{fd: fd, name: ifname}
	names, err := e.featureNames()
	if err != nil {
		return err
	}
	on, err := e.activeFeatures(len(names))
	if err != nil {
		return err
	}
	var off []int
	for i, name := range names {
		if on[i] && isTxOffload(name) {
			off = append(off, i)
		}
	}
	if len(off) == 0 {
		return nil
	}
	if err := e.clearFeatures(len(names), off); err != nil {
		return err
	}
	if on, err = e.activeFeatures(len(names)); err != nil {
		return err
	}
	for _, i := range off {
		if on[i] {
			return fmt.Errorf("%s is still on", names[i])
		}
	}
	return nil
}
