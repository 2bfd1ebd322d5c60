package routers

import (
	"os"
	"strconv"
	"strings"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func mapValues(m map[string]int) []int {
	var v []int
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
