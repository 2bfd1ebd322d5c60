package members

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"time"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level. It also notes the members our own
// probes suspect, the suspicions of this member it refuted, and gossip our
// key cannot decrypt, which memberlist reports nowhere else.
type logWriter struct{ m *Members }

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo,
		"[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError,
	} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			line, level = rest, l
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if rest, ok := strings.CutPrefix(line, "Suspect "); ok {
		if name, _, ok := strings.Cut(rest, " has failed"); ok {
			w.m.mu.Lock()
			w.m.suspects[name] = true
			w.m.mu.Unlock()
			w.m.suspicions.Add(1)
		}
	}
	if strings.HasPrefix(line, "Refuting a suspect message") || strings.HasPrefix(line, "Refuting a dead message") {
		w.m.refutations.Add(1)
	}
	if strings.Contains(line, "no installed keys could decrypt") {
		w.m.mu.Lock()
		w.m.keyMismatch = time.Now()
		w.m.mu.Unlock()
	}
	w.m.log.Log(context.Background(), level, line)
	return len(p), nil
}
