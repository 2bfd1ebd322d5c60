package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
)

// gobgpLog adapts the project's logger for gobgp: gobgp's chatty Info
// records ("Add a peer configuration", ...) go out at Debug, and the
// reasons a session cannot connect, which gobgp logs only at Debug and
// otherwise hides, are handed to report so Status can say them.
type gobgpLog struct {
	inner  slog.Handler
	peer   netip.Addr // from the "Key" attribute of gobgp's per-peer loggers
	report func(peer netip.Addr, err string)
	// stopping silences the error gobgp logs when Stop follows our own StopBgp.
	stopping *atomic.Bool
}

func newGobgpLogger(inner slog.Handler, report func(netip.Addr, string), stopping *atomic.Bool) *slog.Logger {
	return slog.New(&gobgpLog{inner: inner, report: report, stopping: stopping})
}

func (h *gobgpLog) Enabled(ctx context.Context, level slog.Level) bool {
	// Per-peer records at Debug must reach Handle: they carry connect errors.
	return h.peer.IsValid() || h.inner.Enabled(ctx, demote(level))
}

func (h *gobgpLog) Handle(ctx context.Context, r slog.Record) error {
	if h.peer.IsValid() && r.Message == "failed to connect" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "Error" {
				h.report(h.peer, a.Value.String())
				return false
			}
			return true
		})
	}
	if h.stopping.Load() && r.Message == "failed to stop BGP server" {
		return nil
	}
	level := demote(r.Level)
	if !h.inner.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.inner.Handle(ctx, out)
}

func (h *gobgpLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "Key" {
			if addr, err := netip.ParseAddr(a.Value.String()); err == nil {
				c.peer = addr
			}
		}
	}
	return &c
}

func (h *gobgpLog) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// demote moves gobgp's Info to Debug; warnings and errors stay.
func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}
