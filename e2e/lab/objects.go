package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/poll"
)

// Create creates objs in order. One that exists already is left as it is:
// the base configuration of a suite is created once per lab, and a test
// run again (-count) finds its objects from the run before.
func (h *Herald) Create(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := h.API.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("lab: create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// Update reads obj (by its key), applies change and writes it back,
// retrying on conflicts until ctx ends.
func Update[T client.Object](ctx context.Context, c client.Client, obj T, change func(T)) error {
	return poll.Until(ctx, 100*time.Millisecond, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return c.Update(ctx, obj)
	})
}

// SpeakerStatuses reads every node's SpeakerStatus, by node name.
func (h *Herald) SpeakerStatuses(ctx context.Context) (map[string]v1beta1.SpeakerStatusStatus, error) {
	var list v1beta1.SpeakerStatusList
	if err := h.API.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("lab: SpeakerStatuses: %w", err)
	}
	out := map[string]v1beta1.SpeakerStatusStatus{}
	for _, s := range list.Items {
		out[s.Name] = s.Status
	}
	return out, nil
}

// BGPPeer is a BGPPeer for every node with the lab's short timers: 3 s
// keepalive, 9 s hold time, and a 1 s connect retry instead of gobgp's 120 s.
func BGPPeer(name string, addr netip.Addr, myASN, peerASN int64) *v1beta1.BGPPeer {
	d := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	return &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{
		MyASN: myASN, PeerASN: ptr.To(peerASN), PeerAddress: addr.String(),
		HoldTime: d(9 * time.Second), KeepaliveTime: d(3 * time.Second), ConnectTime: d(time.Second),
	}}
}

// Event finds an Event with reason about the object called name in
// namespace ns ("" for a cluster-scoped object: its Events go to
// "default") whose note contains text, and says what it saw otherwise.
func (h *Herald) Event(ctx context.Context, ns, name, reason, text string) error {
	if ns == "" {
		ns = "default"
	}
	var list eventsv1.EventList
	if err := h.API.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("lab: Events: %w", err)
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
			return nil
		}
		if e.Regarding.Name == name {
			seen = append(seen, e.Reason+": "+e.Note)
		}
	}
	return fmt.Errorf("no %s Event about %s saying %q; its Events: %q", reason, name, text, seen)
}
