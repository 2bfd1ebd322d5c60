//go:build !race

package members_test

// smallScale is TestScale's size in make test.
const smallScale = 30
