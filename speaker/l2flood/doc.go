// Package l2flood holds only tests: the Layer 2 responders (speaker/arp,
// speaker/ndp) under a flood of requests from a host on the LAN, as
// go test measures them for docs/benchmarks.md. The flooding host is this
// test binary run again in the LAN client's namespace.
package l2flood
