//go:build race

package bgp

import "time"

// memoryScale: the race detector's shadow memory makes a process's RSS grow
// several times as much (about 3.7 times here) for the same live data.
const memoryScale = 4

// bfdTestInterval: under the race detector the speaker runs several times
// slower, and 100 ms BFD packets miss their detection time on a busy
// machine, which the tests would read as a real failure.
const bfdTestInterval = 300 * time.Millisecond
