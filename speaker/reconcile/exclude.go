package reconcile

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/advertise"
)

// DefaultGracefulShutdown is how long a node excluded from load balancing
// keeps its BGP routes, marked GRACEFUL_SHUTDOWN, before it withdraws them.
const DefaultGracefulShutdown = 10 * time.Second

// Reasons of the Excluded condition: why the node announces nothing.
const (
	ReasonInService          = "InService"
	ReasonDrain              = "Drain"
	ReasonExcludeLabel       = "ExcludeFromExternalLoadBalancers"
	ReasonNetworkUnavailable = "NetworkUnavailable"
)

// ConditionExcluded is true while the node announces nothing (see exclusion).
const ConditionExcluded = "Excluded"

// Event reasons on the Node when it leaves and returns to load balancing.
const (
	ReasonExcludedFromLB  = "ExcludedFromLoadBalancing"
	ReasonWithdrawnFromLB = "WithdrawnFromLoadBalancing"
	ReasonBackInLB        = "BackInLoadBalancing"
)

// excludedBecause says why a node announces nothing, from its Node: the
// condition reason of the first cause and every cause in words; "" when
// it is in service.
func excludedBecause(n nodeInfo) (reason, why string) {
	var whys []string
	if n.drain {
		reason = ReasonDrain
		whys = append(whys, v1beta1.AnnotationDrain+` is "true"`)
	}
	if _, ok := n.labels[corev1.LabelNodeExcludeBalancers]; ok {
		reason = or(reason, ReasonExcludeLabel)
		whys = append(whys, "labelled "+corev1.LabelNodeExcludeBalancers)
	}
	if n.networkUnavailable {
		reason = or(reason, ReasonNetworkUnavailable)
		whys = append(whys, "its NetworkUnavailable condition is true")
	}
	return reason, strings.Join(whys, ", ")
}

// exclusion is this node's state out of load balancing: why, and when its
// BGP routes, marked GRACEFUL_SHUTDOWN meanwhile, are withdrawn. Layer 2
// needs no time: the node stops answering and releases its addresses to
// their successors at once (speaker/takeover, rule 6).
type exclusion struct {
	reason, why string    // "" in service
	withdrawAt  time.Time // zero in service
}

// next is the exclusion after the node's own Node says reason and why at
// now. A node that just became excluded keeps its routes, marked, for
// gshut (none if it has no BGP peer, or when this is the first look: a
// speaker that starts excluded advertises nothing).
func (x exclusion) next(now time.Time, reason, why string, gshut time.Duration, first bool) exclusion {
	switch {
	case reason == "":
		return exclusion{}
	case x.reason != "":
		x.reason, x.why = reason, why
		return x
	case first:
		return exclusion{reason: reason, why: why, withdrawAt: now}
	}
	return exclusion{reason: reason, why: why, withdrawAt: now.Add(gshut)}
}

// phase is where the node is in withdrawing its BGP routes at now.
func (x exclusion) phase(now time.Time) advertise.Withdrawal {
	switch {
	case x.reason == "":
		return advertise.Advertising
	case now.Before(x.withdrawAt):
		return advertise.GracefulShutdown
	}
	return advertise.Withdrawn
}

// condition is the Excluded condition for x at now.
func (x exclusion) condition(now time.Time) metav1.Condition {
	c := metav1.Condition{Type: ConditionExcluded, Status: metav1.ConditionFalse, Reason: ReasonInService,
		Message: "announces what it is selected for"}
	if x.reason == "" {
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, x.reason
	switch x.phase(now) {
	case advertise.GracefulShutdown:
		c.Message = fmt.Sprintf("%s: Layer 2 addresses handed over; BGP routes carry GRACEFUL_SHUTDOWN until they are withdrawn at %s", x.why, x.withdrawAt.UTC().Format(time.RFC3339))
	default:
		c.Message = x.why + ": announces nothing (Layer 2 addresses handed over, BGP routes withdrawn)"
	}
	return c
}

// updateExclusion follows this node's own Node into or out of load
// balancing, and its BGP withdrawal through time. It reports whether the
// BGP phase changed (the whole BGP state must then be set again). The
// caller holds s.mu.
func (s *Speaker) updateExclusion(now time.Time) (bgpChanged bool) {
	reason, why := excludedBecause(s.nodes[s.opts.Node])
	gshut := s.opts.GracefulShutdown
	if len(s.bgpInUse) == 0 {
		gshut = 0 // no BGP peer: nothing to shut down gracefully
	}
	prev, first := s.excl, !s.exclSeen
	s.excl = prev.next(now, reason, why, gshut, first)
	s.exclSeen = true
	s.engine.SetExcluded(s.excl.why)
	node := s.nodeObject()
	switch {
	case prev.reason == "" && s.excl.reason != "":
		s.log.Info("excluded from load balancing: handing Layer 2 addresses over, withdrawing BGP routes", "why", s.excl.why, "withdrawAt", s.excl.withdrawAt)
		note := fmt.Sprintf("herald-speaker on %s takes the node out of load balancing (%s): it hands its Layer 2 addresses to the next nodes", s.opts.Node, s.excl.why)
		if d := s.excl.withdrawAt.Sub(now); d > 0 {
			note += fmt.Sprintf(" and marks its BGP routes GRACEFUL_SHUTDOWN, withdrawing them in %s", d.Round(time.Second))
		}
		s.opts.Events.Normal(node, ReasonExcludedFromLB, "Drain", note)
		s.notifyStatus()
	case prev.reason != "" && s.excl.reason == "":
		s.log.Info("back in load balancing")
		s.opts.Events.Normal(node, ReasonBackInLB, "Undrain", fmt.Sprintf("herald-speaker on %s announces again: the node is no longer excluded", s.opts.Node))
		s.notifyStatus()
	case prev.why != s.excl.why:
		s.notifyStatus()
	}
	phase := s.excl.phase(now)
	if phase == s.withdrawal {
		return false
	}
	if phase == advertise.Withdrawn && !first {
		s.log.Info("BGP routes withdrawn: this node announces nothing")
		s.opts.Events.Normal(node, ReasonWithdrawnFromLB, "Drain", fmt.Sprintf("herald-speaker on %s announces nothing now (%s): its Layer 2 addresses are handed over and its BGP routes withdrawn", s.opts.Node, s.excl.why))
	}
	s.withdrawal = phase
	s.setEngineNodes()
	s.notifyStatus()
	return true
}
