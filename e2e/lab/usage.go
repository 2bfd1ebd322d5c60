package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process has cost so far, as /proc tells.
type Usage struct {
	// CPU is user plus system time.
	CPU time.Duration
	// RSS is resident memory now, PeakRSS its high-water mark, in bytes;
	// FileRSS is the part of RSS that maps files (the binary's pages,
	// shared with every process that runs it), the rest is the process's own.
	RSS, PeakRSS, FileRSS int64
}

// Usage reads the cost of the component's running process.
func (c *Component) Usage() (Usage, error) {
	p, err := c.live()
	if err != nil {
		return Usage{}, err
	}
	return procUsage(p.PID)
}

// userHZ is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

func procUsage(pid int) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3 of proc(5), utime and stime fields 14 and 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("lab: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("lab: /proc/%d/stat: CPU times %q %q", pid, f[11], f[12])
	}
	u.CPU = time.Duration(ut+st) * time.Second / userHZ
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			u.RSS = kib << 10
		case "VmHWM:":
			u.PeakRSS = kib << 10
		case "RssFile:":
			u.FileRSS = kib << 10
		}
	}
	return u, nil
}

// Memory says the resident memory now and at its peak, in MiB.
func (u Usage) Memory() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f MiB, %.1f MiB of it file pages)", float64(u.RSS)/(1<<20), float64(u.PeakRSS)/(1<<20), float64(u.FileRSS)/(1<<20))
}

// SpeakerMemory says each node's speaker's resident memory now and at its
// peak.
func (l *Lab) SpeakerMemory() (string, error) {
	parts := make([]string, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		u, err := l.Speaker(n.Name).Usage()
		if err != nil {
			return "", err
		}
		parts = append(parts, n.Name+" "+u.Memory())
	}
	return strings.Join(parts, ", "), nil
}
