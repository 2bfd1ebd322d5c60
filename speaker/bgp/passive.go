package bgp

import (
	"fmt"
)

// Passive peers connect to the node: gobgp then listens on
// Desired.ListenPort, on every address (it accepts connections only from
// configured neighbors and closes the rest). gobgp opens its listeners
// when its server starts and cannot add one later, so the instance starts
// the server with the port and re-creates it, with every session, when the
// port changes, as for a new router ID. With no passive peer the node
// listens nowhere.

// validateListen checks that a passive peer has a port to be reached on.
func (p Peer) validateListen(port uint16) error {
	if p.Passive && port == 0 {
		return fmt.Errorf("%w: peer %q: passive, but the node listens on no port", ErrInvalid, p.Name)
	}
	return nil
}

// listenPort is the port gobgp listens on (-1: nowhere).
func listenPort(port uint16) int32 {
	if port == 0 {
		return -1
	}
	return int32(port)
}

// rejectUnreachablePassive moves passive peers to invalid when the node
// listens on no port.
func rejectUnreachablePassive(plan *peerPlan, port uint16) {
	keep := func(list []Peer) []Peer {
		var out []Peer
		for _, p := range list {
			if err := p.validateListen(port); err != nil {
				plan.invalid[p.Name] = err
				continue
			}
			out = append(out, p)
		}
		return out
	}
	plan.add = keep(plan.add)
	plan.recreate = keep(plan.recreate)
}
