// Package routers runs real routers, FRR 8.4 (zebra, bgpd, bfdd, staticd)
// and BIRD 2, inside network namespaces of an internal/netns Registry, for
// tests and for the lab.
//
// Every router keeps its configuration, PID files and control sockets in its
// own directory under the registry's state directory, so several routers run
// side by side without touching /etc/frr, /var/run/frr or /etc/bird of the
// host. Every daemon is started with Registry.Start, tracked by PID and ended
// by PID on Close (or by the registry's Close after a failure).
//
// Configuration comes from small Go structs (FRRConfig, BIRDConfig); the
// query helpers parse the routers' own views (FRR's JSON, birdc's text) into
// typed results, so tests assert what an operator would check on the router.
package routers
