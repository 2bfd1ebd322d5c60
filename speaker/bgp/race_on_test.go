//go:build race

package bgp

// memoryScale: the race detector's shadow memory makes a process's RSS grow
// several times as much (about 3.7 times here) for the same live data.
const memoryScale = 4
