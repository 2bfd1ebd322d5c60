package testkit

import (
	"os"
	"strconv"
	"testing"
)

// EnvInt is the positive integer in the environment variable name (a
// benchmark's size or run count), def when it is unset; anything else
// fails the test.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
