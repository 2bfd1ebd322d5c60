// Package bgp is the node's BGP speaker and the only package that imports
// gobgp. It is declarative: Set(Desired) names the peers and, per peer, the
// prefixes with their attributes; Run converges an in-process gobgp server
// to the latest Desired by difference and keeps Status, events and metrics.
//
// How per-peer paths work: every peer gets its own VRF inside the single
// gobgp server and its neighbor is bound to that VRF, so gobgp sends a
// neighbor exactly the paths of its VRF, with the attributes they carry.
// Adding, changing or withdrawing a path for one peer is one AddPath or
// DeletePath on that VRF: no export policies, no soft resets, and work
// proportional to the change. The VRFs' route distinguishers and targets
// never leave the process (no session negotiates a VPN family). A single
// server keeps gobgp's native BFD usable for every peer (BFD listens on
// one UDP port per process).
//
// Next hops: a path of the session's own family carries the session's local
// address (gobgp fills it in). A path of the other family carries
// Peer.NextHopIPv6/IPv4 if set, else this node's address of that family on
// the interface that holds the session's local address, learnt when the
// session first comes up; for IPv6 with no such address, the IPv4-mapped
// form ::ffff:a.b.c.d of the local address.
//
// The node dials its peers, retrying every ConnectTime (5 s unless set);
// gobgp listens (Desired.ListenPort) only while a passive peer asks for it
// (passive.go). Peers on an interface use IPv6 link-local addresses, found
// in the neighbor table for BGP unnumbered (linklocal.go); a dynamic
// external AS is checked before any path is sent (dynamicasn.go). Routes
// the peers send are rejected on import: the node announces, it does not
// route by BGP.
package bgp
