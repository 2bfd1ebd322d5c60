// Package status writes this node's SpeakerStatus and, given an
// Announcements source, its AnnouncementSlices (slices.go): it creates the
// objects if missing (owned by the Node, so they go with it) and writes
// them when they changed, at most about once per MinInterval, so a burst
// of changes costs one write per object changed and an idle speaker writes
// nothing. Nothing the speaker does waits for these writes.
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/svcstatus"
)

// Options configure a Writer. Client, Node and Source are required.
type Options struct {
	// Client writes (and reads, uncached) the SpeakerStatus.
	Client client.Client
	// Node names the SpeakerStatus; NodeUID, if set, makes the Node its
	// owner so that deleting the Node deletes it.
	Node    string
	NodeUID types.UID
	// Source returns the status to write (UpdatedAt is set by the Writer).
	Source func() v1beta1.SpeakerStatusStatus
	// Announcements, if set, returns what this node announces per
	// Service: the Writer then keeps this node's AnnouncementSlices too,
	// and deletes those of speakers that are gone when this node is the
	// janitor (svcstatus.Janitor).
	Announcements func() svcstatus.View
	// ResyncInterval is how often this node's AnnouncementSlices are
	// listed again (metadata only) to find one deleted behind its back
	// (default 5 min).
	ResyncInterval time.Duration
	// Changed, if set, says the status may have changed.
	Changed <-chan struct{}
	// MinInterval is the least time between two writes (default 1 s);
	// PollInterval is how often Source is looked at without a Changed
	// signal, for BGP session states (default 1 s).
	MinInterval, PollInterval time.Duration
	Log                       *slog.Logger
}

// Writer writes one node's SpeakerStatus.
type Writer struct {
	o         Options
	obj       *v1beta1.SpeakerStatus // last written, nil before the first write
	written   v1beta1.SpeakerStatusStatus
	lastWrite time.Time
	slices    *sliceWriter // nil without Announcements
	// Writes counts the status writes, for tests and metrics.
	Writes int
}

// New returns a Writer; it does no I/O.
func New(o Options) (*Writer, error) {
	if o.Client == nil || o.Node == "" || o.Source == nil {
		return nil, errors.New("status: client, node and source are required")
	}
	if o.MinInterval <= 0 {
		o.MinInterval = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{o: o}
	if o.Announcements != nil {
		w.slices = newSliceWriter(o.Client, o.Node, o.NodeUID, o.ResyncInterval, o.Log)
	}
	return w, nil
}

// Run writes the status and the slices whenever they changed until ctx
// ends, each at most once per MinInterval: a change that comes sooner is
// written when the interval is over. The two are limited apart, so that a
// SpeakerStatus write never holds back the slices of a takeover.
func (w *Writer) Run(ctx context.Context) error {
	poll := time.NewTicker(w.o.PollInterval)
	defer poll.Stop()
	var held <-chan time.Time // when a target held back may write
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.o.Changed:
		case <-poll.C:
		case <-held:
		}
		held = nil
		if wait := w.round(ctx); wait > 0 {
			held = time.After(wait)
		}
	}
}

// round syncs each target whose last write is at least MinInterval ago and
// returns how long until the others may write (0: none is held back).
func (w *Writer) round(ctx context.Context) time.Duration {
	var wait time.Duration
	due := func(last time.Time) bool {
		d := w.o.MinInterval - time.Since(last)
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
		return d <= 0
	}
	// The two write different objects from different state: at once, so
	// that a slow SpeakerStatus write never delays the slices.
	var g errgroup.Group
	if due(w.lastWrite) {
		g.Go(func() error {
			if err := w.syncStatus(ctx); err != nil && ctx.Err() == nil {
				w.o.Log.Warn("writing the SpeakerStatus failed", "node", w.o.Node, "err", err)
			}
			return nil
		})
	}
	if w.slices != nil && due(w.slices.lastWrite) {
		g.Go(func() error {
			if err := w.slices.sync(ctx, w.o.Announcements()); err != nil && ctx.Err() == nil {
				w.o.Log.Warn("writing the AnnouncementSlices failed", "node", w.o.Node, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return wait
}

// Sync writes the current status and AnnouncementSlices now where they
// differ from the last ones written (the last write of a stopping speaker).
func (w *Writer) Sync(ctx context.Context) error {
	err := w.syncStatus(ctx)
	if w.slices != nil {
		err = errors.Join(err, w.slices.sync(ctx, w.o.Announcements()))
	}
	return err
}

// SliceWrites counts the AnnouncementSlice writes (creates and updates) and
// deletes of this node's slices, and the slices of gone speakers it deleted.
func (w *Writer) SliceWrites() (writes, deletes, swept int) {
	if w.slices == nil {
		return 0, 0, 0
	}
	return w.slices.writes, w.slices.deletes, w.slices.swept
}

func (w *Writer) syncStatus(ctx context.Context) error {
	st := w.o.Source()
	if w.obj != nil && equality.Semantic.DeepEqual(st, w.written) {
		return nil
	}
	err := w.write(ctx, st)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		w.obj = nil // changed or deleted behind our back: read it again
		err = w.write(ctx, st)
	}
	return err
}

func (w *Writer) write(ctx context.Context, st v1beta1.SpeakerStatusStatus) error {
	if w.obj == nil {
		obj, err := w.ensure(ctx)
		if err != nil {
			return err
		}
		w.obj = obj
	}
	obj := w.obj.DeepCopy()
	obj.Status = *st.DeepCopy()
	now := metav1.Now()
	obj.Status.UpdatedAt = &now
	if err := w.o.Client.Status().Update(ctx, obj, client.FieldOwner(v1beta1.FieldManagerSpeaker)); err != nil {
		return fmt.Errorf("status: update SpeakerStatus %s: %w", w.o.Node, err)
	}
	w.obj, w.written, w.lastWrite = obj, st, time.Now()
	w.Writes++
	return nil
}

// ensure reads the SpeakerStatus, creating it when missing.
func (w *Writer) ensure(ctx context.Context) (*v1beta1.SpeakerStatus, error) {
	var obj v1beta1.SpeakerStatus
	err := w.o.Client.Get(ctx, client.ObjectKey{Name: w.o.Node}, &obj)
	if err == nil {
		return &obj, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("status: get SpeakerStatus %s: %w", w.o.Node, err)
	}
	obj = v1beta1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{
		Name:   w.o.Node,
		Labels: map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"},
	}}
	if w.o.NodeUID != "" {
		obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: w.o.Node, UID: w.o.NodeUID}}
	}
	if err := w.o.Client.Create(ctx, &obj, client.FieldOwner(v1beta1.FieldManagerSpeaker)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return w.ensure(ctx)
		}
		return nil, fmt.Errorf("status: create SpeakerStatus %s: %w", w.o.Node, err)
	}
	return &obj, nil
}
