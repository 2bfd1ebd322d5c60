package reconcilers

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/controller/allocator"
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
	claims, err := i.list(ctx)
	if err != nil {
		return err
	}
	// When two Services claim one IP, the older one keeps it.
	sort.Slice(claims, func(a, b int) bool {
		ta, tb := claims[a].created, claims[b].created
		if !ta.Equal(&tb) {
			return ta.Before(&tb)
		}
		return claims[a].req.Service < claims[b].req.Service
	})
	kept := 0
	for _, c := range claims {
		err := c.err
		if err == nil {
			err = i.Allocs.Import(c.req, c.ips)
		}
		if err != nil {
			// Its reconcile gives it a valid address and says why.
			i.Log.Info("existing address not kept", "service", c.req.Service, "ips", joinIPs(c.ips), "reason", err)
			continue
		}
		kept++
	}
	i.Allocs.MarkImported()
	i.Log.Info("imported existing assignments", "services", len(claims), "kept", kept, "refused", len(claims)-kept, "took", time.Since(begin).Round(time.Millisecond).String())
	return nil
}

// claim is what a served Service with addresses in its status holds.
type claim struct {
	created metav1.Time
	req     allocator.Request
	ips     []netip.Addr
	err     error // the Service's request cannot be read
}

// list reads the claims of all Services from the API server, page by page,
// keeping only what the import needs, so the start-up peak stays small.
func (i *Importer) list(ctx context.Context) ([]claim, error) {
	var out []claim
	nsLabels := map[string]map[string]string{}
	opts := []client.ListOption{client.Limit(importPageSize)}
	for {
		var page corev1.ServiceList
		if err := i.Reader.List(ctx, &page, opts...); err != nil {
			return nil, fmt.Errorf("list Services: %w", err)
		}
		for n := range page.Items {
			svc := &page.Items[n]
			ips := k8s.IngressIPs(svc.Status.LoadBalancer)
			if ok, _ := serves(svc, i.Class); !ok || len(ips) == 0 {
				continue
			}
			labels, seen := nsLabels[svc.Namespace]
			if !seen {
				var err error
				if labels, err = namespaceLabels(ctx, i.Cache, i.Reader, svc.Namespace); err != nil {
					return nil, err
				}
				nsLabels[svc.Namespace] = labels
			}
			req, err := requestFor(svc, labels)
			out = append(out, claim{created: svc.CreationTimestamp, req: req, ips: ips, err: err})
		}
		if page.Continue == "" {
			return out, nil
		}
		opts = []client.ListOption{client.Limit(importPageSize), client.Continue(page.Continue)}
	}
}
