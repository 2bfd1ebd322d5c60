package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/k8s"
)

// importPageSize bounds the memory of the start-up list of Services.
const importPageSize = 500

// Importer runs once, when this replica starts leading: it builds the config
// model, then records every IP the served Services already hold (from their
// status) in the allocator, and only then lets allocation begin. So a restart
// or a leader change never moves an IP and never hands out one in use.
type Importer struct {
	// Reader reads the API server directly: the list must include every
	// write the previous leader made, which the cache may not have yet.
	Reader client.Reader
	Cache  client.Reader // namespace labels
	Allocs *Allocations
	Config *ConfigReconciler
	Class  string
	Log    *slog.Logger
}

// NeedLeaderElection makes the import part of leading.
func (i *Importer) NeedLeaderElection() bool { return true }

// Start imports and returns. Reading the API server is retried with a
// growing delay until it works: nothing may be allocated before.
func (i *Importer) Start(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := i.importOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		delay := min(time.Second<<min(attempt, 5), 30*time.Second)
		i.Log.Error("importing existing assignments failed; retrying", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (i *Importer) importOnce(ctx context.Context) error {
	begin := time.Now()
	if err := i.Config.Rebuild(ctx); err != nil {
		return fmt.Errorf("build config: %w", err)
	}
	svcs, err := i.list(ctx)
	if err != nil {
		return err
	}
	// When two Services claim one IP, the older one keeps it.
	sort.Slice(svcs, func(a, b int) bool {
		ta, tb := svcs[a].CreationTimestamp, svcs[b].CreationTimestamp
		if !ta.Equal(&tb) {
			return ta.Before(&tb)
		}
		return k8s.ServiceKey(&svcs[a]) < k8s.ServiceKey(&svcs[b])
	})
	kept, refused := 0, 0
	for n := range svcs {
		svc := &svcs[n]
		ips := k8s.IngressIPs(svc.Status.LoadBalancer)
		if ok, _ := serves(svc, i.Class); !ok || len(ips) == 0 {
			continue
		}
		req, err := requestFor(svc, namespaceLabels(ctx, i.Cache, svc.Namespace))
		if err == nil {
			err = i.Allocs.Import(req, ips)
		}
		if err != nil {
			// Its reconcile gives it a valid address and says why.
			refused++
			i.Log.Info("existing address not kept", "service", k8s.ServiceKey(svc), "ips", joinIPs(ips), "reason", err)
			continue
		}
		kept++
	}
	i.Allocs.MarkImported()
	i.Log.Info("imported existing assignments", "services", len(svcs), "kept", kept, "refused", refused, "took", time.Since(begin).Round(time.Millisecond).String())
	return nil
}

// list reads all Services from the API server, page by page.
func (i *Importer) list(ctx context.Context) ([]corev1.Service, error) {
	var out []corev1.Service
	opts := []client.ListOption{client.Limit(importPageSize)}
	for {
		var page corev1.ServiceList
		if err := i.Reader.List(ctx, &page, opts...); err != nil {
			return nil, fmt.Errorf("list Services: %w", err)
		}
		for n := range page.Items {
			// Only what the import reads, to keep the start-up peak small.
			s := &page.Items[n]
			s.ManagedFields = nil
			if k8s.IsLoadBalancer(s) {
				out = append(out, *s)
			}
		}
		if page.Continue == "" {
			return out, nil
		}
		opts = []client.ListOption{client.Limit(importPageSize), client.Continue(page.Continue)}
	}
}
