package reconcile

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/speaker/bgp"
)

// MaxListed caps the lists of a SpeakerStatus; the counts stay complete.
const MaxListed = 500

// L2SkipNoQuorum means this node ranks first for the address but may not take it
// over: it sees only a minority of the speakers (probably cut off itself)
// or it is still joining them.
const L2SkipNoQuorum = v1beta1.L2SkipNoQuorum

// L2Report fills the Layer 2 part of a SpeakerStatus. placed says where the
// announcer answers for each IP (no interfaces: nowhere).
func (e *Engine) L2Report(st *v1beta1.SpeakerStatusStatus, placed map[netip.Addr][]string) {
	st.L2Announcements, st.L2Skipped = nil, nil
	st.AnnouncedIPs, st.L2SkippedCount = 0, 0
	skip := func(ip netip.Addr, refs []ServiceRef, reason v1beta1.L2SkipReason, owner string) {
		st.L2SkippedCount++
		if len(st.L2Skipped) < MaxListed {
			st.L2Skipped = append(st.L2Skipped, v1beta1.L2Skip{IP: ip.String(), Services: keys(refs), Reason: reason, Owner: owner})
		}
	}
	ips := make([]netip.Addr, 0, len(e.ips)+len(e.announced))
	for ip := range e.ips {
		ips = append(ips, ip)
	}
	for ip := range e.announced {
		if e.ips[ip] == nil {
			ips = append(ips, ip)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	for _, ip := range ips {
		if a := e.announced[ip]; a != nil {
			ifaces := placed[ip]
			if len(ifaces) == 0 {
				skip(ip, a.services, v1beta1.L2SkipNoInterface, e.self)
				continue
			}
			st.AnnouncedIPs++
			if len(st.L2Announcements) < MaxListed {
				st.L2Announcements = append(st.L2Announcements, v1beta1.L2Announcement{
					IP: ip.String(), Services: keys(a.services), Interfaces: slices.Clone(ifaces), Since: metav1.NewTime(a.since.Truncate(time.Second)),
				})
			}
			continue
		}
		s := e.ips[ip]
		switch {
		case e.excluded != "":
			skip(ip, s.refs(), v1beta1.L2SkipNodeExcluded, s.owner)
		case !slices.Contains(s.selected, e.self):
			skip(ip, s.refs(), v1beta1.L2SkipNodeNotSelected, s.owner)
		case !slices.Contains(s.eligible, e.self) && s.noEndpoint:
			skip(ip, s.refs(), v1beta1.L2SkipNoEndpoint, s.owner)
		case !slices.Contains(s.eligible, e.self):
			skip(ip, s.refs(), v1beta1.L2SkipNoLocalEndpoint, s.owner)
		case e.blocked[e.self].Has(ip):
			skip(ip, s.refs(), v1beta1.L2SkipNoInterface, s.owner)
		case s.waiting && s.deferTo != "":
			// A member that rejoined and has not confirmed yet ranks first:
			// it may announce the address (takeover rule 3).
			skip(ip, s.refs(), v1beta1.L2SkipOwnedElsewhere, s.deferTo)
		case s.waiting || s.owner == "" || s.owner == e.self:
			skip(ip, s.refs(), L2SkipNoQuorum, "")
		default:
			skip(ip, s.refs(), v1beta1.L2SkipOwnedElsewhere, s.owner)
		}
	}
}

func keys(refs []ServiceRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Key
	}
	return out
}

// BGPReport fills the BGP part of a SpeakerStatus from the router's status,
// the sessions this node should have, and the peers it cannot run.
func BGPReport(st *v1beta1.SpeakerStatusStatus, desired bgp.Desired, statuses []bgp.PeerStatus, issues []PeerIssue) {
	st.BGPSessions, st.Sessions, st.SessionsEstablished = nil, 0, 0
	byName := map[string]bgp.PeerStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	for _, p := range desired.Peers {
		st.Sessions++
		s, ok := byName[p.Name]
		sess := v1beta1.BGPSession{Peer: p.Name, Address: peerAddress(p, s), PeerASN: int64(p.PeerASN), State: "Idle"}
		if ok && s.PeerASN != 0 {
			sess.PeerASN = int64(s.PeerASN) // learnt from the peer's OPEN with a dynamic ASN
		}
		if ok {
			sess.State = sessionState(s.State)
			if !s.Since.IsZero() {
				t := metav1.NewTime(s.Since.Truncate(time.Second))
				sess.Since = &t
			}
			sess.PrefixesSent, sess.PrefixesReceived = int32(s.Advertised), int32(s.Received)
			sess.BFD = bfdState(s.BFD)
			sess.Message = s.LastError
			if s.State == bgp.StateInvalid {
				sess.Message = "configuration rejected: " + s.LastError
			}
			if s.Established() {
				st.SessionsEstablished++
			}
		}
		st.BGPSessions = append(st.BGPSessions, sess)
	}
	for _, is := range issues {
		if slices.ContainsFunc(desired.Peers, func(p bgp.Peer) bool { return p.Name == is.Peer }) {
			continue // a warning about a running peer (router ID); its session is listed
		}
		st.Sessions++
		st.BGPSessions = append(st.BGPSessions, v1beta1.BGPSession{Peer: is.Peer, State: "Idle", Message: is.Message})
	}
	sort.Slice(st.BGPSessions, func(i, j int) bool { return st.BGPSessions[i].Peer < st.BGPSessions[j].Peer })
}

// peerAddress is what a session's address column shows: the address the
// router found or was given, else for an unnumbered peer "%interface"
// while none is found yet.
func peerAddress(p bgp.Peer, s bgp.PeerStatus) string {
	switch {
	case s.Address.IsValid():
		return s.Address.String()
	case p.Address.IsValid():
		return p.Address.String()
	case p.Interface != "":
		return "%" + p.Interface
	}
	return ""
}

var fsmStates = map[bgp.SessionState]string{
	bgp.StateIdle: "Idle", bgp.StateConnect: "Connect", bgp.StateActive: "Active",
	bgp.StateOpenSent: "OpenSent", bgp.StateOpenConfirm: "OpenConfirm", bgp.StateEstablished: "Established",
}

func sessionState(s bgp.SessionState) string {
	if v, ok := fsmStates[s]; ok {
		return v
	}
	return "Idle"
}

func bfdState(s string) string {
	switch s {
	case "":
		return ""
	case "admin_down":
		return "AdminDown"
	default:
		return strings.ToUpper(s[:1]) + s[1:]
	}
}
