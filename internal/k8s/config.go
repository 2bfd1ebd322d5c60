package k8s

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

// ReadConfig lists what config.Build reads: the Herald config objects and
// the Secrets in herald-system. Nodes are left to the caller, who knows
// them in the form it keeps (labels only, for both binaries).
func ReadConfig(ctx context.Context, r client.Reader) (config.Input, error) {
	var (
		in      config.Input
		pools   v1beta1.IPPoolList
		l2      v1beta1.L2AdvertisementList
		bgp     v1beta1.BGPAdvertisementList
		peers   v1beta1.BGPPeerList
		bfd     v1beta1.BFDProfileList
		secrets corev1.SecretList
	)
	for _, l := range []struct {
		list client.ObjectList
		opts []client.ListOption
	}{
		{&pools, nil}, {&l2, nil}, {&bgp, nil}, {&peers, nil}, {&bfd, nil},
		{&secrets, []client.ListOption{client.InNamespace(v1beta1.Namespace)}},
	} {
		if err := r.List(ctx, l.list, l.opts...); err != nil {
			return in, fmt.Errorf("list %T: %w", l.list, err)
		}
	}
	in.Pools, in.L2Advertisements, in.BGPAdvertisements = pools.Items, l2.Items, bgp.Items
	in.Peers, in.BFDProfiles, in.Secrets = peers.Items, bfd.Items, secrets.Items
	return in, nil
}
