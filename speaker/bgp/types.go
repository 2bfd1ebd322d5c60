package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Peer is one BGP session of this node. Name identifies it (unique per
// node); a Set with the same Name and different fields re-creates only
// that session.
type Peer struct {
	Name string
	// Address is the peer's address. With Interface it is an IPv6
	// link-local address on that interface, or zero to peer with the one
	// IPv6 router the node sees there (BGP unnumbered, see linklocal.go).
	Address netip.Addr
	// Interface names the node's link for a link-local session.
	Interface string
	// Port is the peer's TCP port; 0 means 179.
	Port           uint16
	MyASN, PeerASN uint32
	// DynamicASN takes the peer's AS from its OPEN message instead of
	// PeerASN (which must then be 0): DynamicInternal expects MyASN,
	// DynamicExternal any other AS (checked before any path is sent).
	DynamicASN DynamicASN
	// Passive waits for the peer to connect to Desired.ListenPort instead
	// of dialing it.
	Passive bool
	// SourceAddress pins the local address of the session (and so the
	// next hop of same-family paths); zero lets the kernel choose.
	SourceAddress netip.Addr
	// HoldTime (0: 90 s) and KeepaliveTime (0: a third of HoldTime) are
	// rounded up to whole seconds; ConnectTime is the retry interval after a
	// failed connect (0: 5 s; gobgp's own default is 120 s).
	HoldTime, KeepaliveTime, ConnectTime time.Duration
	// EBGPMultiHop lets an eBGP session cross routers (TTL 255).
	EBGPMultiHop bool
	// Password enables TCP MD5 (RFC 2385); at most 80 bytes.
	Password string
	// GracefulRestart advertises the capability with RestartTime (0: 120 s).
	// The peer then keeps this node's routes for RestartTime when the
	// speaker stops: Run closes such sessions without withdrawing.
	GracefulRestart bool
	RestartTime     time.Duration
	// BFD enables single-hop BFD for the session; nil disables it.
	BFD *BFD
	// NextHopIPv4 and NextHopIPv6 set the next hop of paths whose family
	// differs from the session's (IPv6 prefixes on an IPv4 session and the
	// other way round). Zero means: this node's address of that family on
	// the interface that carries the session, or for IPv6 with none there,
	// the IPv4-mapped IPv6 form of the session's local address.
	NextHopIPv4, NextHopIPv6 netip.Addr
	// MaxReceivedPrefixes bounds the prefixes the peer may send per address
	// family (0: DefaultMaxReceivedPrefixes); see prefixlimit.go.
	MaxReceivedPrefixes uint32
}

// DynamicASN says how a peer's AS is learnt when it is not configured.
type DynamicASN string

// The DynamicASN values, as in the API.
const (
	DynamicInternal DynamicASN = "internal"
	DynamicExternal DynamicASN = "external"
)

// BFD is a peer's BFD setting. Zero values mean 300 ms, 300 ms and 3.
type BFD struct {
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint32
}

// LargeCommunity is an RFC 8092 large community: global admin, local data 1 and 2.
type LargeCommunity [3]uint32

// Path is one prefix announced to a peer with that peer's attributes. The
// next hop is always this node's own address toward the peer.
type Path struct {
	Prefix netip.Prefix
	// Communities are RFC 1997 communities, ASN<<16 | value (see Community).
	Communities      []uint32
	LargeCommunities []LargeCommunity
	// LocalPref is sent to iBGP peers only (eBGP strips it, as BGP requires).
	LocalPref *uint32
}

// Community builds an RFC 1997 community "asn:value".
func Community(asn, value uint16) uint32 { return uint32(asn)<<16 | uint32(value) }

// Desired is the whole BGP state of the node. Set replaces the previous one.
type Desired struct {
	// RouterID is the BGP identifier (an IPv4 address) of every session.
	// gobgp has one per server, so changing it re-creates every session.
	RouterID netip.Addr
	// ListenPort is the TCP port the node accepts sessions on, for passive
	// peers; 0 listens nowhere. gobgp opens its listener when it starts, so
	// changing it, like the router ID, re-creates every session.
	ListenPort uint16
	Peers      []Peer
	// Paths maps a peer's Name to what this node announces to it. Paths
	// for a name not in Peers wait until the peer appears. A prefix listed
	// twice for one peer keeps the last entry.
	Paths map[string][]Path
}

// PathUpdate changes some of one peer's paths: Set adds or replaces paths
// (by prefix), Withdraw removes prefixes.
type PathUpdate struct {
	Set      []Path
	Withdraw []netip.Prefix
}

// SessionState is a BGP finite-state-machine state, lower case.
type SessionState string

// The states of RFC 4271's finite-state machine, and StateInvalid.
const (
	StateIdle        SessionState = "idle"
	StateConnect     SessionState = "connect"
	StateActive      SessionState = "active"
	StateOpenSent    SessionState = "opensent"
	StateOpenConfirm SessionState = "openconfirm"
	StateEstablished SessionState = "established"
	// StateInvalid marks a peer whose configuration was rejected; LastError says why.
	StateInvalid SessionState = "invalid"
)

// PeerStatus is what the node knows about one session.
type PeerStatus struct {
	Name string
	// Address is the peer's address; for a link-local peer found on its
	// interface, the one found (zero while none is).
	Address netip.Addr
	// PeerASN is the configured AS, or with a dynamic ASN the AS the peer
	// sent in its last OPEN (0 before that).
	PeerASN uint32
	State   SessionState
	// Since is when State last changed.
	Since time.Time
	// Advertised is how many prefixes are announced on the session (0
	// unless established); Received is how many the peer sent (they are
	// never imported).
	Advertised, Received int
	// UpdatesSent counts UPDATE messages over the Router's life.
	UpdatesSent uint64
	// BFD is "" without BFD, else "down", "init", "up" or "admin_down".
	BFD string
	// LastError is the latest reason the session is not up: a connect
	// error ("connection refused"; "i/o timeout" when nothing answers, which
	// is also how a wrong TCP MD5 password looks), a NOTIFICATION, hold
	// timer or BFD expiry, or a configuration problem.
	LastError string
}

// Established reports whether the session is up.
func (s PeerStatus) Established() bool { return s.State == StateEstablished }

// Event tells that a session came up or went down.
type Event struct {
	Peer    string
	Address netip.Addr
	Up      bool
	State   SessionState
	// Reason says why a session went down.
	Reason string
	Time   time.Time
}

// Options configure a Router.
type Options struct {
	Logger *slog.Logger
	// OnEvent is called on Run's goroutine for every session up/down; it
	// must return quickly (emit a Kubernetes Event, count, log).
	OnEvent func(Event)
	// Registerer receives the Router's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// StatusInterval is how often counters and BFD state are refreshed
	// (0: 1 s). Session state changes are seen at once.
	StatusInterval time.Duration
	// FlushTimeout bounds how long Run waits on shutdown for withdrawals to
	// leave before it closes the sessions (0: 200 ms).
	FlushTimeout time.Duration
	// PrefixLimitRetry is how long a session that exceeded its received
	// prefix limit stays down (0: PrefixLimitRetry).
	PrefixLimitRetry time.Duration
}

// ErrInvalid wraps every configuration problem Validate reports.
var ErrInvalid = errors.New("invalid BGP configuration")

// Validate reports what is wrong with d. Run applies the valid peers of an
// invalid Desired and marks the others StateInvalid, so one bad peer never
// takes down the good ones.
func (d Desired) Validate() error {
	var errs []error
	if len(d.Peers) > 0 && !d.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("%w: router ID must be an IPv4 address, got %v", ErrInvalid, d.RouterID))
	}
	seen := map[string]bool{}
	for _, p := range d.Peers {
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("%w: peer name %q used twice", ErrInvalid, p.Name))
		}
		seen[p.Name] = true
		if err := p.validate(); err != nil {
			errs = append(errs, err)
		}
		if err := p.validateListen(d.ListenPort); err != nil {
			errs = append(errs, err)
		}
	}
	for name, paths := range d.Paths {
		for _, path := range paths {
			if !path.Prefix.IsValid() {
				errs = append(errs, fmt.Errorf("%w: peer %q: invalid prefix %v", ErrInvalid, name, path.Prefix))
			}
		}
	}
	return errors.Join(errs...)
}

func (p Peer) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: peer %q: %s", ErrInvalid, p.Name, fmt.Sprintf(format, a...))
	}
	if err := p.validateLinkLocal(); err != nil {
		return bad("%v", err)
	}
	switch {
	case p.Name == "":
		return bad("no name")
	case p.Interface == "" && (!p.Address.IsValid() || p.Address.IsUnspecified()):
		return bad("no address")
	case p.MyASN == 0:
		return bad("myASN must not be 0")
	case p.DynamicASN == "" && p.PeerASN == 0:
		return bad("peer ASN must not be 0 without a dynamic ASN")
	case p.DynamicASN != "" && p.DynamicASN != DynamicInternal && p.DynamicASN != DynamicExternal:
		return bad("dynamic ASN %q is neither internal nor external", p.DynamicASN)
	case p.DynamicASN != "" && p.PeerASN != 0:
		return bad("peer ASN %d and dynamic ASN %s both set", p.PeerASN, p.DynamicASN)
	case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
		return bad("source address %v and peer address %v differ in family", p.SourceAddress, p.Address)
	case p.HoldTime != 0 && p.HoldTime < 3*time.Second:
		return bad("hold time %v is below 3 s", p.HoldTime)
	case p.HoldTime != 0 && p.KeepaliveTime > p.HoldTime:
		return bad("keepalive %v exceeds hold time %v", p.KeepaliveTime, p.HoldTime)
	case len(p.Password) > 80:
		return bad("TCP MD5 password longer than 80 bytes")
	case p.NextHopIPv4.IsValid() && !p.NextHopIPv4.Is4():
		return bad("next hop %v is not IPv4", p.NextHopIPv4)
	case p.NextHopIPv6.IsValid() && !p.NextHopIPv6.Is6():
		return bad("next hop %v is not IPv6", p.NextHopIPv6)
	}
	if b := p.BFD; b != nil {
		if b.DetectMultiplier > 255 {
			return bad("BFD multiplier %d above 255", b.DetectMultiplier)
		}
		if (b.ReceiveInterval != 0 && b.ReceiveInterval < 10*time.Millisecond) || (b.TransmitInterval != 0 && b.TransmitInterval < 10*time.Millisecond) {
			return bad("BFD intervals below 10 ms")
		}
	}
	return nil
}
