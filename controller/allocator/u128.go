package allocator

import (
	"math"
	"math/bits"
	"net/netip"
)

// u128 is an unsigned 128-bit integer: an IPv6 address, an IPv4 address (in lo),
// or an offset inside a range. Plain arithmetic keeps math/big off the hot path.
type u128 struct{ hi, lo uint64 }

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

func (x u128) isZero() bool { return x.hi == 0 && x.lo == 0 }

// add and sub wrap around, like uint64 arithmetic.
func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}
}

func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

func (x u128) inc() u128 { return x.add(u128{0, 1}) }
func (x u128) dec() u128 { return x.sub(u128{0, 1}) }

// int64 saturates at math.MaxInt64.
func (x u128) int64() int64 {
	if x.hi != 0 || x.lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(x.lo)
}

// addSat adds without wrapping: sums of pool sizes saturate at 2^128-1.
func (x u128) addSat(y u128) u128 {
	s := x.add(y)
	if s.less(x) {
		return u128{math.MaxUint64, math.MaxUint64}
	}
	return s
}

func fromUint64(v uint64) u128 { return u128{0, v} }

// addrBits returns an address as a number: IPv4 in the low 32 bits.
func addrBits(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[i+8])
	}
	return u128{hi, lo}
}

// bitsAddr is the inverse of addrBits for the given family.
func bitsAddr(f Family, x u128) netip.Addr {
	if f == IPv4 {
		v := uint32(x.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(x.hi >> (8 * (7 - i)))
		b[i+8] = byte(x.lo >> (8 * (7 - i)))
	}
	return netip.AddrFrom16(b)
}

// isBuggyIPv4 reports x.x.x.0 and x.x.x.255, which some old firmware mistakes
// for network or broadcast addresses whatever the prefix length.
func isBuggyIPv4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

// usableBelow counts the non-buggy IPv4 addresses in [0, x); x may be 2^32.
// Each /24 holds 254 of them (.1 to .254).
func usableBelow(x uint64) uint64 {
	low := x & 0xff
	n := (x >> 8) * 254
	switch low {
	case 0:
	case 255:
		n += 254
	default:
		n += low - 1
	}
	return n
}

// nthUsable is the inverse of usableBelow: the address of the n-th (from 0)
// non-buggy IPv4 address.
func nthUsable(n uint64) uint64 {
	return (n/254)<<8 + n%254 + 1
}
