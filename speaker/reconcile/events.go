package reconcile

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/election"
)

// EventRecorder records Events about objects (k8s.EventSink in the binary).
type EventRecorder = k8s.EventRecorder

// Event reasons the speaker uses.
const (
	ReasonAnnouncingL2        = "AnnouncingL2"
	ReasonStoppedAnnouncingL2 = "StoppedAnnouncingL2"
	ReasonNoInterfaceL2       = "NoInterfaceL2"
	ReasonBGPSessionUp        = "BGPSessionUp"
	ReasonBGPSessionDown      = "BGPSessionDown"
)

func serviceObject(ref ServiceRef) *corev1.Service {
	ns, name, _ := strings.Cut(ref.Key, "/")
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: ref.UID},
	}
}

// announcingEvents tells each Service of ip that this node answers for it.
func announcingEvents(ev EventRecorder, node string, ip netip.Addr, ifaces []string, refs []ServiceRef) {
	note := fmt.Sprintf("announcing %s from %s on %s", ip, node, strings.Join(ifaces, ", "))
	for _, r := range refs {
		ev.Normal(serviceObject(r), ReasonAnnouncingL2, "Announce", note)
	}
}

// noInterfaceEvents warns that this node owns ip but has nowhere to answer.
func noInterfaceEvents(ev EventRecorder, node string, ip netip.Addr, wanted []string, refs []ServiceRef) {
	what := "no interface has a subnet holding it or a route toward it"
	if len(wanted) > 0 {
		what = "none of the L2Advertisement's interfaces (" + strings.Join(wanted, ", ") + ") exists and is up on it"
	}
	note := fmt.Sprintf("%s owns %s but cannot announce it: %s", node, ip, what)
	for _, r := range refs {
		ev.Warning(serviceObject(r), ReasonNoInterfaceL2, "Announce", note)
	}
}

// stoppedEvents tells each Service of a change that this node stopped.
func stoppedEvents(ev EventRecorder, node string, c Change) {
	note := fmt.Sprintf("%s stopped announcing %s: %s", node, c.IP, c.Why)
	for _, r := range c.Services {
		ev.Normal(serviceObject(r), ReasonStoppedAnnouncingL2, "Withdraw", note)
	}
}

// sessionEvent reports a BGP session going up or down on its BGPPeer.
func sessionEvent(ev EventRecorder, node string, uid types.UID, e bgp.Event) {
	peer := &v1beta1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: e.Peer, UID: uid},
	}
	if e.Up {
		ev.Normal(peer, ReasonBGPSessionUp, "Connect", fmt.Sprintf("%s: BGP session to %s established", node, e.Address))
		return
	}
	note := fmt.Sprintf("%s: BGP session to %s down (now %s)", node, e.Address, e.State)
	if e.Reason != "" {
		note += ": " + e.Reason
	}
	ev.Warning(peer, ReasonBGPSessionDown, "Disconnect", note)
}

// Event reasons on a Service that advertisements with
// withdrawWithoutEndpoints leave out, or announce again.
const (
	ReasonWithdrawnWithoutEndpoints = "WithdrawnWithoutEndpoints"
	ReasonEndpointReady             = "EndpointReady"
)

// reportWithdrawals tells each Service that advertisements stopped or
// started leaving it out for lack of ready endpoints. One speaker speaks
// for the cluster: the one ranking first among the live members for the
// Service's first address, so a change makes one Event, not one per node.
// The caller holds s.mu.
func (s *Speaker) reportWithdrawals() {
	for _, w := range s.engine.TakeWithdrawals() {
		if len(w.IPs) == 0 || election.Owner(w.IPs[0], s.live) != s.opts.Node {
			continue
		}
		ips := make([]string, len(w.IPs))
		for i, ip := range w.IPs {
			ips[i] = ip.String()
		}
		svc := serviceObject(w.Service)
		if len(w.By) > 0 {
			s.log.Info("Service withdrawn: no ready endpoint", "service", w.Service.Key, "by", w.By)
			s.opts.Events.Warning(svc, ReasonWithdrawnWithoutEndpoints, "Withdraw",
				fmt.Sprintf("no ready endpoint anywhere: %s withdrawn by %s (withdrawWithoutEndpoints)", strings.Join(ips, ", "), strings.Join(w.By, ", ")))
			continue
		}
		s.log.Info("Service announced again: an endpoint is ready", "service", w.Service.Key)
		s.opts.Events.Normal(svc, ReasonEndpointReady, "Announce",
			fmt.Sprintf("an endpoint is ready: %s announced again", strings.Join(ips, ", ")))
	}
}
