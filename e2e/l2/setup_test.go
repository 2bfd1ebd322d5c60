package l2

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/e2e/labtest"
	"github.com/heraldlb/herald/internal/poll"
)

// env is the shared lab with Herald running in it.
type env struct {
	*lab.Herald
}

var shared labtest.Shared[*env]

// The pools every test can use; tests that need more make their own.
const (
	poolL2  = "l2" // 198.51.100.10-99, 2001:db8:100::10-99, announced everywhere
	rangeV4 = "198.51.100.10-198.51.100.99"
	rangeV6 = "2001:db8:100::10-2001:db8:100::99"
)

// herald returns the lab with the controller, a speaker per node and the
// base configuration, started on first use. Speakers a previous test
// stopped or paused run again and every speaker sees the others.
func herald(t *testing.T) *env {
	t.Helper()
	e := shared.Get(t, startHerald)
	if err := e.ReviveSpeakers(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitMembers(ctx, len(e.Nodes)); err != nil {
		t.Fatal(err)
	}
	return e
}

func startHerald(l *lab.Lab) (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := labtest.StartHerald(l)
	if err != nil {
		return nil, err
	}
	e := &env{Herald: h}
	if err := e.Create(ctx,
		&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: poolL2}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{rangeV4, rangeV6}}},
		&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: poolL2}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{poolL2}}}},
	); err != nil {
		return nil, err
	}
	return e, e.WaitMembers(ctx, len(l.Nodes))
}

// get sends a request to ip from the LAN client, retrying while
// kube-proxy catches up, and returns the node that answered.
func (e *env) get(ctx context.Context, ip string) (node string, err error) {
	rep, err := e.Client.GetEventually(ctx, lab.URL(ip, 80))
	return rep.Node, err
}

// answeredByOwner waits until exactly one node announces ip (want, unless
// want is empty) and the client's requests reach it through that node,
// and returns the node. Until the client's neighbor entry for ip expires,
// it may still send to a node that owned the same address for an earlier
// Service.
func (e *env) answeredByOwner(ctx context.Context, ip, want string) (owner string, err error) {
	err = poll.Until(ctx, 50*time.Millisecond, func() error {
		o, err := e.Owners(ctx, ip)
		if err != nil {
			return err
		}
		if len(o) != 1 || (want != "" && o[0] != want) {
			return fmt.Errorf("%s announced by %v, want one node %s", ip, o, want)
		}
		owner = o[0]
		rep, err := e.Client.Get(ctx, lab.URL(ip, 80))
		if err == nil && rep.Node != owner {
			err = fmt.Errorf("answered through %s, owner is %s", rep.Node, owner)
		}
		return err
	})
	return owner, err
}
