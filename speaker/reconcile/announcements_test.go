package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/members"
)

// slicesByNode reads every AnnouncementSlice: per node, per Service, the
// addresses as "ip protocol interfaces|peers".
func (h *harness) slicesByNode() (map[string]map[string][]string, error) {
	var list v1beta1.AnnouncementSliceList
	if err := h.c.List(context.Background(), &list); err != nil {
		return nil, err
	}
	out := map[string]map[string][]string{}
	for _, s := range list.Items {
		if out[s.Node] == nil {
			out[s.Node] = map[string][]string{}
		}
		for _, svc := range s.Services {
			for _, a := range svc.Addresses {
				out[s.Node][svc.Service] = append(out[s.Node][svc.Service], fmt.Sprintf("%s %s %v%v", a.IP, a.Protocol, a.Interfaces, a.Peers))
			}
		}
	}
	return out, nil
}

func (h *harness) wantSlices(what string, want map[string]map[string][]string) {
	h.t.Helper()
	h.eventually(what, func() error {
		got, err := h.slicesByNode()
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Errorf("slices (-want +got)\n%s", d)
		}
		return nil
	})
}

// The speaker's AnnouncementSlice says which Services it announces, how,
// where and to whom, follows a takeover, deletes the slice of a speaker
// that memberlist declared dead (n1 comes first by name: it is the
// janitor), and is deleted when the speaker stops.
func TestAnnouncementSlicesAgainstAPIServer(t *testing.T) {
	h := startHarness(t)
	all := []string{"n1", "n2", "n3"}
	mine := rankedIP(all, "n1")
	theirs := rankedIP(all, "n2", "n1")
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"198.51.100.0/24"}}})
	h.create(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1beta1.L2AdvertisementSpec{PoolSelection: v1beta1.PoolSelection{IPPools: []string{"lan"}}}})
	asn := int64(64512)
	h.create(&v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: &asn, PeerAddress: "10.0.0.1"}})
	h.create(&v1beta1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.IPPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}})
	h.create(&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"}, Spec: v1beta1.BGPAdvertisementSpec{
		PoolSelection: v1beta1.PoolSelection{IPPools: []string{"routed"}}, AggregationLength: ptr.To[int32](24)}})
	h.service("web", false, mine)
	h.service("other", false, theirs)
	h.service("routed", false, netip.MustParseAddr("203.0.113.7"))
	// What n2 wrote before it died.
	h.create(&v1beta1.AnnouncementSlice{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{v1beta1.LabelNode: "n2"}}, Node: "n2",
		Services: []v1beta1.ServiceAnnouncement{{Service: "demo/other", Addresses: []v1beta1.AnnouncedAddress{{IP: theirs.String(), Protocol: v1beta1.ProtocolLayer2}}}}})
	for _, n := range []string{"n2", "n3"} {
		h.inbox.Message(members.Message{Kind: members.KindRelease, From: n}.Marshal())
	}

	routed := "203.0.113.7 BGP [][frr]"
	n2 := map[string][]string{"demo/other": {theirs.String() + " Layer2 [][]"}}
	h.wantSlices("n1's slice", map[string]map[string][]string{
		"n1": {"demo/web": {mine.String() + " Layer2 [eth0][]"}, "demo/routed": {routed}},
		"n2": n2,
	})
	var s v1beta1.AnnouncementSlice
	if err := h.c.Get(context.Background(), client.ObjectKey{Name: "n1"}, &s); err != nil {
		t.Fatal(err)
	}
	if s.Labels["demo.svc.herald.dev/web"] != "Layer2" || s.Labels["demo.svc.herald.dev/routed"] != "BGP" || s.ServiceCount != 2 || s.Layer2Count != 1 || s.BGPCount != 1 {
		t.Errorf("slice n1: labels %v, counts %d %d %d", s.Labels, s.ServiceCount, s.Layer2Count, s.BGPCount)
	}
	if a := s.Services[0].Addresses[0]; s.Services[0].Service != "demo/routed" || a.Prefix != "203.0.113.0/24" {
		t.Errorf("the aggregate is not shown: %+v", s.Services[0])
	}

	// n2 dies: n1 takes "other" over and, as the janitor, deletes n2's slice.
	h.members.setAlive("n1", "n3")
	h.wantSlices("after n2's death", map[string]map[string][]string{
		"n1": {"demo/web": {mine.String() + " Layer2 [eth0][]"}, "demo/other": {theirs.String() + " Layer2 [eth0][]"}, "demo/routed": {routed}},
	})
	// n2 is back: n1 releases "other" to it.
	h.members.setAlive("n1", "n2", "n3")
	h.wantSlices("after n2's return", map[string]map[string][]string{
		"n1": {"demo/web": {mine.String() + " Layer2 [eth0][]"}, "demo/routed": {routed}},
	})

	// A graceful stop: the final write deletes the slice.
	h.shutdown()
	if err := h.writer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := h.slicesByNode()
	if err != nil || len(got) != 0 {
		t.Fatalf("after the stop: slices %v (%v), want none", got, err)
	}
}
