//go:build race

package members_test

// smallScale is TestScale's size in make test. Under the race detector a
// member needs several times the CPU: 30 of them (probing every 100 ms)
// starved each other on a 2-core machine and the test measured the
// detector, not them; 10 keep the run short and the members fed.
const smallScale = 10
