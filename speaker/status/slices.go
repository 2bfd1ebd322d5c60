package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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

// sliceWriter keeps this node's AnnouncementSlices equal to what the
// speaker announces, writing only the slices whose content changed, and,
// on the janitor node, deletes the slices of speakers memberlist no
// longer shows (their node announces nothing any more). Every round is
// level-based: a write that failed is tried again at the next one.
type sliceWriter struct {
	c       client.Client
	node    string
	nodeUID types.UID
	log     *slog.Logger
	// resync is how often this node's slices are listed again (metadata
	// only), so that one deleted behind its back (a janitor that took it
	// for gone, a user) is written again.
	resync time.Duration

	loaded     bool
	lastResync time.Time
	lastWrite  time.Time                          // of this node's slices (not the janitor's deletes)
	place      map[string]int                     // Service key -> slice index
	written    map[int]*v1beta1.AnnouncementSlice // as last written or read
	version    uint64                             // the View whose Services are written
	current    bool                               // written holds version

	// cleaned is the memberlist view of the last clean-up (nil: none yet,
	// or this node is not the janitor).
	cleaned []string

	// writes and deletes count API writes of this node's slices; swept
	// counts the slices of gone speakers it deleted.
	writes, deletes, swept int
}

func newSliceWriter(c client.Client, node string, uid types.UID, resync time.Duration, log *slog.Logger) *sliceWriter {
	return &sliceWriter{c: c, node: node, nodeUID: uid, resync: resync, log: log, place: map[string]int{}, written: map[int]*v1beta1.AnnouncementSlice{}}
}

// sync writes what v says, then cleans up after gone speakers.
func (w *sliceWriter) sync(ctx context.Context, v svcstatus.View) error {
	if err := w.refresh(ctx); err != nil {
		return err
	}
	var errs []error
	if !w.current || v.Version != w.version {
		if err := w.apply(ctx, v.Services); err != nil {
			errs = append(errs, err)
		} else {
			w.version, w.current = v.Version, true
		}
	}
	errs = append(errs, w.sweep(ctx, v))
	return errors.Join(errs...)
}

// refresh reads this node's slices: all of them once (a restarted speaker
// keeps its Services where they are, so a restart writes nothing that did
// not change), then every resync interval their metadata, to notice one
// that was deleted or changed by someone else.
func (w *sliceWriter) refresh(ctx context.Context) error {
	if w.loaded && time.Since(w.lastResync) < w.resync {
		return nil
	}
	mine := client.MatchingLabels{v1beta1.LabelNode: w.node}
	if !w.loaded {
		var list v1beta1.AnnouncementSliceList
		if err := w.c.List(ctx, &list, mine); err != nil {
			return fmt.Errorf("status: list this node's AnnouncementSlices: %w", err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			idx := svcstatus.SliceIndex(w.node, s.Name)
			if idx < 0 {
				w.written[w.strayIndex()] = s // not a name this node writes: it goes
				continue
			}
			w.written[idx] = s
			for _, svc := range s.Services {
				w.place[svc.Service] = idx
			}
		}
		w.loaded, w.lastResync, w.current = true, time.Now(), false
		return nil
	}
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1beta1.GroupVersion.WithKind("AnnouncementSliceList"))
	if err := w.c.List(ctx, &list, mine); err != nil {
		return fmt.Errorf("status: list this node's AnnouncementSlices: %w", err)
	}
	w.lastResync = time.Now()
	listed := map[string]bool{}
	for _, m := range list.Items {
		listed[m.Name] = true
	}
	for i, s := range w.written {
		if !listed[s.Name] {
			w.log.Info("an AnnouncementSlice was deleted by someone else; writing it again", "slice", s.Name)
			delete(w.written, i)
			w.current = false
		}
	}
	for _, m := range list.Items {
		i := svcstatus.SliceIndex(w.node, m.Name)
		if i < 0 {
			i = w.strayIndex()
		}
		if cur := w.written[i]; cur == nil || cur.Name != m.Name || cur.ResourceVersion != m.ResourceVersion {
			// Written by someone else: what it says is unknown, so it
			// is written over (or deleted if not needed).
			w.written[i] = &v1beta1.AnnouncementSlice{ObjectMeta: m.ObjectMeta}
			w.current = false
		}
	}
	return nil
}

// strayIndex is a negative index for a slice that has no index of its own.
func (w *sliceWriter) strayIndex() int {
	i := -1
	for w.written[i] != nil {
		i--
	}
	return i
}

// inFlight is how many slices are written or deleted at once: under load
// one request takes 100-500 ms, and a takeover may write ten slices.
const inFlight = 8

// change is one slice to write (want) or to delete (want nil).
type change struct {
	i    int
	cur  *v1beta1.AnnouncementSlice // as last written or read, nil if none
	want *v1beta1.AnnouncementSlice
	// outcome
	gone bool // cur had been deleted behind this writer's back
	err  error
}

// apply places the Services in slices and writes the slices that changed,
// deleting those no longer needed, several at a time.
func (w *sliceWriter) apply(ctx context.Context, services map[string]v1beta1.ServiceAnnouncement) error {
	w.place = svcstatus.Place(w.place, slices.Collect(maps.Keys(services)), v1beta1.MaxServicesPerSlice)
	groups := svcstatus.Group(w.place)
	var changes []*change
	for _, i := range slices.Sorted(maps.Keys(groups)) {
		list := make([]v1beta1.ServiceAnnouncement, len(groups[i]))
		for j, key := range groups[i] {
			list[j] = services[key]
		}
		want := svcstatus.Slice(w.node, i, list)
		if w.nodeUID != "" {
			want.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: w.node, UID: w.nodeUID}}
		}
		if cur := w.written[i]; cur == nil || !sameSlice(cur, &want) {
			changes = append(changes, &change{i: i, cur: cur, want: &want})
		}
	}
	for _, i := range slices.Sorted(maps.Keys(w.written)) {
		if _, ok := groups[i]; !ok {
			changes = append(changes, &change{i: i, cur: w.written[i]})
		}
	}
	var g errgroup.Group
	g.SetLimit(inFlight)
	for _, c := range changes {
		g.Go(func() error {
			if c.want == nil {
				c.err = w.c.Delete(ctx, c.cur) // only this node writes its names
				if apierrors.IsNotFound(c.err) {
					c.err = nil
				}
			} else {
				c.gone, c.err = w.put(ctx, c.cur, c.want)
			}
			return nil
		})
	}
	_ = g.Wait()
	var errs []error
	for _, c := range changes {
		switch {
		case c.err != nil && c.want == nil:
			errs = append(errs, fmt.Errorf("status: delete AnnouncementSlice %s: %w", c.cur.Name, c.err))
		case c.err != nil:
			delete(w.written, c.i) // read again next time
			errs = append(errs, c.err)
		case c.want == nil:
			w.deletes++
			delete(w.written, c.i)
		default:
			w.writes++
			w.written[c.i] = c.want
		}
		if c.err == nil {
			w.lastWrite = time.Now()
		}
		if c.gone {
			// Deleted behind this writer's back (a janitor that took this
			// speaker for gone): look for the others at once.
			w.lastResync = time.Time{}
		}
	}
	return errors.Join(errs...)
}

func sameSlice(a, b *v1beta1.AnnouncementSlice) bool {
	return a.Node == b.Node && a.ServiceCount == b.ServiceCount && a.Layer2Count == b.Layer2Count && a.BGPCount == b.BGPCount &&
		maps.Equal(a.Labels, b.Labels) && equality.Semantic.DeepEqual(a.Services, b.Services)
}

// put writes want over cur (as last written or read; nil: none): an
// update, else a create; an object changed or deleted behind this
// writer's back is read again. gone says cur had been deleted.
func (w *sliceWriter) put(ctx context.Context, cur, want *v1beta1.AnnouncementSlice) (gone bool, err error) {
	owner := client.FieldOwner(v1beta1.FieldManagerSpeaker)
	create := true
	if cur != nil {
		want.ResourceVersion = cur.ResourceVersion
		err = w.c.Update(ctx, want, owner)
		create = apierrors.IsNotFound(err)
		gone = create
	}
	if create {
		want.ResourceVersion = ""
		err = w.c.Create(ctx, want, owner)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		var now v1beta1.AnnouncementSlice
		if err = w.c.Get(ctx, client.ObjectKeyFromObject(want), &now); err == nil {
			want.ResourceVersion = now.ResourceVersion
			err = w.c.Update(ctx, want, owner)
		}
	}
	if err != nil {
		return gone, fmt.Errorf("status: write AnnouncementSlice %s: %w", want.Name, err)
	}
	return gone, nil
}

// sweep deletes, on the janitor node, the slices of the speakers that
// memberlist does not show alive, once per change of what it shows.
// A slice written since it was listed (its speaker is back) stays.
func (w *sliceWriter) sweep(ctx context.Context, v svcstatus.View) error {
	if !svcstatus.Janitor(w.node, v.Candidates, v.Quorum) || !slices.Contains(v.Alive, w.node) {
		w.cleaned = nil
		return nil
	}
	alive := slices.Sorted(slices.Values(v.Alive))
	if w.cleaned != nil && slices.Equal(w.cleaned, alive) {
		return nil
	}
	sel, err := svcstatus.GoneSelector(alive)
	if err != nil {
		return err
	}
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1beta1.GroupVersion.WithKind("AnnouncementSliceList"))
	if err := w.c.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("status: list the AnnouncementSlices of gone speakers: %w", err)
	}
	errs := make([]error, len(list.Items))
	deleted := make([]bool, len(list.Items))
	var g errgroup.Group
	g.SetLimit(inFlight)
	for i := range list.Items {
		m := &list.Items[i]
		m.SetGroupVersionKind(v1beta1.GroupVersion.WithKind("AnnouncementSlice"))
		g.Go(func() error {
			err := w.c.Delete(ctx, m, client.Preconditions{UID: &m.UID, ResourceVersion: &m.ResourceVersion})
			switch {
			case err == nil:
				deleted[i] = true
				w.log.Info("deleted the AnnouncementSlice of a speaker that is gone", "slice", m.Name, "node", m.Labels[v1beta1.LabelNode])
			case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
				// gone already, or written again by its speaker
			default:
				errs[i] = fmt.Errorf("status: delete AnnouncementSlice %s: %w", m.Name, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, d := range deleted {
		if d {
			w.swept++
		}
	}
	if errors.Join(errs...) == nil {
		w.cleaned = alive
	}
	return errors.Join(errs...)
}
