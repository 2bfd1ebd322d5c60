package allocator

import "net/netip"

// span is one contiguous block of a pool's addresses in one family, with the
// set of its addresses in use by anyone. Addresses are numbered by offset from
// the span's first usable address; with avoidBuggy (IPv4 only) the offsets skip
// x.x.x.0 and x.x.x.255, so those addresses are never candidates and never break
// runs of used addresses: finding the lowest free address costs the same in a
// nearly full /16 as in an empty one.
type span struct {
	family      Family
	first, last u128 // inclusive, as address bits
	avoidBuggy  bool
	base        uint64 // usableBelow(first) when avoidBuggy
	size        u128   // number of usable addresses, unless whole
	whole       bool   // the entire IPv6 space: 2^128 addresses do not fit in size
	used        runSet // offsets of addresses in use
	inUse       int64
}

func newSpan(f Family, first, last u128, avoidBuggy bool) *span {
	s := &span{family: f, first: first, last: last, avoidBuggy: avoidBuggy && f == IPv4}
	if s.avoidBuggy {
		s.base = usableBelow(first.lo)
		s.size = fromUint64(usableBelow(last.lo+1) - s.base)
	} else {
		s.size = last.sub(first).inc()
		s.whole = s.size.isZero()
	}
	return s
}

// contains reports whether the span may hand out a.
func (s *span) contains(a netip.Addr) bool {
	return s.covers(a) && (!s.avoidBuggy || !isBuggyIPv4(a))
}

// covers reports whether a lies between the span's bounds.
func (s *span) covers(a netip.Addr) bool {
	if familyOf(a) != s.family {
		return false
	}
	x := addrBits(a)
	return !x.less(s.first) && !s.last.less(x)
}

// offset numbers a contained address.
func (s *span) offset(a netip.Addr) u128 {
	x := addrBits(a)
	if s.avoidBuggy {
		return fromUint64(usableBelow(x.lo) - s.base)
	}
	return x.sub(s.first)
}

func (s *span) addrAt(off u128) netip.Addr {
	if s.avoidBuggy {
		return bitsAddr(s.family, fromUint64(nthUsable(s.base+off.lo)))
	}
	return bitsAddr(s.family, s.first.add(off))
}

// lowestFree returns the lowest usable address nobody holds.
func (s *span) lowestFree() (netip.Addr, bool) {
	off := s.used.lowestAbsent()
	if s.whole {
		if r := s.used.first(); r != nil && r.start.isZero() && r.end == s.last {
			return netip.Addr{}, false // all 2^128 in use: only in theory
		}
	} else if !off.less(s.size) {
		return netip.Addr{}, false
	}
	return s.addrAt(off), true
}

func (s *span) mark(a netip.Addr) {
	if s.used.insert(s.offset(a)) {
		s.inUse++
	}
}

func (s *span) unmark(a netip.Addr) {
	if s.used.remove(s.offset(a)) {
		s.inUse--
	}
}

// total is the number of usable addresses, saturated at 2^128-1.
func (s *span) total() u128 {
	if s.whole {
		return u128{^uint64(0), ^uint64(0)}
	}
	return s.size
}
