//go:build !race

package bgp

import "time"

const memoryScale = 1

// bfdTestInterval is the BFD interval of the tests' fast sessions.
const bfdTestInterval = 100 * time.Millisecond
