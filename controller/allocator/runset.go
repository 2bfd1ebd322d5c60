package allocator

// runSet is a set of offsets stored as maximal runs [start, end] of consecutive
// members, in a treap ordered by start. Memory is proportional to the number of
// runs, never to the size of the space; insert, remove and the lowest-absent
// query are O(log runs).
type runSet struct {
	root *runNode
	seed uint64 // xorshift state for treap priorities: deterministic
}

type runNode struct {
	start, end  u128
	prio        uint64
	left, right *runNode
}

func (s *runSet) nextPrio() uint64 {
	if s.seed == 0 {
		s.seed = 0x9e3779b97f4a7c15
	}
	s.seed ^= s.seed << 13
	s.seed ^= s.seed >> 7
	s.seed ^= s.seed << 17
	return s.seed
}

// floor returns the run with the greatest start <= x, or nil.
func (s *runSet) floor(x u128) *runNode {
	var best *runNode
	for n := s.root; n != nil; {
		if x.less(n.start) {
			n = n.left
		} else {
			best, n = n, n.right
		}
	}
	return best
}

// ceilAbove returns the run with the least start > x, or nil.
func (s *runSet) ceilAbove(x u128) *runNode {
	var best *runNode
	for n := s.root; n != nil; {
		if x.less(n.start) {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

func (s *runSet) first() *runNode {
	n := s.root
	if n == nil {
		return nil
	}
	for n.left != nil {
		n = n.left
	}
	return n
}

func (s *runSet) empty() bool { return s.root == nil }

func (s *runSet) contains(x u128) bool {
	r := s.floor(x)
	return r != nil && !r.end.less(x)
}

// lowestAbsent returns the smallest offset not in the set, which may equal the
// size of the space when the space is full.
func (s *runSet) lowestAbsent() u128 {
	r := s.first()
	if r == nil || !r.start.isZero() {
		return u128{}
	}
	return r.end.inc()
}

// insert adds x and reports whether it was absent. It merges x into its
// neighbouring runs so that runs stay maximal.
func (s *runSet) insert(x u128) bool {
	prev := s.floor(x)
	if prev != nil && !prev.end.less(x) {
		return false
	}
	next := s.ceilAbove(x)
	joinPrev := prev != nil && prev.end.inc() == x
	joinNext := next != nil && x.inc() == next.start
	switch {
	case joinPrev && joinNext:
		end := next.end
		s.delete(next.start)
		prev.end = end
	case joinPrev:
		prev.end = x
	case joinNext:
		// Moving the start down to x keeps the order: x lies between prev and next.
		next.start = x
	default:
		s.root = s.add(s.root, &runNode{start: x, end: x, prio: s.nextPrio()})
	}
	return true
}

// remove deletes x and reports whether it was present, splitting its run.
func (s *runSet) remove(x u128) bool {
	r := s.floor(x)
	if r == nil || r.end.less(x) {
		return false
	}
	switch {
	case r.start == x && r.end == x:
		s.delete(x)
	case r.start == x:
		r.start = x.inc() // still below the next run's start
	case r.end == x:
		r.end = x.dec()
	default:
		tail := &runNode{start: x.inc(), end: r.end, prio: s.nextPrio()}
		r.end = x.dec()
		s.root = s.add(s.root, tail)
	}
	return true
}

func (s *runSet) add(n, nn *runNode) *runNode {
	if n == nil {
		return nn
	}
	if nn.start.less(n.start) {
		n.left = s.add(n.left, nn)
		if n.left.prio > n.prio {
			n = rotateRight(n)
		}
	} else {
		n.right = s.add(n.right, nn)
		if n.right.prio > n.prio {
			n = rotateLeft(n)
		}
	}
	return n
}

func (s *runSet) delete(start u128) { s.root = deleteNode(s.root, start) }

func deleteNode(n *runNode, start u128) *runNode {
	if n == nil {
		return nil
	}
	switch c := start.cmp(n.start); {
	case c < 0:
		n.left = deleteNode(n.left, start)
	case c > 0:
		n.right = deleteNode(n.right, start)
	default:
		return merge(n.left, n.right)
	}
	return n
}

// merge joins two treaps where every start in l is below every start in r.
func merge(l, r *runNode) *runNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.right = merge(l.right, r)
		return l
	default:
		r.left = merge(l, r.left)
		return r
	}
}

func rotateRight(n *runNode) *runNode {
	l := n.left
	n.left, l.right = l.right, n
	return l
}

func rotateLeft(n *runNode) *runNode {
	r := n.right
	n.right, r.left = r.left, n
	return r
}

// runs calls f for each run in ascending order until f returns false.
func (s *runSet) runs(f func(start, end u128) bool) {
	var walk func(n *runNode) bool
	walk = func(n *runNode) bool {
		if n == nil {
			return true
		}
		return walk(n.left) && f(n.start, n.end) && walk(n.right)
	}
	walk(s.root)
}
