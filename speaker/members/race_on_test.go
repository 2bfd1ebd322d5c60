//go:build race

package members_test

// smallScale is TestScale's size in make test. Under the race detector a
// member needs several times the CPU, and 30 of them with the default
// timings starve each other on a 2-core machine (their acks come after the
// 50 ms probe timeout: the test would measure the detector, not them).
const smallScale = 10
