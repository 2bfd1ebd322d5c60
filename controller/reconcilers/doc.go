// Package reconcilers is the controller's shell around the allocator: its
// reconcilers read Services and Herald's config objects from the cache,
// build the config model, assign IPs through Allocations, write the status
// of Services and config objects, and create the memberlist key.
package reconcilers
