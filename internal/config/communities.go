package config

import (
	"fmt"
	"strconv"
	"strings"
)

// WellKnownCommunities maps the community names a BGPAdvertisement accepts
// to their values (RFC 1997, 3765, 7611, 7999, 8326, 9494).
var WellKnownCommunities = map[string]uint32{
	"graceful-shutdown":   0xFFFF0000,
	"accept-own":          0xFFFF0001,
	"llgr-stale":          0xFFFF0006,
	"no-llgr":             0xFFFF0007,
	"blackhole":           0xFFFF029A,
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
}

// ParseCommunity parses "65000:100" or a well-known name.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := WellKnownCommunities[s]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q must be AS:value (65000:100) or a well-known name", s)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: both parts must be numbers of 0-65535", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// ParseLargeCommunity parses "global:local1:local2".
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("large community %q must be global:local1:local2", s)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("large community %q: each part must be a number of 0-4294967295", s)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{Global: v[0], Local1: v[1], Local2: v[2]}, nil
}

// CommunityString formats a standard community as AS:value.
func CommunityString(c uint32) string {
	return fmt.Sprintf("%d:%d", c>>16, c&0xFFFF)
}
