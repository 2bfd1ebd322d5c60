package config

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1beta1 "github.com/heraldlb/herald/api/v1beta1"
)

// Defaults for BGPPeer fields left empty.
const (
	DefaultHoldTime            = 90 * time.Second
	DefaultConnectTime         = 5 * time.Second
	DefaultGracefulRestartTime = 120 * time.Second
	DefaultPort                = 179
	// PasswordKey is the key of a BGP password in its Secret.
	PasswordKey = "password"
)

// peerInput is what a peer is built from: its spec and the resolved password.
type peerInput struct {
	Spec     v1beta1.BGPPeerSpec
	Password string
}

// missingRefError marks an error caused by a reference to something absent.
type missingRefError struct{ error }

func (b *builder) bfdProfiles() {
	for i := range b.in.BFDProfiles {
		obj := &b.in.BFDProfiles[i]
		ref := Ref{KindBFDProfile, obj.Name}
		prof, in, ok := lastValid(b, ref, *obj.Spec.DeepCopy(), func(s v1beta1.BFDProfileSpec) (*BFDProfile, error) {
			return parseBFD(obj.Name, s)
		})
		if ok {
			b.m.BFDProfiles[obj.Name] = prof
			b.m.inputs[ref] = in
		}
	}
}

func parseBFD(name string, s v1beta1.BFDProfileSpec) (*BFDProfile, error) {
	ms := func(field string, v *int32, def, lo, hi int32) (int32, error) {
		if v == nil {
			return def, nil
		}
		if *v < lo || *v > hi {
			return 0, fmt.Errorf("%s: %d is outside %d-%d", field, *v, lo, hi)
		}
		return *v, nil
	}
	rx, err := ms("receiveInterval", s.ReceiveInterval, 300, 10, 60000)
	if err != nil {
		return nil, err
	}
	tx, err := ms("transmitInterval", s.TransmitInterval, 300, 10, 60000)
	if err != nil {
		return nil, err
	}
	mult, err := ms("detectMultiplier", s.DetectMultiplier, 3, 2, 255)
	if err != nil {
		return nil, err
	}
	return &BFDProfile{
		Name:             name,
		ReceiveInterval:  time.Duration(rx) * time.Millisecond,
		TransmitInterval: time.Duration(tx) * time.Millisecond,
		DetectMultiplier: uint32(mult),
	}, nil
}

func (b *builder) peers() {
	type candidate struct {
		obj      *v1beta1.BGPPeer
		in       any
		peer     *Peer
		fallback *Peer
		fbIn     peerInput
	}
	var cands []*candidate
	for i := range b.in.Peers {
		obj := &b.in.Peers[i]
		ref := Ref{KindBGPPeer, obj.Name}
		in := peerInput{Spec: *obj.Spec.DeepCopy()}
		pw, err := b.resolvePassword(in.Spec)
		in.Password = pw
		var peer *Peer
		if err == nil {
			peer, err = b.parsePeer(obj.Name, in)
		}
		c := &candidate{obj: obj, in: in}
		if prevIn, ok := b.prevInput(ref); ok && !sameInput(prevIn, in) {
			fbIn := prevIn.(peerInput)
			if fb, ferr := b.parsePeer(obj.Name, fbIn); ferr == nil {
				c.fallback, c.fbIn = fb, fbIn
			}
		}
		reason := reasonOf(err)
		switch {
		case err == nil:
			c.peer = peer
		case c.fallback != nil:
			b.problems.add(ref, KeptLastValid, reason, "%v", err)
			c.peer, c.in, c.fallback = c.fallback, c.fbIn, nil
		default:
			b.problems.add(ref, Skipped, reason, "%v", err)
			continue
		}
		if name := c.in.(peerInput).Spec.BFDProfile; name != "" && c.peer.BFD == nil {
			b.problems.add(ref, Degraded, v1beta1.ReasonMissing,
				"bfdProfile: BFDProfile %q does not exist; the session runs without BFD", name)
		}
		cands = append(cands, c)
	}

	olderFirst(cands, func(c *candidate) bool {
		if p, ok := b.prevInput(Ref{KindBGPPeer, c.obj.Name}); ok {
			return sameInput(p, c.in)
		}
		// No previous model of it (a restart): the controller's last
		// verdict, in the status, keeps the same peer the winner.
		return appliedPerStatus(&c.obj.ObjectMeta, c.obj.Status.Conditions)
	}, func(c *candidate) *metav1.ObjectMeta { return &c.obj.ObjectMeta })

	var accepted []*Peer
	for _, c := range cands {
		ref := Ref{KindBGPPeer, c.obj.Name}
		if other, node, dup := b.sharedNode(c.peer, accepted, samePeer); dup {
			b.problems.add(ref, Skipped, v1beta1.ReasonConflict,
				"node %s already peers with %s through BGPPeer %q", node, c.peer.target(), other)
			continue
		}
		if other, node, dup := b.sharedNode(c.peer, accepted, otherListenPort); dup {
			b.problems.add(ref, Skipped, v1beta1.ReasonConflict,
				"listenPort: node %s already listens on port %d for BGPPeer %q; a node listens on one port", node, b.m.Peers[other].ListenPort, other)
			continue
		}
		accepted = append(accepted, c.peer)
		b.m.Peers[c.peer.Name] = c.peer
		b.m.inputs[ref] = c.in
	}
}

// samePeer: two peers a node cannot both run, the same address (or the
// same interface without one).
func samePeer(a, b *Peer) bool {
	return a.Address == b.Address && a.Interface == b.Interface
}

// otherListenPort: two passive peers that ask one node to listen on
// different ports.
func otherListenPort(a, b *Peer) bool {
	return a.Passive && b.Passive && a.ListenPort != b.ListenPort
}

// target is how the peer is reached, for messages.
func (p *Peer) target() string {
	switch {
	case p.Interface == "":
		return p.Address.String()
	case p.Address.IsValid():
		return p.Address.String() + "%" + p.Interface
	}
	return "the router on " + p.Interface
}

// sharedNode finds an accepted peer that clashes with p on some node both
// select. Without node information it compares selectors.
func (b *builder) sharedNode(p *Peer, accepted []*Peer, clash func(a, b *Peer) bool) (string, string, bool) {
	for _, a := range accepted {
		if !clash(a, p) {
			continue
		}
		for name, l := range b.in.Nodes {
			if a.SelectsNode(l) && p.SelectsNode(l) {
				return a.Name, name, true
			}
		}
		if len(b.in.Nodes) == 0 && fmt.Sprint(a.NodeSelectors) == fmt.Sprint(p.NodeSelectors) {
			return a.Name, "(every selected node)", true
		}
	}
	return "", "", false
}

// resolvePassword returns the peer's password, from the spec or its Secret.
func (b *builder) resolvePassword(s v1beta1.BGPPeerSpec) (string, error) {
	if s.PasswordSecret != nil {
		return b.secretPassword(s.PasswordSecret.Name)
	}
	return s.Password, nil
}

// parsePeer validates a peer whose password is already resolved.
func (b *builder) parsePeer(name string, in peerInput) (*Peer, error) {
	s := in.Spec
	p := &Peer{Name: name, DynamicASN: string(s.DynamicASN), EBGPMultiHop: s.EBGPMultiHop, GracefulRestart: s.GracefulRestart,
		Interface: s.Interface, Passive: s.Passive}
	if s.MyASN < 1 || s.MyASN > 4294967295 {
		return nil, fmt.Errorf("myASN: %d is outside 1-4294967295", s.MyASN)
	}
	p.MyASN = uint32(s.MyASN)
	switch {
	case s.PeerASN != nil && s.DynamicASN != "":
		return nil, errors.New("set exactly one of peerASN and dynamicASN")
	case s.PeerASN != nil:
		if *s.PeerASN < 1 || *s.PeerASN > 4294967295 {
			return nil, fmt.Errorf("peerASN: %d is outside 1-4294967295", *s.PeerASN)
		}
		p.PeerASN = uint32(*s.PeerASN)
	case s.DynamicASN != v1beta1.DynamicASNInternal && s.DynamicASN != v1beta1.DynamicASNExternal:
		return nil, errors.New("set exactly one of peerASN and dynamicASN (internal or external)")
	}
	if err := p.setAddresses(s); err != nil {
		return nil, err
	}
	p.Port = DefaultPort
	if s.PeerPort != 0 {
		p.Port = uint16(s.PeerPort)
	}
	if err := p.setPassive(s); err != nil {
		return nil, err
	}
	var err error
	if s.RouterID != "" {
		if p.RouterID, err = netip.ParseAddr(s.RouterID); err != nil || !p.RouterID.Is4() {
			return nil, fmt.Errorf("routerID: %q is not an IPv4 address", s.RouterID)
		}
	}
	if err := p.setTimers(s); err != nil {
		return nil, err
	}
	if p.NodeSelectors, err = selectors(s.NodeSelectors); err != nil {
		return nil, fmt.Errorf("nodeSelectors: %w", err)
	}
	if p.EBGPMultiHop && p.IBGP() {
		return nil, errors.New("ebgpMultiHop applies to eBGP peers only")
	}
	if err := p.setGracefulRestart(s); err != nil {
		return nil, err
	}
	if s.Password != "" && s.PasswordSecret != nil {
		return nil, errors.New("password and passwordSecret are mutually exclusive")
	}
	p.Password = in.Password
	if s.BFDProfile != "" {
		p.BFD = b.m.BFDProfiles[s.BFDProfile]
	}
	return p, nil
}

func (p *Peer) setTimers(s v1beta1.BGPPeerSpec) error {
	p.HoldTime = DefaultHoldTime
	if s.HoldTime != nil {
		p.HoldTime = s.HoldTime.Duration
	}
	if p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second {
		return fmt.Errorf("holdTime: %s must be between 3s and 65535s", p.HoldTime)
	}
	p.KeepaliveTime = p.HoldTime / 3
	if s.KeepaliveTime != nil {
		p.KeepaliveTime = s.KeepaliveTime.Duration
	}
	if p.KeepaliveTime < time.Second || p.KeepaliveTime >= p.HoldTime {
		return fmt.Errorf("keepaliveTime %s must be at least 1s and less than holdTime %s", p.KeepaliveTime, p.HoldTime)
	}
	p.ConnectTime = DefaultConnectTime
	if s.ConnectTime != nil {
		p.ConnectTime = s.ConnectTime.Duration
	}
	if p.ConnectTime < time.Second || p.ConnectTime > 65535*time.Second {
		return fmt.Errorf("connectTime: %s must be between 1s and 65535s", p.ConnectTime)
	}
	return nil
}

func (b *builder) secretPassword(name string) (string, error) {
	for i := range b.in.Secrets {
		sec := &b.in.Secrets[i]
		if sec.Namespace != v1beta1.Namespace || sec.Name != name {
			continue
		}
		pw, ok := sec.Data[PasswordKey]
		if !ok {
			pw2, ok2 := sec.StringData[PasswordKey]
			if !ok2 {
				return "", missingRefError{fmt.Errorf("passwordSecret: Secret %s/%s has no %q key", v1beta1.Namespace, name, PasswordKey)}
			}
			pw = []byte(pw2)
		}
		if len(pw) == 0 || len(pw) > 80 {
			return "", fmt.Errorf("passwordSecret: the password in Secret %s/%s must be 1-80 bytes", v1beta1.Namespace, name)
		}
		return string(pw), nil
	}
	return "", missingRefError{fmt.Errorf("passwordSecret: Secret %s/%s does not exist", v1beta1.Namespace, name)}
}

// setAddresses reads the peer's address, interface and source address.
func (p *Peer) setAddresses(s v1beta1.BGPPeerSpec) error {
	var err error
	if s.PeerAddress != "" {
		if p.Address, err = netip.ParseAddr(s.PeerAddress); err != nil {
			return fmt.Errorf("peerAddress: %w", err)
		}
	}
	linkLocal := p.Address.Is6() && p.Address.IsLinkLocalUnicast()
	switch {
	case s.PeerAddress == "" && s.Interface == "":
		return errors.New("set peerAddress, interface, or both")
	case linkLocal && s.Interface == "":
		return errors.New("peerAddress: a link-local address needs interface, the link to reach it on")
	case s.Interface != "" && p.Address.IsValid() && !linkLocal:
		return errors.New("peerAddress: with interface it must be an IPv6 link-local address (fe80::/10)")
	case s.Interface != "" && s.SourceAddress != "":
		return errors.New("sourceAddress does not apply to an interface session")
	case s.Interface != "" && s.EBGPMultiHop:
		return errors.New("ebgpMultiHop does not apply to an interface session")
	}
	if s.SourceAddress != "" {
		if p.SourceAddress, err = netip.ParseAddr(s.SourceAddress); err != nil {
			return fmt.Errorf("sourceAddress: %w", err)
		}
		if p.SourceAddress.Is4() != p.Address.Is4() {
			return errors.New("sourceAddress and peerAddress must be of the same IP family")
		}
	}
	return nil
}

// setPassive reads the passive mode and its port.
func (p *Peer) setPassive(s v1beta1.BGPPeerSpec) error {
	if s.ListenPort != nil && !s.Passive {
		return errors.New("listenPort applies to passive sessions only")
	}
	if !s.Passive {
		return nil
	}
	p.ListenPort = DefaultPort
	if s.ListenPort != nil {
		if *s.ListenPort < 1 || *s.ListenPort > 65535 {
			return fmt.Errorf("listenPort: %d is outside 1-65535", *s.ListenPort)
		}
		p.ListenPort = uint16(*s.ListenPort)
	}
	return nil
}

// setGracefulRestart reads the restart time.
func (p *Peer) setGracefulRestart(s v1beta1.BGPPeerSpec) error {
	if s.GracefulRestartTime != nil && !s.GracefulRestart {
		return errors.New("gracefulRestartTime needs gracefulRestart: true")
	}
	if !s.GracefulRestart {
		return nil
	}
	p.GracefulRestartTime = DefaultGracefulRestartTime
	if s.GracefulRestartTime != nil {
		p.GracefulRestartTime = s.GracefulRestartTime.Duration
	}
	if p.GracefulRestartTime < time.Second || p.GracefulRestartTime > 4095*time.Second {
		return fmt.Errorf("gracefulRestartTime: %s must be between 1s and 4095s", p.GracefulRestartTime)
	}
	return nil
}
