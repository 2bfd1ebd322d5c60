package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Sample is one request of a Probe.
type Sample struct {
	// Sent is when the request started; Latency how long the answer took.
	Sent    time.Time
	Latency time.Duration
	// Pod and Node answered; Err is set instead when the request failed.
	Pod, Node string
	Err       string
}

// OK reports whether the request was answered.
func (s Sample) OK() bool { return s.Err == "" }

// Probe sends an HTTP GET every interval from a host, each on a new
// connection, and records who answered. Requests overlap when one takes
// longer than the interval, so a dead path shows as a run of failures at the
// probe's own pace. Each sample is also logged to LogPath as it completes.
type Probe struct {
	URL     string
	LogPath string

	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []Sample
}

// ProbeOptions tune a Probe. Zero values: every 15 ms, 500 ms per request.
type ProbeOptions struct {
	Interval, Timeout time.Duration
}

// StartProbe starts probing url from the host until Stop.
func (h *Host) StartProbe(url string, o ProbeOptions) *Probe {
	if o.Interval == 0 {
		o.Interval = 15 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Probe{URL: url, cancel: cancel, done: make(chan struct{})}
	if h.lab != nil {
		p.LogPath = filepath.Join(h.lab.logDir(), fmt.Sprintf("probe-%s-%d.log", h.Name, time.Now().UnixNano()))
	}
	go p.run(ctx, h, o)
	return p
}

func (p *Probe) run(ctx context.Context, h *Host, o ProbeOptions) {
	defer close(p.done)
	var log *os.File
	if p.LogPath != "" {
		if f, err := os.Create(p.LogPath); err == nil {
			log = f
			defer f.Close() //nolint:errcheck // a best-effort log, as its creation
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Sample{Sent: time.Now()}
			rctx, cancel := context.WithTimeout(ctx, o.Timeout)
			rep, err := h.Get(rctx, p.URL)
			cancel()
			if ctx.Err() != nil {
				return // stopped: not a failure of the path
			}
			s.Latency = time.Since(s.Sent)
			if err != nil {
				s.Err = err.Error()
			} else {
				s.Pod, s.Node = rep.Pod, rep.Node
			}
			p.mu.Lock()
			p.samples = append(p.samples, s)
			if log != nil {
				_, _ = fmt.Fprintf(log, "%s %8.1fms node=%s pod=%s err=%q\n", s.Sent.Format("15:04:05.000000"),
					float64(s.Latency.Microseconds())/1000, s.Node, s.Pod, s.Err)
			}
			p.mu.Unlock()
		}()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Samples returns the samples so far, in the order they were sent.
func (p *Probe) Samples() []Sample {
	p.mu.Lock()
	out := append([]Sample(nil), p.samples...)
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Sent.Before(out[j].Sent) })
	return out
}

// Stop ends the probe and returns every sample, in the order they were sent.
func (p *Probe) Stop() []Sample {
	p.cancel()
	<-p.done
	return p.Samples()
}

// ProbeSummary condenses samples for failover measurements.
type ProbeSummary struct {
	Total, Failed int
	// ByNode counts answers per node.
	ByNode map[string]int
	// LongestOutage runs from the last answered request before the longest
	// run of failures to the first answered one after it (0 without failures).
	LongestOutage time.Duration
}

// Summarize computes a ProbeSummary from samples in send order.
func Summarize(samples []Sample) ProbeSummary {
	s := ProbeSummary{Total: len(samples), ByNode: map[string]int{}}
	var lastOK time.Time
	failing := false
	for i, x := range samples {
		if x.OK() {
			s.ByNode[x.Node]++
			if failing {
				start := lastOK
				if start.IsZero() {
					start = samples[0].Sent
				}
				if d := x.Sent.Sub(start); d > s.LongestOutage {
					s.LongestOutage = d
				}
				failing = false
			}
			lastOK = x.Sent
			continue
		}
		s.Failed++
		failing = true
		if i == len(samples)-1 && !lastOK.IsZero() { // still failing at the end
			if d := x.Sent.Sub(lastOK); d > s.LongestOutage {
				s.LongestOutage = d
			}
		}
	}
	return s
}
