package announce

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/heraldlb/herald/speaker/arp"
	"github.com/heraldlb/herald/speaker/l2responder"
	"github.com/heraldlb/herald/speaker/ndp"
)

// protocol is how an address family is announced.
type protocol string

const (
	protoARP protocol = "arp" // IPv4
	protoNDP protocol = "ndp" // IPv6
)

func protocolOf(ip netip.Addr) protocol {
	if ip.Is4() {
		return protoARP
	}
	return protoNDP
}

// responder is what announce needs of an arp or ndp responder.
type responder interface {
	Set(owned []netip.Addr)
	Owns(ip netip.Addr) bool
	Gratuitous(ip netip.Addr) error
	Run(ctx context.Context) error
	Stats() l2responder.Stats
}

func newSystemResponder(p protocol, iface string, log *slog.Logger) responder {
	if p == protoARP {
		return arp.New(iface, log)
	}
	return ndp.New(iface, log)
}

// notRunning reports whether err only says the responder's socket is not
// open yet; it announces every owned IP itself once it is.
func notRunning(err error) bool { return errors.Is(err, l2responder.ErrNotRunning) }

// plus adds the counters of two responders (a stopped one's to its
// successor's) for the metrics.
func plus(a, b l2responder.Stats) l2responder.Stats {
	return l2responder.Stats{Answered: a.Answered + b.Answered, Gratuitous: a.Gratuitous + b.Gratuitous, Limited: a.Limited + b.Limited}
}

type workerKey struct {
	proto protocol
	iface string
}

// worker is one running responder and the IPs it owns.
type worker struct {
	r      responder
	ips    map[netip.Addr]bool
	cancel context.CancelFunc
}

// announced pairs a newly owned IP with the responder that announces it.
type announced struct {
	r  responder
	ip netip.Addr
}

// convergeLocked makes the responders answer for exactly placed, starts an
// announcement burst for every IP a responder newly owns, and returns the IPs
// whose interfaces changed.
func (l *Layer2) convergeLocked(placed map[netip.Addr][]string) []Status {
	want := map[workerKey][]netip.Addr{}
	for ip, names := range placed {
		for _, n := range names {
			k := workerKey{protocolOf(ip), n}
			want[k] = append(want[k], ip)
		}
	}
	for k, w := range l.workers {
		if _, ok := want[k]; !ok {
			l.stopWorkerLocked(k, w)
		}
	}
	var fresh []announced
	for k, ips := range want {
		w := l.workers[k]
		if w == nil {
			w = l.startWorkerLocked(k)
		}
		next := make(map[netip.Addr]bool, len(ips))
		added := false
		for _, ip := range ips {
			next[ip] = true
			if !w.ips[ip] {
				fresh = append(fresh, announced{w.r, ip})
				added = true
			}
		}
		if added || len(next) != len(w.ips) {
			w.r.Set(ips)
		}
		w.ips = next
	}
	if len(fresh) > 0 {
		l.startBurstLocked(fresh)
	}

	var changes []Status
	for ip, names := range placed {
		if prev, ok := l.placed[ip]; !ok || !slices.Equal(prev, names) {
			changes = append(changes, Status{IP: ip, Interfaces: slices.Clone(names)})
			if len(names) == 0 {
				l.log.Warn("no usable interface to announce on", "ip", ip)
			} else {
				l.log.Info("announcing", "ip", ip, "interfaces", names)
			}
		}
	}
	for ip := range l.placed {
		if _, ok := placed[ip]; !ok {
			changes = append(changes, Status{IP: ip})
			l.log.Info("stopped announcing", "ip", ip)
		}
	}
	l.placed = placed
	return changes
}

func (l *Layer2) startWorkerLocked(k workerKey) *worker {
	ctx, cancel := context.WithCancel(l.ctx)
	w := &worker{r: l.newResponder(k.proto, k.iface, l.log), ips: map[netip.Addr]bool{}, cancel: cancel}
	l.workers[k] = w
	l.wg.Add(1)
	go l.runWorker(ctx, k, w.r)
	return w
}

// stopWorkerLocked makes the responder answer nothing at once, then ends it.
func (l *Layer2) stopWorkerLocked(k workerKey, w *worker) {
	w.r.Set(nil)
	w.cancel()
	l.retired[k] = plus(l.retired[k], w.r.Stats())
	delete(l.workers, k)
}

// runWorker runs a responder until ctx ends, restarting it after failures
// (interface gone or renamed, say) with a backoff of 1 s doubling to 30 s.
func (l *Layer2) runWorker(ctx context.Context, k workerKey, r responder) {
	defer l.wg.Done()
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		started := time.Now()
		err := r.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > maxBackoff {
			backoff = time.Second
		}
		l.log.Error("responder failed, restarting", "protocol", k.proto, "interface", k.iface, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// startBurstLocked starts sendBurst for ips.
func (l *Layer2) startBurstLocked(ips []announced) {
	l.wg.Add(1)
	l.burstsStarted.Add(1)
	l.burstsRunning.Add(1)
	go l.sendBurst(l.ctx, ips)
}

// sendBurst announces each newly owned IP at every offset of the burst, as
// long as its responder still owns it.
func (l *Layer2) sendBurst(ctx context.Context, fresh []announced) {
	defer l.wg.Done()
	defer l.burstsRunning.Add(-1)
	start := time.Now()
	for _, off := range l.burst {
		if d := time.Until(start.Add(off)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		for _, a := range fresh {
			if !a.r.Owns(a.ip) {
				continue
			}
			if err := a.r.Gratuitous(a.ip); err != nil && !notRunning(err) {
				l.log.Warn("announcement failed", "ip", a.ip, "err", err)
			}
		}
	}
}
