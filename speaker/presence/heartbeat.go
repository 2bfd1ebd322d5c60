package presence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Labels mark the speakers' Leases (the controller's leader election Lease
// lives in the same namespace).
var Labels = map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"}

// DefaultDuration is how long a Lease counts after its last renewal. It is
// what a two-node cluster waits before the survivor of a crash takes over
// (see docs/speaker.md), and it sets the API cost: one write per speaker
// every DefaultDuration/3.
const DefaultDuration = 30 * time.Second

// LeaseName is the name of node's Lease in herald-system.
func LeaseName(node string) string {
	const prefix, maxName = "speaker-", 253
	if len(prefix)+len(node) <= maxName {
		return prefix + node
	}
	sum := sha256.Sum256([]byte(node))
	return prefix + node[:maxName-len(prefix)-17] + "-" + hex.EncodeToString(sum[:8])
}

// HeartbeatOptions configure a Heartbeat. Client and Node are required.
type HeartbeatOptions struct {
	Client client.Client
	// Node names the Lease's holder; NodeUID, if set, makes the Node its
	// owner so that deleting the Node deletes it.
	Node    string
	NodeUID types.UID
	// Duration is the Lease's duration (default DefaultDuration); it is
	// renewed every third of it.
	Duration time.Duration
	// Healthy, if set, gates renewals: while it returns an error the Lease
	// is not renewed (a speaker whose memberlist member does not run is not
	// one the others should count on seeing).
	Healthy func() error
	Log     *slog.Logger
}

// Heartbeat keeps this speaker's Lease.
type Heartbeat struct {
	o HeartbeatOptions
}

// NewHeartbeat returns a Heartbeat; it does no I/O.
func NewHeartbeat(o HeartbeatOptions) (*Heartbeat, error) {
	if o.Client == nil || o.Node == "" {
		return nil, errors.New("presence: client and node are required")
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Heartbeat{o: o}, nil
}

// Duration is the Lease duration in effect.
func (h *Heartbeat) Duration() time.Duration { return h.o.Duration }

// Run renews the Lease every third of its duration (sooner after a failed
// write) until ctx ends. It never deletes it: call Release on a graceful stop.
func (h *Heartbeat) Run(ctx context.Context) error {
	every := h.o.Duration / 3
	var failing error
	for {
		err := h.renewOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil && (failing == nil || failing.Error() != err.Error()):
			h.o.Log.Warn("speaker Lease not renewed", "lease", v1beta1.Namespace+"/"+LeaseName(h.o.Node), "err", err)
		case err == nil && failing != nil:
			h.o.Log.Info("speaker Lease renewed again", "lease", v1beta1.Namespace+"/"+LeaseName(h.o.Node))
		}
		failing = err
		wait := every
		if err != nil {
			wait = min(every, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (h *Heartbeat) renewOnce(ctx context.Context) error {
	if h.o.Healthy != nil {
		if err := h.o.Healthy(); err != nil {
			return fmt.Errorf("not renewed while unhealthy: %w", err)
		}
	}
	now := metav1.NewMicroTime(time.Now())
	key := client.ObjectKey{Namespace: v1beta1.Namespace, Name: LeaseName(h.o.Node)}
	var l coordinationv1.Lease
	err := h.o.Client.Get(ctx, key, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: Labels},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(h.o.Node),
				LeaseDurationSeconds: ptr.To(int32(h.o.Duration / time.Second)),
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}
		if h.o.NodeUID != "" {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: h.o.Node, UID: h.o.NodeUID}}
		}
		if err := h.o.Client.Create(ctx, &l, client.FieldOwner(v1beta1.FieldManagerSpeaker)); err != nil {
			return fmt.Errorf("create Lease %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get Lease %s: %w", key, err)
	}
	l.Spec.HolderIdentity = ptr.To(h.o.Node)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(h.o.Duration / time.Second))
	l.Spec.RenewTime = &now
	if err := h.o.Client.Update(ctx, &l, client.FieldOwner(v1beta1.FieldManagerSpeaker)); err != nil {
		return fmt.Errorf("renew Lease %s: %w", key, err)
	}
	return nil
}

// Release deletes the Lease, so that the other speakers stop expecting
// this one at once (a graceful stop hands everything over first).
func (h *Heartbeat) Release(ctx context.Context) error {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: v1beta1.Namespace, Name: LeaseName(h.o.Node)}}
	if err := h.o.Client.Delete(ctx, l); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	return nil
}

// Holder returns the node a speaker Lease stands for ("" if none).
func Holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// RenewTime returns a Lease's last renewal (zero if never).
func RenewTime(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}
