package k8s

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	if got := truncate("short", 10); got != "short" {
		t.Errorf("short note changed: %q", got)
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	got := truncate(long, eventNoteMax)
	if len(got) > eventNoteMax || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("truncated to %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}
