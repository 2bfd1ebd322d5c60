package members

import (
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. memberlist calls the event ones
// with its own locks held: they only record and signal, never call back.
type delegate struct{ m *Members }

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	d.m.mu.Lock()
	delete(d.m.gone, n.Name)
	delete(d.m.suspects, n.Name)
	d.m.mu.Unlock()
	d.recordMeta(n)
	d.m.log.Info("member joined", "member", n.Name, "address", n.Address())
	d.m.notify()
}

// NotifyLeave implements memberlist.EventDelegate: the member failed or left.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.m.mu.Lock()
	d.m.gone[n.Name] = time.Now()
	d.m.departures.Add(1)
	delete(d.m.suspects, n.Name)
	delete(d.m.metas, n.Name)
	d.m.mu.Unlock()
	d.m.log.Info("member gone", "member", n.Name, "address", n.Address())
	d.m.notify()
}

// NotifyUpdate implements memberlist.EventDelegate: a member's metadata
// changed (its published payload or keys).
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	d.recordMeta(n)
	d.m.notify()
	wake(d.m.wakeKeys)
}

// NotifyPingComplete implements memberlist.PingDelegate: our probe of other
// got its ack, so we no longer suspect it.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	d.m.mu.Lock()
	delete(d.m.suspects, other.Name)
	d.m.mu.Unlock()
}

// AckPayload implements memberlist.PingDelegate.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyMsg implements memberlist.Delegate: a message sent with Send.
func (d *delegate) NotifyMsg(b []byte) {
	if d.m.onMessage != nil && len(b) > 0 {
		d.m.onMessage(slices.Clone(b)) // memberlist reuses b
	}
}

// NodeMeta implements memberlist.Delegate: this member's keys and payload.
func (d *delegate) NodeMeta(limit int) []byte {
	b := d.m.localMeta()
	if len(b) > limit {
		d.m.log.Error("node metadata over memberlist's limit: not published", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// GetBroadcasts implements memberlist.Delegate; nothing is broadcast.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; there is no shared state.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// recordMeta keeps a member's metadata. It must be read here, under
// memberlist's lock: the Node that Members() returns is memberlist's own
// and changes under our feet.
func (d *delegate) recordMeta(n *memberlist.Node) {
	meta, err := parseMeta(n.Meta)
	if err != nil {
		d.m.log.Warn("unreadable member metadata", "member", n.Name, "err", err)
	}
	d.m.mu.Lock()
	d.m.metas[n.Name] = meta
	d.m.addrs[n.Name] = &net.UDPAddr{IP: slices.Clone(n.Addr), Port: int(n.Port)}
	d.m.mu.Unlock()
}
