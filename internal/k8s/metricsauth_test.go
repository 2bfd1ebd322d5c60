package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// countingReviews answers from fixed tables and counts the questions.
type countingReviews struct {
	users   map[string]string // token -> user
	readers map[string]bool   // users allowed
	down    bool              // the API server cannot be reached
	asked   int
}

func (c *countingReviews) user(_ context.Context, token string) (authenticationv1.UserInfo, bool, error) {
	c.asked++
	if c.down {
		return authenticationv1.UserInfo{}, false, errors.New("connection refused")
	}
	u, ok := c.users[token]
	return authenticationv1.UserInfo{Username: u}, ok, nil
}

func (c *countingReviews) allowed(_ context.Context, info authenticationv1.UserInfo, verb, path string) (bool, error) {
	c.asked++
	if c.down {
		return false, errors.New("connection refused")
	}
	return c.readers[info.Username] && verb == "get" && path == "/metrics", nil
}

func TestMetricsGate(t *testing.T) {
	r := &countingReviews{users: map[string]string{"tok-reader": "prometheus", "tok-other": "outsider"}, readers: map[string]bool{"prometheus": true}}
	g := newMetricsGate(r)
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return now }
	ctx := context.Background()
	for _, c := range []struct {
		name, token, verb, path string
		want, asked             int
	}{
		{"no token", "", "get", "/metrics", http.StatusUnauthorized, 0},
		{"a reader", "tok-reader", "get", "/metrics", http.StatusOK, 2},
		{"the reader again: remembered", "tok-reader", "get", "/metrics", http.StatusOK, 0},
		{"the reader on another path", "tok-reader", "get", "/debug", http.StatusForbidden, 2},
		{"another user", "tok-other", "get", "/metrics", http.StatusForbidden, 2},
		{"another user again: remembered", "tok-other", "get", "/metrics", http.StatusForbidden, 0},
		{"a token the API server does not accept", "made-up", "get", "/metrics", http.StatusUnauthorized, 1},
	} {
		before := r.asked
		if got, reason := g.decide(ctx, c.token, c.verb, c.path); got != c.want || r.asked-before != c.asked {
			t.Errorf("%s: %d (%s) after %d questions, want %d after %d", c.name, got, reason, r.asked-before, c.want, c.asked)
		}
	}

	// A refusal is remembered for metricsDenyTTL, an admission for
	// metricsAllowTTL: then the API server is asked again, and a role
	// granted or revoked meanwhile shows.
	r.readers["outsider"], r.readers["prometheus"] = true, false
	now = now.Add(metricsDenyTTL + time.Second)
	if got, _ := g.decide(ctx, "tok-other", "get", "/metrics"); got != http.StatusOK {
		t.Errorf("a role granted %v ago still refused: %d", metricsDenyTTL, got)
	}
	if got, _ := g.decide(ctx, "tok-reader", "get", "/metrics"); got != http.StatusOK {
		t.Errorf("the reader was let in %v ago: want the remembered 200, got %d", metricsDenyTTL, got)
	}
	now = now.Add(metricsAllowTTL)
	if got, _ := g.decide(ctx, "tok-reader", "get", "/metrics"); got != http.StatusForbidden {
		t.Errorf("a role revoked more than %v ago still lets the reader in: %d", metricsAllowTTL, got)
	}

	// The API server down: 500, and nothing remembered.
	r.down = true
	if got, _ := g.decide(ctx, "tok-new", "get", "/metrics"); got != http.StatusInternalServerError {
		t.Errorf("the API server down: %d, want 500", got)
	}
	r.down = false
	r.users["tok-new"], r.readers["newcomer"] = "newcomer", true
	if got, _ := g.decide(ctx, "tok-new", "get", "/metrics"); got != http.StatusOK {
		t.Errorf("once the API server is back: %d, want 200", got)
	}

	// Made-up tokens cannot grow the table past its bound.
	for i := range 3 * metricsAuthEntries {
		g.decide(ctx, fmt.Sprint("flood-", i), "get", "/metrics")
	}
	if n := len(g.answers); n > metricsAuthEntries {
		t.Errorf("%d answers remembered, want at most %d", n, metricsAuthEntries)
	}
}
