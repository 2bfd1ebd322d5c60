package k8s

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// ParseLevel reads a --log-level value: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(strings.TrimSpace(s)))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns a JSON logger writing to w at the given level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// UseLogger routes controller-runtime's and client-go's (klog) logs to log,
// so a binary has one log stream. logr's V(n) maps to slog level -n, so
// controller-runtime's debug output shows at --log-level=debug. It returns
// a logr.Logger for log itself.
//
// Both libraries keep their logger in globals that other goroutines read
// at any time, so they are set only once per process, to a handler that
// forwards to the log of the latest call: tests that run a binary's run
// function once per incarnation in one process swap it without a data race.
func UseLogger(log *slog.Logger) logr.Logger {
	h := log.Handler()
	globalTarget.Store(&h)
	globalOnce.Do(func() {
		l := logr.FromSlogHandler(forwardHandler{})
		ctrl.SetLogger(l)
		klog.SetLogger(l)
	})
	return logr.FromSlogHandler(h)
}

var (
	globalOnce   sync.Once
	globalTarget atomic.Pointer[slog.Handler]
)

// forwardHandler hands every record to the handler of the latest
// UseLogger, with the attributes and groups it was derived with.
type forwardHandler struct {
	derive []func(slog.Handler) slog.Handler
}

func (f forwardHandler) target() slog.Handler {
	h := *globalTarget.Load()
	for _, d := range f.derive {
		h = d(h)
	}
	return h
}

func (f forwardHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return f.target().Enabled(ctx, l)
}

func (f forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	return f.target().Handle(ctx, r)
}

func (f forwardHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return forwardHandler{derive: append(slices.Clip(f.derive), func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })}
}

func (f forwardHandler) WithGroup(name string) slog.Handler {
	return forwardHandler{derive: append(slices.Clip(f.derive), func(h slog.Handler) slog.Handler { return h.WithGroup(name) })}
}
