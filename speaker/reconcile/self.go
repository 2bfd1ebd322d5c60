package reconcile

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/takeover"
)

// Event reasons about the speaker itself, on its Node.
const (
	ReasonMemberlistFailed = "MemberlistFailed"
	ReasonSpeakerIsolated  = "SpeakerIsolated"
	ReasonSpeakerRejoined  = "SpeakerRejoined"
)

func (s *Speaker) nodeObject() *corev1.Node {
	return &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: s.opts.Node, UID: s.opts.NodeUID},
	}
}

// reportSelf tells the user, with Events on this node, when its memberlist
// member cannot run and when it has seen too few speakers for a while (it
// then takes over nothing). The caller holds s.mu.
func (s *Speaker) reportSelf(now time.Time, d takeover.Decision) {
	mlErr := ""
	if err := s.opts.Members.Err(); err != nil {
		mlErr = err.Error()
	}
	if mlErr != s.memberlistErr {
		if mlErr != "" {
			s.opts.Events.Warning(s.nodeObject(), ReasonMemberlistFailed, "Start",
				fmt.Sprintf("herald-speaker on %s cannot run its memberlist member, so it announces no Layer 2 address: %s (retrying)", s.opts.Node, mlErr))
		}
		s.memberlistErr = mlErr
		s.notifyStatus()
	}
	// Not seeing a majority, or not heard by the others (settling that
	// lasts), both leave the node unable to take anything over.
	isolated := (!d.Quorum.OK || d.Settling) && mlErr == "" && len(d.Live) > 0
	switch {
	case isolated && s.isolatedSince.IsZero():
		s.isolatedSince = now
	case isolated && !s.isolatedReported && now.Sub(s.isolatedSince) >= s.opts.IsolatedEventAfter:
		s.isolatedReported = true
		why := d.Quorum.Why
		if d.Quorum.OK {
			why = settlingWhy(d.Waiting)
		}
		s.opts.Events.Warning(s.nodeObject(), ReasonSpeakerIsolated, "TakeOver",
			fmt.Sprintf("herald-speaker on %s: %s; it takes over no Layer 2 address meanwhile", s.opts.Node, why))
	case !isolated:
		if s.isolatedReported {
			s.opts.Events.Normal(s.nodeObject(), ReasonSpeakerRejoined, "TakeOver",
				fmt.Sprintf("herald-speaker on %s sees %d of the %d speakers it should see again", s.opts.Node, d.Quorum.Seen, d.Quorum.Expected))
		}
		s.isolatedSince, s.isolatedReported = time.Time{}, false
	}
}

// Conditions of a SpeakerStatus.
const (
	// ConditionReady: the speaker does its whole job (it may take over
	// Layer 2 addresses).
	ConditionReady = "Ready"
	// ConditionMemberlistKey: the memberlist Secret's key is in use.
	ConditionMemberlistKey = "MemberlistKey"
)

// setConditions updates the speaker's conditions from its state. The
// caller holds s.mu.
func (s *Speaker) setConditions() []metav1.Condition {
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready",
		Message: fmt.Sprintf("sees %d of the %d speakers it should see", s.decision.Quorum.Seen, s.decision.Quorum.Expected)}
	switch d := s.decision; {
	case s.memberlistErr != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "MemberlistFailed", s.memberlistErr
	case !s.running:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "Starting", "starting"
	case !d.Quorum.OK && strings.HasPrefix(d.Quorum.Why, "not a member"):
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "NotAMember", d.Quorum.Why
	case !d.Quorum.OK:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, string(v1beta1.L2SkipNoQuorum), d.Quorum.Why
	case d.Settling:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "Settling", settlingWhy(d.Waiting)
	case !d.TakeOver:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "Settling", "taking only what the other speakers release to it for a moment"
	}
	key := metav1.Condition{Type: ConditionMemberlistKey, Status: metav1.ConditionTrue, Reason: "InUse"}
	ks := s.opts.Members.Keys()
	switch {
	case s.keyProblem != "":
		key.Status, key.Reason, key.Message = metav1.ConditionFalse, "InvalidKey", s.keyProblem
	case ks.Rotating() && len(ks.WaitingFor) > 0:
		key.Reason, key.Message = "Rotating", fmt.Sprintf("rotating to key %s; waiting for %s to install it", ks.Target, strings.Join(ks.WaitingFor, ", "))
	case ks.Rotating():
		key.Reason, key.Message = "Rotating", "rotating to key "+ks.Target.String()
	default:
		key.Message = "gossip encrypted with key " + ks.Target.String()
	}
	for _, c := range []metav1.Condition{ready, key, s.excl.condition(time.Now())} {
		apimeta.SetStatusCondition(&s.conditions, c)
	}
	return s.conditions
}
