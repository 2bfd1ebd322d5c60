// Package reconcile is the speaker's shell around the pure cores: it
// watches Services, EndpointSlices, Nodes and Herald's config objects,
// elects each Layer 2 address's owner among the live members, drives the
// ARP/NDP announcers and the BGP router, hands addresses over, and reports
// Events, conditions and status.
package reconcile
