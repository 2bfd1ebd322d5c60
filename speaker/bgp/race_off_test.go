//go:build !race

package bgp

const memoryScale = 1
